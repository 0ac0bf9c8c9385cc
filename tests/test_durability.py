"""Durability: an acknowledged save survives a SIGKILL of redis-server.

Every test starts its own redis-server (``EmbeddedRedis`` in ``tmp_path``), whatever
REDIS_URL says: these tests kill and reconfigure servers.

Killing redis-server leaves its AOF writes in the OS page cache, so the crash test
alone would pass even with ``appendfsync no``. Hence the crash test also asserts the
effective ``appendfsync always`` (via ``check_durability``), and a negative control
runs the same crash with AOF off to show that the detector does see a loss.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.utils import Environment

from events.durability import (
    DurabilityReport,
    DurabilityUnknown,
    WeakDurability,
    allow_weak_from_env,
    check_durability,
)
from events.embedded import EmbeddedRedis
from events.store import RedisFactory

SHARD = "s00"
WRITERS = 4
KILL_AFTER_ACKS = 1_000  # SIGKILL once this many events are acknowledged, writers still running
MAX_SAVES_PER_WRITER = 5_000  # a bound in case the kill never comes (the test then fails)
TOPIC = "outcomes.test:DurabilityProbe"


def recorder_for(server: EmbeddedRedis) -> tuple[RedisFactory, ApplicationRecorder]:
    factory = RedisFactory(Environment(env={"REDIS_URL": server.url, "REDIS_SHARD": SHARD}))
    return factory, factory.application_recorder()


@dataclass
class Crash:
    """What the writers were told was saved, and what a restarted server has."""

    acked: dict[int, StoredEvent] = field(default_factory=dict)  # notification id -> event
    writer_errors: list[BaseException] = field(default_factory=list)
    recovered: dict[int, StoredEvent] = field(default_factory=dict)
    recovered_ids: list[int] = field(default_factory=list)
    max_notification_id: int | None = None
    per_aggregate: dict[uuid.UUID, list[StoredEvent]] = field(default_factory=dict)

    def lost(self) -> list[int]:
        """Acknowledged notification ids missing, or different, after the restart."""
        return sorted(n for n, event in self.acked.items() if self.recovered.get(n) != event)


def crash_while_writing(server: EmbeddedRedis) -> Crash:
    """Concurrent saves; SIGKILL mid-stream; restart on the same data dir; read back."""
    crash = Crash()
    lock = threading.Lock()
    enough = threading.Event()
    factory, recorder = recorder_for(server)

    def write(writer: int) -> None:
        originator_id = uuid.uuid4()
        version = 0
        try:
            for save in range(MAX_SAVES_PER_WRITER):
                # 1-3 events per save, binary state: an atomic multi-event save per aggregate
                events = [
                    StoredEvent(
                        originator_id=originator_id,
                        originator_version=version + i,
                        topic=TOPIC,
                        state=f"w{writer}s{save}e{i}:".encode() + os.urandom(24),
                    )
                    for i in range(1 + save % 3)
                ]
                ids = recorder.insert_events(events)
                assert ids is not None and len(ids) == len(events)
                version += len(events)
                with lock:
                    crash.acked.update(zip(ids, events, strict=True))
                    if len(crash.acked) >= KILL_AFTER_ACKS:
                        enough.set()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            with lock:
                crash.writer_errors.append(error)

    threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=20), "writers did not reach the kill point"
    server.kill()  # from this thread, while the writers are mid-stream
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive(), "a writer hung after the kill"
    factory.close()

    server.start()  # same port, same data dir: loads whatever was persisted
    factory, recorder = recorder_for(server)
    try:
        notifications = recorder.select_notifications(start=1, limit=1_000_000)
        crash.recovered_ids = [n.id for n in notifications]
        crash.recovered = {
            n.id: StoredEvent(
                originator_id=n.originator_id,
                originator_version=n.originator_version,
                topic=n.topic,
                state=n.state,
            )
            for n in notifications
        }
        crash.max_notification_id = recorder.max_notification_id()
        for originator_id in {e.originator_id for e in crash.acked.values()}:
            assert isinstance(originator_id, uuid.UUID)
            crash.per_aggregate[originator_id] = list(recorder.select_events(originator_id))
    finally:
        factory.close()
    return crash


@pytest.fixture()
def server_factory() -> Iterator[list[EmbeddedRedis]]:
    """Servers a test starts are stopped at its end, whatever happens."""
    servers: list[EmbeddedRedis] = []
    yield servers
    for server in servers:
        server.stop()


def start(
    servers: list[EmbeddedRedis],
    data_dir: Path,
    *,
    appendonly: bool = True,
    appendfsync: str = "always",
    extra_args: list[str] | None = None,
) -> EmbeddedRedis:
    server = EmbeddedRedis(data_dir, appendonly=appendonly, appendfsync=appendfsync, extra_args=extra_args)
    servers.append(server)
    return server.start()


def wait_for_aof_rewrite(client: redis.Redis, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        assert time.monotonic() < deadline, "AOF rewrite did not finish"
        time.sleep(0.02)


# -- the crash test and its negative control --------------------------------------------


def test_acknowledged_events_survive_sigkill_with_fsync_always(
    tmp_path: Path, server_factory: list[EmbeddedRedis]
) -> None:
    server = start(server_factory, tmp_path / "aof", appendonly=True, appendfsync="always")
    with redis.Redis.from_url(server.url) as client:
        report = check_durability(client)
    assert (report.appendonly, report.appendfsync, report.weak) == ("yes", "always", False)

    crash = crash_while_writing(server)

    assert len(crash.acked) >= KILL_AFTER_ACKS
    assert len(crash.writer_errors) == WRITERS, "every writer must have been cut off by the kill"
    assert crash.lost() == [], "acknowledged events lost or changed"
    # the log is gap-free 1..N (N may exceed the acknowledged: a save applied but unanswered)
    n = len(crash.recovered_ids)
    assert crash.recovered_ids == list(range(1, n + 1))
    assert crash.max_notification_id == n >= max(crash.acked)
    # each aggregate's history reads back, acknowledged events identical and in order
    for originator_id, stored in crash.per_aggregate.items():
        assert [e.originator_version for e in stored] == list(range(len(stored)))
        acked = sorted(
            (e for e in crash.acked.values() if e.originator_id == originator_id),
            key=lambda e: e.originator_version,
        )
        assert stored[: len(acked)] == acked


def test_negative_control_without_aof_the_crash_test_sees_the_loss(
    tmp_path: Path, server_factory: list[EmbeddedRedis]
) -> None:
    server = start(server_factory, tmp_path / "no-aof", appendonly=False)  # and --save "": nothing persisted
    with redis.Redis.from_url(server.url) as client, pytest.raises(WeakDurability, match="appendonly"):
        check_durability(client)

    crash = crash_while_writing(server)

    assert len(crash.acked) >= KILL_AFTER_ACKS
    lost = crash.lost()
    assert lost, "the detector failed to see a loss that must have happened"
    assert lost == sorted(crash.acked)  # with nothing persisted, everything acknowledged is gone
    assert crash.recovered_ids == [] and crash.max_notification_id is None


# -- check_durability against real servers ----------------------------------------------


@pytest.fixture()
def durable(tmp_path: Path, server_factory: list[EmbeddedRedis]) -> Iterator[redis.Redis]:
    server = start(server_factory, tmp_path / "check", appendonly=True, appendfsync="always")
    with redis.Redis.from_url(server.url) as client:
        yield client


def test_check_durability_passes_on_aof_with_fsync_always(durable: redis.Redis) -> None:
    assert check_durability(durable) == DurabilityReport("yes", "always", ())


def test_check_durability_refuses_fsync_everysec(durable: redis.Redis) -> None:
    durable.config_set("appendfsync", "everysec")
    with pytest.raises(WeakDurability, match=r"appendfsync is 'everysec', required 'always'") as raised:
        check_durability(durable)
    assert "OUTCOMES_ALLOW_WEAK_DURABILITY=1" in str(raised.value)


def test_check_durability_refuses_aof_off(tmp_path: Path, server_factory: list[EmbeddedRedis]) -> None:
    server = start(server_factory, tmp_path / "off", appendonly=False, appendfsync="always")
    with redis.Redis.from_url(server.url) as client:
        with pytest.raises(WeakDurability, match=r"appendonly is 'no', required 'yes'") as raised:
            check_durability(client)
        assert "appendfsync" not in str(raised.value).split("Configure")[0]  # only the failing setting
        # switched on at run time, it counts as on
        client.config_set("appendonly", "yes")
        assert not check_durability(client).weak
        wait_for_aof_rewrite(client)  # redis-server ignores SIGTERM while it writes the initial AOF


def test_check_durability_allow_weak_returns_a_weak_report(durable: redis.Redis) -> None:
    durable.config_set("appendfsync", "no")
    report = check_durability(durable, allow_weak=True)
    assert report.weak
    assert (report.appendonly, report.appendfsync) == ("yes", "no")
    assert report.problems == ("appendfsync is 'no', required 'always'",)


def test_check_durability_when_config_is_disabled(tmp_path: Path, server_factory: list[EmbeddedRedis]) -> None:
    # as on managed Redis services that rename or remove CONFIG
    server = start(server_factory, tmp_path / "noconfig", extra_args=["--rename-command", "CONFIG", ""])
    with redis.Redis.from_url(server.url) as client:
        with pytest.raises(DurabilityUnknown, match="cannot read the Redis durability settings"):
            check_durability(client)
        report = check_durability(client, allow_weak=True)
    assert report.weak and report.appendonly is None and report.appendfsync is None


def test_allow_weak_from_env() -> None:
    assert allow_weak_from_env({"OUTCOMES_ALLOW_WEAK_DURABILITY": "1"})
    assert allow_weak_from_env({"OUTCOMES_ALLOW_WEAK_DURABILITY": "true"})
    assert not allow_weak_from_env({"OUTCOMES_ALLOW_WEAK_DURABILITY": "0"})
    assert not allow_weak_from_env({})
