"""The per-tenant ingest stream: ACL isolation, the same commands as HTTP, rejections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from events.connect import redis_client
from events.types import OutcomeDefinition, ProjectSettings
from services.rules import Context
from services.runtime import Runtime
from tests.digest import diff, snapshot
from tests.helpers import new_runtime
from workers.ingest import GROUP, IngestRunner

T0 = "2026-11-22T09:00:00+02:00"


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[tuple[Runtime, IngestRunner]]:
    rt = new_runtime(redis_url, shard)
    for tenant in ("acme", "globex"):
        rt.create_tenant(tenant, tenant.title())
        admin = Context(tenant, "admin:t", datetime.now(UTC))
        rt.ledger(tenant).define_outcome(admin, OutcomeDefinition(code="SALE", name="Sale"))
        rt.ledger(tenant).create_project(admin, "p1", ProjectSettings(name="P", direction="outbound"))
    runner = IngestRunner(rt.settings, consumer="test", reclaim_idle_ms=60_000)
    runner.tenants()
    yield rt, runner
    runner.close()
    rt.close()


def publish(client: redis.Redis, stream: str, type_: str, body: Any, target: str = "", **extra: str) -> str:
    fields = {"type": type_, "body": body if isinstance(body, str) else json.dumps(body), **extra}
    if target:
        fields["target"] = target
    return str(client.xadd(stream, fields).decode())  # type: ignore[union-attr]


def user_client(redis_url: str, username: str, password: str) -> redis.Redis:
    """A client of the ingest user (a cluster client when the suite runs on the cluster)."""
    url = urlsplit(redis_url)
    return redis_client(url._replace(netloc=f"{username}:{password}@{url.hostname}:{url.port or 6379}").geturl())


def test_the_ingest_user_reaches_only_its_tenants_streams(world: tuple[Runtime, IngestRunner], redis_url: str) -> None:
    rt, _ = world
    username, password, keys = rt.create_ingest_user("acme")
    _, _, other = rt.create_ingest_user("globex")
    client = user_client(redis_url, username, password)
    assert client.xadd(keys.ingest, {"type": "call.started", "body": "{}"})
    assert client.xrange(keys.rejections) == []
    for forbidden in (
        lambda: client.xadd(other.ingest, {"type": "x"}),
        lambda: client.xrange(rt.shard_keys("acme").log),
        lambda: client.hgetall(rt.registry.keys.api_keys),
        lambda: client.set("anything", 1),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    client.close()


def test_entries_run_the_same_commands_as_http(world: tuple[Runtime, IngestRunner]) -> None:
    rt, runner = world
    stream = runner.keys("acme").ingest
    publish(
        rt.client,
        stream,
        "call.started",
        {"call_id": "c1", "project_id": "p1", "direction": "outbound", "occurred_at": T0},
    )
    publish(rt.client, stream, "call.ended", {"occurred_at": "2026-11-22T09:03:00+02:00"}, target="c1")
    publish(
        rt.client,
        stream,
        "call.outcome",
        {"outcome_code": "SALE", "occurred_at": "2026-11-22T09:03:05+02:00"},
        target="c1",
        acting_for="agent:anna",
    )
    assert runner.run_once() == 3
    call = rt.ledger("acme").call("acme", "c1")
    assert call.outcome is not None and call.outcome.code == "SALE" and call.outcome.actor == "agent:anna"
    assert rt.client.xpending(stream, GROUP)["pending"] == 0
    assert rt.client.xlen(runner.keys("acme").rejections) == 0
    # the other tenant's same call id is another call, untouched
    with pytest.raises(Exception, match="not found"):
        rt.ledger("globex").call("globex", "c1")


def test_a_redelivered_entry_takes_effect_once(world: tuple[Runtime, IngestRunner]) -> None:
    rt, runner = world
    stream = runner.keys("acme").ingest
    entry = publish(
        rt.client,
        stream,
        "call.started",
        {"call_id": "c2", "project_id": "p1", "direction": "inbound", "occurred_at": T0},
    )
    fields = rt.client.xrange(stream, entry, entry)[0][1]
    log = rt.shard_keys("acme").log
    runner.process("acme", entry.encode(), fields)
    length = rt.client.xlen(log)
    runner.process("acme", entry.encode(), fields)  # delivered again (the worker died before XACK)
    assert rt.client.xlen(log) == length
    assert rt.client.xlen(runner.keys("acme").rejections) == 0


def test_a_dead_consumers_entries_are_reclaimed(world: tuple[Runtime, IngestRunner]) -> None:
    rt, runner = world
    stream = runner.keys("acme").ingest
    publish(
        rt.client,
        stream,
        "call.started",
        {"call_id": "c3", "project_id": "p1", "direction": "inbound", "occurred_at": T0},
    )
    rt.client.xreadgroup(GROUP, "dead", {stream: ">"}, count=10)  # read, then the consumer dies
    runner.reclaim_idle_ms = 0
    assert runner.run_once(block_ms=10) == 1
    assert rt.ledger("acme").call("acme", "c3").call_id == "c3"
    assert rt.client.xpending(stream, GROUP)["pending"] == 0


@pytest.mark.parametrize(
    ("type_", "body", "target", "error", "needle"),
    [
        ("call.started", "{not json", "", "invalid_request", "body"),
        (
            "call.started",
            {"call_id": "c9", "project_id": "p1", "direction": "sideways", "occurred_at": T0},
            "",
            "invalid_request",
            "direction",
        ),
        (
            "call.started",
            {"call_id": "c9", "project_id": "p1", "direction": "inbound", "occurred_at": "2026-11-22T09:00"},
            "",
            "invalid_request",
            "occurred_at",
        ),
        ("call.teleported", {}, "c1", "unknown_type", "call.teleported"),
        ("call.ended", {"occurred_at": T0}, "", "invalid_request", "target"),
        ("call.ended", {"occurred_at": T0}, "nope", "not_found", "nope"),
        (
            "call.started",
            {"call_id": "c9", "project_id": "nope", "direction": "inbound", "occurred_at": T0},
            "",
            "not_found",
            "nope",
        ),
        (
            "call.correction",
            {"outcome_code": "SALE", "occurred_at": T0, "reason": "r"},
            "c1",
            "forbidden",
            "supervisor",
        ),
        ("call.started", "x" * (300 * 1024), "", "payload_too_large", "256 KiB"),
    ],
)
def test_bad_entries_are_rejected_with_the_reason(
    world: tuple[Runtime, IngestRunner], type_: str, body: Any, target: str, error: str, needle: str
) -> None:
    rt, runner = world
    keys = runner.keys("acme")
    before = snapshot(rt.client, rt.settings.key_prefix)  # every key but ingest and rejections
    entry = publish(rt.client, keys.ingest, type_, body, target=target)
    assert runner.run_once() == 1
    [(_, rejection)] = rt.client.xrange(keys.rejections)
    assert rejection[b"input"].decode() == entry
    assert rejection[b"error"].decode() == error
    assert needle in rejection[b"message"].decode()
    assert 400 <= int(rejection[b"status"]) < 500
    assert diff(before, snapshot(rt.client, rt.settings.key_prefix)) == []  # nothing else written
    assert rt.client.xpending(keys.ingest, GROUP)["pending"] == 0
