"""Redis Cluster (docs/cluster.md): a shard's keys stay in one slot, tenants spread over
the masters, and the service finds its way by configuration only (a ``redis+cluster://``
URL). The end-to-end tests run on the cluster too (tests/helpers.py ``ON_BOTH``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import redis
from redis.crc import key_slot

from events.connect import node_client, redis_client, server_clients, slot_groups
from events.durability import WeakDurability, check_durability
from events.keys import ShardKeys
from events.types import OutcomeDefinition, ProjectSettings
from services.config import Settings
from services.registry import place_tenant
from services.rules import Context
from services.runtime import Runtime
from tests.helpers import call_with_outcome, seed_project
from workers.ingest import IngestRunner

SHARDS = ("s00", "s01", "s02")


def test_every_key_of_a_shard_is_in_the_shard_slot() -> None:
    keys = ShardKeys("s07", "ol", {"outcome_counts": "3"})
    names = [
        keys.log,
        keys.head,
        keys.tracking,
        keys.timers,
        keys.timers + ":leased",
        keys.action_partitions,
        keys.dead_letters,
        keys.attempts,
        keys.checkpoints,
        keys.view_generations,
        keys.archived,
        keys.archived_heads,
        keys.compact_bucket("a3"),
        keys.aggregate_index(uuid.uuid4()),
        keys.aggregate_index("catalogue"),
        keys.tenant_index("acme"),
        keys.idempotency("acme", "k-1"),
        keys.plain_stream("snapshots", uuid.uuid4()),
        keys.flow("acme", "retention"),
        keys.published("contact-lists", "acme"),
        keys.lease("sms"),
        keys.lease_wanted("sms"),
        keys.suppressed("acme"),
        keys.view("outcome_counts") + "c:acme:2026-11-22",
    ]
    assert {key_slot(name.encode()) for name in names} == {key_slot(b"{s07}")}


def test_tenants_are_placed_on_every_shard_and_stay_put() -> None:
    tenants = [f"tenant-{i}" for i in range(30)]
    placed = {t: place_tenant(t, SHARDS) for t in tenants}
    assert set(placed.values()) == set(SHARDS)
    assert all(place_tenant(t, SHARDS) == shard for t, shard in placed.items())
    assert {place_tenant(t, ("s00",)) for t in tenants} == {"s00"}
    with pytest.raises(ValueError, match="no shard"):
        place_tenant("acme", ())


def one_tenant_per_shard() -> dict[str, str]:
    """shard -> a tenant id that ``place_tenant`` puts there."""
    found: dict[str, str] = {}
    for i in range(100):
        found.setdefault(place_tenant(f"t{i}", SHARDS), f"t{i}")
    return found


@pytest.fixture()
def spread(cluster_url: str) -> Iterator[Runtime]:
    settings = Settings(redis_url=cluster_url, key_prefix="cl" + uuid.uuid4().hex[:6], tenant_shards=SHARDS)
    runtime = Runtime(settings)
    yield runtime
    runtime.close()


def master_of(client: redis.Redis, key: str) -> int:
    return int(node_client(client, key).connection_pool.connection_kwargs["port"])


def test_tenants_spread_over_the_masters_each_shard_on_one(spread: Runtime) -> None:
    client = spread.client
    tenants = one_tenant_per_shard()
    for shard, tenant in tenants.items():
        seed_project(spread, tenant)
        call_with_outcome(spread, tenant, "c-1", "SALE")
        assert spread.shard_of(tenant) == shard
    logs = {shard: spread.shard_keys_for(shard).log for shard in SHARDS}
    # the three shards' slots belong to the three masters (EmbeddedCluster splits slots evenly)
    masters = {shard: master_of(client, log) for shard, log in logs.items()}
    assert len(set(masters.values())) == 3
    for shard, tenant in tenants.items():
        # read straight from that master, no cluster routing: the shard's log and its
        # tenant index are there, and no other master holds a key of the shard
        server = redis.Redis(port=masters[shard])
        entries = cast(list[Any], server.xrange(logs[shard]))
        assert {f[b"t"] for _, f in entries} >= {b"CallStarted", b"OutcomeSelected"}
        assert server.xlen(spread.shard_keys(tenant).tenant_index(tenant)) == len(entries)
        for other in server_clients(client):
            if other.connection_pool.connection_kwargs["port"] != masters[shard]:
                assert list(other.scan_iter(match=f"{spread.settings.key_prefix}:{{{shard}}}:*")) == []
        server.close()


def test_ingest_reads_tenants_whose_streams_lie_in_other_slots(spread: Runtime) -> None:
    """Two tenants on one shard: their ingest streams have hash tags of their own, which one
    XREADGROUP cannot take on a cluster; the worker reads them slot by slot."""
    tenants = [t for t in (f"t{i}" for i in range(100)) if place_tenant(t, SHARDS) == "s01"][:2]
    for tenant in tenants:
        spread.create_tenant(tenant, tenant)
        admin = Context(tenant, "admin:t", datetime.now(UTC))
        spread.ledger(tenant).define_outcome(admin, OutcomeDefinition(code="SALE", name="Sale"))
        spread.ledger(tenant).create_project(admin, "p1", ProjectSettings(name="P", direction="outbound"))
    settings = Settings(spread.settings.redis_url, shard="s01", key_prefix=spread.settings.key_prefix)
    runner = IngestRunner(settings, consumer="test", reclaim_idle_ms=60_000)
    try:
        streams = [runner.keys(t).ingest for t in runner.tenants()]
        assert len(slot_groups(spread.client, streams)) == 2
        body = '{"call_id": "c-1", "project_id": "p1", "direction": "outbound", "occurred_at": "2026-11-22T09:00:00Z"}'
        for stream in streams:
            spread.client.xadd(stream, {"type": "call.started", "body": body})
        assert runner.run_once(block_ms=50) == 2
        for tenant in tenants:
            assert spread.ledger(tenant).call(tenant, "c-1").call_id == "c-1"
            assert spread.client.xpending(runner.keys(tenant).ingest, "ingest")["pending"] == 0
    finally:
        runner.close()


def test_an_ingest_user_reaches_its_stream_through_a_cluster_client(spread: Runtime) -> None:
    tenant = one_tenant_per_shard()["s02"]
    spread.create_tenant(tenant, tenant)
    username, password, keys = spread.create_ingest_user(tenant)
    url = spread.settings.redis_url.replace("://", f"://{username}:{password}@", 1)
    client = redis_client(url)
    try:
        assert client.xadd(keys.ingest, {"type": "call.started", "body": "{}"})
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.xrange(spread.shard_keys(tenant).log)
    finally:
        client.close()


def test_the_durability_check_reads_every_master(cluster_url: str) -> None:
    client = redis_client(cluster_url)
    assert not check_durability(client).weak
    weak = server_clients(client)[-1]
    weak.config_set("appendfsync", "everysec")
    try:
        with pytest.raises(WeakDurability, match="appendfsync"):
            check_durability(client)
    finally:
        weak.config_set("appendfsync", "always")
        client.close()
