"""Two worker processes share the action followers (issue 4, "several worker processes share
the load"; workers/leases.py): each runs the followers it is home to, together they record
every effect once, and when one is SIGKILLed the other takes its followers over after the
idle time (``OUTCOMES_RECLAIM_IDLE_MS``, 500 ms in tests/stack.py) and finishes its work.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

import pytest
import redis

from events.keys import ShardKeys, encode_originator_id
from events.store import StreamEntries
from events.types import (
    CallAttemptCounted,
    ContactHandling,
    DoNotCallSpec,
    OutcomeDefinition,
    ProjectSettings,
    SmsRequested,
    SmsSent,
)
from events.types import DoNotCallAdded as Dnc
from services.interactions import aggregate_id
from services.ledger import Ledger
from services.rules import Context
from services.rules import config as config_rules
from services.rules.contact_lists import dialing_id
from services.runtime import Runtime
from tests.helpers import selected_for_contacts, wait_until
from tests.receiver import Receiver
from tests.stack import Stack
from workers.actions import PLANNER, SENDER, SmsPlanner
from workers.contact_lists import PLANNER as LISTS
from workers.leases import Leases
from workers.partitions import partition_of, unit_name

TENANT = "share"
ROUND = 40  # selections per round


def seed(runtime: Runtime) -> Ledger:
    runtime.create_tenant(TENANT, "Share")
    ledger = runtime.ledger(TENANT)
    admin = Context(TENANT, "admin:test", datetime.now(UTC))
    ledger.configure(admin, "sms-template", "t", lambda c: config_rules.save_template(c, admin, "t", "Thank you"))
    handling = ContactHandling(do_not_call=DoNotCallSpec(scope="project"))
    later = OutcomeDefinition(code="LATER", name="Later", sms_template="t", auto_send=True, contact_handling=handling)
    ledger.define_outcome(admin, later)
    ledger.create_project(admin, "p", ProjectSettings(name="P", direction="outbound"))
    return ledger


def select(ledger: Ledger, numbers: range) -> None:
    selected_for_contacts(ledger, TENANT, "LATER", numbers)


def owner(process: subprocess.Popen[bytes]) -> str:
    """The name a worker process holds its leases under (workers/app.py: host-pid)."""
    return f"{socket.gethostname()}-{process.pid}"


@pytest.fixture
def two(stack: Stack) -> Iterator[tuple[Stack, list[subprocess.Popen[bytes]]]]:
    processes: list[subprocess.Popen[bytes]] = []
    try:
        yield stack, processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_two_processes_split_the_followers_and_one_takes_over_when_the_other_is_killed(
    two: tuple[Stack, list[subprocess.Popen[bytes]]],
) -> None:
    stack, processes = two
    runtime = stack.runtime()
    ledger = seed(runtime)
    keys = ShardKeys(runtime.settings.shard, runtime.settings.key_prefix)
    stream = keys.published("contact-lists", TENANT)

    def holders() -> dict[str, str]:
        found = {n: runtime.client.get(keys.lease(n)) for n in (PLANNER, SENDER, LISTS)}
        return {n: bytes(v).decode() for n, v in found.items() if v is not None}  # type: ignore[arg-type]

    def published() -> int:
        return int(runtime.client.xlen(stream))

    def sms_sent() -> int:
        return len(gateway.keys())

    with Receiver(deduplicate=False) as gateway:
        stack.env["OUTCOMES_SMS_GATEWAY"] = gateway.url
        first, second = (stack.spawn("worker", "--process", str(i), "--of", "2") for i in range(2))
        processes += [first, second]
        # the followers at even places in actions.followers are process 0's, the odd ones 1's
        home = {PLANNER: owner(first), SENDER: owner(second), LISTS: owner(second)}
        wait_until(lambda: holders() == home, 30, "each process to hold its own followers")

        select(ledger, range(ROUND))
        wait_until(lambda: published() >= 2 * ROUND and sms_sent() >= ROUND, 60, "both processes to act")
        assert holders() == home  # the SMS went from process 0, the contact-list changes from 1

        # the second process killed while it records the next round's contact-list effects
        seen = published()
        select(ledger, range(ROUND, 2 * ROUND))
        wait_until(lambda: published() > seen, 60, "the second process to record")
        second.send_signal(signal.SIGKILL)
        second.wait()
        select(ledger, range(2 * ROUND, 3 * ROUND))  # work for the dead one's followers
        wait_until(lambda: set(holders().values()) == {owner(first)}, 30, "the first to take over")
        wait_until(lambda: published() >= 2 * 3 * ROUND and sms_sent() >= 3 * ROUND, 60, "every effect")

    # each effect once: the contact's record and the published stream, the SMS on the wire
    for n in range(3 * ROUND):
        events = list(ledger.events.get(dialing_id(TENANT, f"k{n}")))
        assert [type(e) for e in events] == [CallAttemptCounted, Dnc], n
        call = aggregate_id(TENANT, "call", f"c{n}")
        sms = list(ledger.events.get(aggregate_id(TENANT, "sms", f"{call}/3")))
        assert [type(e) for e in sms] == [SmsRequested, SmsSent], n
    entries = cast(StreamEntries, runtime.client.xrange(stream))
    assert len(entries) == 2 * 3 * ROUND
    assert set(Counter(fields[b"id"] for _, fields in entries).values()) == {1}
    deliveries = Counter(gateway.keys())
    assert len(deliveries) == 3 * ROUND and set(deliveries.values()) == {1}  # the sender's process never sent


def test_two_processes_split_the_sms_planner_by_partition_and_one_takes_over_the_others(
    two: tuple[Stack, list[subprocess.Popen[bytes]]],
) -> None:
    """OUTCOMES_ACTION_PARTITIONS=2 (workers/partitions.py): the SMS planner's two units, one
    per process, each send their interactions' SMS; the one SIGKILLed while it sends, the
    other takes its unit over and every SMS is recorded once."""
    stack, processes = two
    runtime = stack.runtime()
    ledger = seed(runtime)
    keys = ShardKeys(runtime.settings.shard, runtime.settings.key_prefix)
    units = [unit_name(PLANNER, p, 2) for p in range(2)]

    def holders() -> dict[str, str]:
        found = {n: runtime.client.get(keys.lease(n)) for n in units}
        return {n: bytes(v).decode() for n, v in found.items() if v is not None}  # type: ignore[arg-type]

    def call(n: int) -> UUID:
        return aggregate_id(TENANT, "call", f"c{n}")

    # the interactions of each round are in both partitions: each process has work
    for first_n in range(0, 3 * ROUND, ROUND):
        parts = {partition_of(encode_originator_id(call(n)).encode(), 2) for n in range(first_n, first_n + ROUND)}
        assert parts == {0, 1}

    with Receiver(deduplicate=False) as gateway:
        stack.env["OUTCOMES_SMS_GATEWAY"] = gateway.url
        stack.env["OUTCOMES_ACTION_PARTITIONS"] = "2"
        first, second = (stack.spawn("worker", "--process", str(i), "--of", "2") for i in range(2))
        processes += [first, second]
        home = {units[0]: owner(first), units[1]: owner(second)}
        wait_until(lambda: holders() == home, 30, "each process to hold its own unit")

        select(ledger, range(ROUND))
        wait_until(lambda: len(set(gateway.keys())) >= ROUND, 60, "both units to send")
        assert holders() == home  # partition 1's SMS went from the second process

        seen = len(gateway.keys())
        select(ledger, range(ROUND, 2 * ROUND))
        wait_until(lambda: len(gateway.keys()) > seen, 60, "the next round to start going")
        second.send_signal(signal.SIGKILL)  # while its unit sends
        second.wait()
        select(ledger, range(2 * ROUND, 3 * ROUND))
        wait_until(lambda: set(holders().values()) == {owner(first)}, 30, "the first to take over")
        wait_until(lambda: len(set(gateway.keys())) >= 3 * ROUND, 60, "every SMS")

        def sms_of(n: int) -> UUID:
            return aggregate_id(TENANT, "sms", f"{call(n)}/3")

        def recorded() -> bool:
            return all(len(list(ledger.events.get(sms_of(n)))) == 2 for n in range(3 * ROUND))

        wait_until(recorded, 60, "every SMS recorded sent")

        def both_at_head() -> bool:  # a unit moves past the other's entries when it next reads
            head = runtime.client.hget(keys.head, "n")
            return runtime.client.hmget(keys.tracking, units) == [head, head]

        wait_until(both_at_head, 60, "each unit past the other's entries too")

    for n in range(3 * ROUND):  # each once in the history
        assert [type(e) for e in ledger.events.get(sms_of(n))] == [SmsRequested, SmsSent], n
    deliveries = Counter(gateway.keys())
    assert len(deliveries) == 3 * ROUND
    # on the wire: a repeat only for what the killed unit had in flight, with the same key
    assert sum(deliveries.values()) - 3 * ROUND <= SmsPlanner.in_flight()


def test_worker_processes_n_starts_n_sharing_processes_and_stops_them(stack: Stack) -> None:
    runtime = stack.runtime()
    keys = ShardKeys(runtime.settings.shard, runtime.settings.key_prefix)
    names = [PLANNER, SENDER, LISTS]

    def holders() -> set[str]:
        return {bytes(v).decode() for n in names if (v := runtime.client.get(keys.lease(n))) is not None}  # type: ignore[arg-type]

    supervisor = stack.spawn("worker", "--processes", "2")
    try:
        wait_until(lambda: len(holders()) == 2, 60, "two processes to hold their own followers")
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
        assert holders() == set()  # stopped cleanly: each let its leases go
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_leases_home_first_stand_in_after_the_idle_time_and_give_back(redis_client: redis.Redis, shard: str) -> None:
    keys = ShardKeys(shard, "lease" + shard)
    names = ["a", "b"]

    def process(owner: str, index: int) -> Leases:
        return Leases(redis_client, keys, owner, names, idle_ms=1500, process=index, processes=2)

    first, second = process("p0", 0), process("p1", 1)
    assert first.refresh() == {"a"} and second.refresh() == {"b"}  # each its home's
    second.release()
    assert first.refresh() == {"a"}  # "b" is free, but the first is not up an idle time yet
    time.sleep(1.6)  # long enough up; the leases lapse meanwhile (as after a kill)
    assert first.refresh() == {"a", "b"}  # its own again, and it stands in for "b"
    back = process("p1-restarted", 1)
    assert back.refresh() == set()  # held by the stand-in: asks for it back
    assert first.refresh() == {"a"}  # gives it back at its next renewal
    assert back.refresh() == {"b"}
    back.release()
    assert first.holders() == {"a": "p0"}


def test_a_holder_whose_heartbeat_stalls_stops_working_when_its_lease_may_have_lapsed(
    redis_client: redis.Redis, shard: str
) -> None:
    """Under load the heartbeat thread can stall past the idle time while another process
    takes the follower over: the stalled holder must not go on (an SMS sent twice to a
    gateway that does not deduplicate), so what it holds expires with the lease."""
    keys = ShardKeys(shard, "stall" + shard)
    stalled = Leases(redis_client, keys, "p0", ["a"], idle_ms=300, process=0, processes=1)
    assert stalled.refresh() == {"a"} and stalled.holds("a")
    time.sleep(0.4)  # no renewal for longer than the lease lives
    other = Leases(redis_client, keys, "p1", ["a"], idle_ms=300, process=1, processes=2)
    time.sleep(0.35)  # the other process is up an idle time: it may stand in
    assert other.refresh() == {"a"} and other.holds("a")
    assert not stalled.holds("a") and stalled.held() == set()  # without asking Redis
    assert stalled.refresh() == set()  # and the next renewal agrees
