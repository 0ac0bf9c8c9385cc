"""The durable scheduler and the wrap-up timeout, against a real Redis (in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from events.scheduler import Scheduler
from events.types import OutcomeDefinition, ProjectSettings, WrapUp
from services.errors import Conflict
from services.rules import Context
from services.rules.interactions import Choice
from services.runtime import Runtime
from services.timers import fire
from tests.helpers import new_runtime
from workers.timers import TimerRunner

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # in the past: its timers are due
WRAP = WrapUp(mode="mandatory_with_timeout", timeout_seconds=30, timeout_outcome="WRAP_UP_TIMEOUT")


@pytest.fixture()
def runtime(redis_url: str, shard: str) -> Iterator[Runtime]:
    rt = new_runtime(redis_url, shard)
    rt.create_tenant("acme", "Acme")
    ledger = rt.ledger("acme")
    admin = Context("acme", "admin:t", T0)
    ledger.define_outcome(admin, OutcomeDefinition(code="SALE", name="Sale"))
    ledger.create_project(admin, "p1", ProjectSettings(name="P", direction="outbound", wrap_up=WRAP))
    yield rt
    rt.close()


def ended_call(rt: Runtime, call_id: str = "c1") -> None:
    ledger = rt.ledger("acme")
    ctx = Context("acme", "agent:anna", T0)
    ledger.start_call(ctx, call_id=call_id, project_id="p1", direction="outbound", occurred_at=T0)
    ledger.end_call(ctx, call_id=call_id, occurred_at=T0 + timedelta(seconds=60))


def scheduler(rt: Runtime) -> Scheduler:
    return Scheduler(rt.client, rt.shard_keys("acme"), lease_ms=1000)


def due_ms() -> int:
    return int((T0 + timedelta(seconds=90)).timestamp() * 1000)


def selections(rt: Runtime, call_id: str = "c1") -> list[str]:
    call = rt.ledger("acme").call("acme", call_id)
    events = rt.ledger("acme").events.get(call.id)
    return [e.outcome_code for e in events if type(e).__name__ == "OutcomeSelected"]  # type: ignore[attr-defined]


def test_the_timer_is_written_with_the_event_that_sets_it(runtime: Runtime) -> None:
    s = scheduler(runtime)
    assert s.pending() == 0
    ended_call(runtime)
    assert s.pending() == 1
    # a save that fails writes no timer either
    with pytest.raises(Conflict):
        runtime.ledger("acme").start_call(
            Context("acme", "agent:anna", T0), call_id="c1", project_id="p1", direction="outbound", occurred_at=T0
        )
    assert s.pending() == 1


def test_claimed_only_when_due_and_fired_once(runtime: Runtime) -> None:
    ended_call(runtime)
    s = scheduler(runtime)
    assert s.claim(now_ms=due_ms() - 1) == []
    [timer] = s.claim(now_ms=due_ms())
    assert timer.kind == "wrap_up" and timer.target == "c1" and timer.detail == "WRAP_UP_TIMEOUT"
    fire(runtime.ledger("acme"), timer)
    fire(runtime.ledger("acme"), timer)  # a second firing (worker died before completing)
    s.complete(timer)
    assert selections(runtime) == ["WRAP_UP_TIMEOUT"]
    assert s.pending() == 0


def test_a_dead_workers_lease_runs_out_and_the_timer_is_due_again(runtime: Runtime) -> None:
    ended_call(runtime)
    s = scheduler(runtime)
    [timer] = s.claim(now_ms=due_ms())  # then the worker dies: never completed
    assert s.claim(now_ms=due_ms() + 500) == []  # still leased
    [again] = s.claim(now_ms=due_ms() + 1001)
    assert again == timer


def test_an_outcome_selected_before_the_timeout_wins(runtime: Runtime) -> None:
    ended_call(runtime)
    runtime.ledger("acme").select_call_outcome(
        Context("acme", "agent:anna", T0), call_id="c1", choice=Choice("SALE", T0 + timedelta(seconds=70))
    )
    [timer] = scheduler(runtime).claim(now_ms=due_ms())
    fire(runtime.ledger("acme"), timer)
    assert selections(runtime) == ["SALE"]


def test_the_timer_runner_fires_what_is_due(runtime: Runtime) -> None:
    ended_call(runtime)  # due at T0+90s: long past in real time
    runner = TimerRunner(runtime.settings, lease_ms=1000)
    try:
        assert runner.run_once() == 1
        assert runner.run_once() == 0
    finally:
        runner.close()
    assert selections(runtime) == ["WRAP_UP_TIMEOUT"]
