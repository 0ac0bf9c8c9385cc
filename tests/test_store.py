"""What our recorder adds to eventsourcing's contract: hash chains, idempotency keys,
read preconditions, the tenant index and the shard's keyspace."""

from __future__ import annotations

import hashlib
import threading
import uuid

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.utils import Environment
from redis.crc import key_slot

from events.connect import redis_client
from events.keys import ShardKeys
from events.store import (
    AlreadyRecorded,
    IdempotencyKeyReused,
    RedisApplicationRecorder,
    RedisFactory,
    VersionConflict,
)

ZERO = "0" * 40


def recorder(redis_url: str, shard: str) -> RedisApplicationRecorder:
    factory = RedisFactory(Environment(env={"REDIS_URL": redis_url, "REDIS_SHARD": shard}))
    r = factory.application_recorder()
    assert isinstance(r, RedisApplicationRecorder)
    return r


def events(oid: uuid.UUID, versions: range, topic: str = "T") -> list[StoredEvent]:
    return [StoredEvent(oid, v, topic, f"state {v}".encode()) for v in versions]


def test_every_event_is_chained_per_aggregate_and_along_the_log(redis_url: str, shard: str) -> None:
    rec = recorder(redis_url, shard)
    a, b = uuid.uuid4(), uuid.uuid4()
    rec.insert_events(events(a, range(1, 3)))
    rec.insert_events(events(b, range(1, 2)) + events(a, range(3, 4)))
    entries = rec.conn.client.xrange(rec.keys.log)
    agg_prev: dict[bytes, str] = {}
    log_prev = ZERO
    for entry_id, f in entries:
        nid = entry_id.split(b"-")[0].decode()
        prev = agg_prev.get(f[b"o"], ZERO)
        expected = hashlib.sha1(
            prev.encode() + b"\n" + f[b"o"] + b"\n" + f[b"v"] + b"\n" + f[b"t"] + b"\n" + f[b"s"]
        ).hexdigest()
        assert f[b"h"].decode() == expected
        log_prev = hashlib.sha1(f"{log_prev}\n{nid}\n{expected}".encode()).hexdigest()
        assert f[b"c"].decode() == log_prev
        agg_prev[f[b"o"]] = expected
    assert rec.conn.client.hget(rec.keys.head, "c").decode() == log_prev


def test_idempotency_key_same_body_returns_first_result_and_writes_nothing(redis_url: str, shard: str) -> None:
    rec = recorder(redis_url, shard)
    a = uuid.uuid4()
    kw = {"tenant": "acme", "idempotency_key": "k1", "idempotency_digest": "d1", "receipt": '{"ok":1}'}
    assert rec.insert_events(events(a, range(1, 3)), **kw) == [1, 2]
    with pytest.raises(AlreadyRecorded) as repeat:
        rec.insert_events(events(uuid.uuid4(), range(1, 2)), **kw)
    assert repeat.value.receipt == '{"ok":1}' and repeat.value.notification_ids == [1, 2]
    with pytest.raises(IdempotencyKeyReused):
        rec.insert_events(events(uuid.uuid4(), range(1, 2)), **{**kw, "idempotency_digest": "other"})
    assert rec.max_notification_id() == 2
    assert rec.conn.client.ttl(rec.keys.idempotency("acme", "k1")) > 24 * 3600


def test_idempotency_keys_are_scoped_to_the_tenant(redis_url: str, shard: str) -> None:
    rec = recorder(redis_url, shard)
    kw = {"idempotency_key": "same", "idempotency_digest": "d"}
    assert rec.insert_events(events(uuid.uuid4(), range(1, 2)), tenant="t1", **kw) == [1]
    assert rec.insert_events(events(uuid.uuid4(), range(1, 2)), tenant="t2", **kw) == [2]


def test_expected_version_of_an_aggregate_read_but_not_written(redis_url: str, shard: str) -> None:
    rec = recorder(redis_url, shard)
    project, call = uuid.uuid4(), uuid.uuid4()
    rec.insert_events(events(project, range(1, 3)))
    rec.insert_events(events(call, range(1, 2)), expect=[(project, 2)])
    rec.insert_events(events(project, range(3, 4)))  # the outcome set moves on
    with pytest.raises(VersionConflict, match="expected 2"):
        rec.insert_events(events(call, range(2, 3)), expect=[(project, 2)])
    assert [e.originator_version for e in rec.select_events(call)] == [1]


def test_tenant_index_lists_the_tenants_log_positions_in_order(redis_url: str, shard: str) -> None:
    rec = recorder(redis_url, shard)
    rec.insert_events(events(uuid.uuid4(), range(1, 3)), tenant="t1")
    rec.insert_events(events(uuid.uuid4(), range(1, 2)), tenant="t2")
    rec.insert_events(events(uuid.uuid4(), range(1, 2)), tenant="t1")
    ids = [e[0] for e in rec.conn.client.xrange(rec.keys.tenant_index("t1"))]
    assert ids == [b"1-0", b"2-0", b"4-0"]


def test_every_key_of_a_shard_shares_its_hash_tag(redis_url: str, shard: str) -> None:
    rec = recorder(redis_url, shard)
    rec.insert_events(events(uuid.uuid4(), range(1, 3)), tenant="t1", idempotency_key="k", idempotency_digest="d")
    client = redis_client(redis_url)
    keys = [k.decode() for k in client.scan_iter(match=f"*{{{shard}}}*")]
    assert len(keys) >= 4
    assert all(f"{{{shard}}}" in k for k in keys)
    # one Redis Cluster slot for the whole shard: one script may touch any of its keys
    assert {key_slot(k.encode()) for k in keys} == {key_slot(ShardKeys(shard).log.encode())}


def test_concurrent_saves_on_one_aggregate_exactly_one_wins(redis_url: str, shard: str) -> None:
    rec = recorder(redis_url, shard)
    a = uuid.uuid4()
    rec.insert_events(events(a, range(1, 2)))
    results: list[str] = []
    barrier = threading.Barrier(20)

    def attempt() -> None:
        barrier.wait()
        try:
            rec.insert_events(events(a, range(2, 3)))
            results.append("ok")
        except IntegrityError:
            results.append("conflict")

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 19 + ["ok"]
    assert len(rec.select_events(a)) == 2
