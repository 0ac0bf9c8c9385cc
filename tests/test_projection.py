"""The outcome-count view: exactly once from the log, whatever the deliveries do."""

from __future__ import annotations

import msgspec
import pytest

from projections.outcome_counts import outcome_counts
from services.config import Settings
from tests.helpers import call_with_outcome, new_runtime, seed_project
from workers.projections import GROUP, ProjectionRunner, ensure_group


@pytest.fixture()
def world(redis_url: str, shard: str):  # type: ignore[no-untyped-def]
    runtime = new_runtime(redis_url, shard)
    seed_project(runtime, "acme")
    for i, code in enumerate(["SALE", "SALE", "NO_SALE"]):
        call_with_outcome(runtime, "acme", f"c{i}", code)
    runner = ProjectionRunner(runtime.settings)
    yield runtime, runner
    runtime.close()


def counts(runtime, runner) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return outcome_counts(runtime.client, runner.keys, "acme", "winter")


def test_catch_up_twice_counts_once(world) -> None:  # type: ignore[no-untyped-def]
    runtime, runner = world
    head = runtime.ledger("acme").recorder.max_notification_id()
    runner.settle(head)
    runner.settle(head)  # a redelivery changes nothing
    assert counts(runtime, runner) == {"NO_SALE": 1, "SALE": 2}
    assert runner.views[0].position() == head


def test_stale_position_writes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    runtime, runner = world
    view = runner.views[0]
    applied = view._apply(
        keys=[runner.keys.tracking],
        args=[view.name, "12345", "12346", msgspec.msgpack.encode([["k", "f", 1]])],
    )
    assert applied == 0
    assert runtime.client.exists("k") == 0 and view.position() == 0


def test_pending_entries_of_a_dead_consumer_are_reclaimed(world) -> None:  # type: ignore[no-untyped-def]
    runtime, runner = world
    ensure_group(runtime.client, runner.keys.log, GROUP)
    # a consumer reads everything, then dies before settling or acknowledging
    runtime.client.xreadgroup(GROUP, "dead", {runner.keys.log: ">"}, count=1000)
    assert runtime.client.xpending(runner.keys.log, GROUP)["pending"] > 0
    assert runner.reclaim("alive", min_idle_ms=0) > 0
    assert runtime.client.xpending(runner.keys.log, GROUP)["pending"] == 0
    assert counts(runtime, runner) == {"NO_SALE": 1, "SALE": 2}


def test_drop_and_rebuild_gives_identical_results(world) -> None:  # type: ignore[no-untyped-def]
    runtime, runner = world
    runner.settle(runtime.ledger("acme").recorder.max_notification_id())
    before = counts(runtime, runner)
    for view in runner.views:
        view.drop()
    assert counts(runtime, runner) == {}
    for view in runner.views:
        view.catch_up()
    assert counts(runtime, runner) == before


def test_settings_from_env_defaults() -> None:
    settings = Settings.from_env()
    assert settings.shard and settings.key_prefix
