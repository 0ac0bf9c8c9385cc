"""The outcome-count view: exactly once from the log, whatever the deliveries do."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from events.keys import ShardKeys
from events.types import ProjectSettings
from projections.interactions import InteractionsView
from projections.outcome_counts import outcome_counts
from projections.outcome_mix import OutcomeMixView
from services.config import Settings
from services.rules import Context
from services.rules import config as config_rules
from tests.helpers import call_with_outcome, new_runtime, seed_project
from tests.test_replay import snapshot
from workers import projections as projection_worker
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


def test_quota_reached_is_recorded_once(redis_url: str, shard: str) -> None:
    runtime = new_runtime(redis_url, shard)
    seed_project(runtime, "acme")
    ledger = runtime.ledger("acme")
    admin = Context("acme", "admin:t", datetime.now(UTC))
    quotas = ProjectSettings(name="Winter", direction="outbound", quotas={"SALE": 2})
    ledger.configure(admin, "project", "winter", lambda c: config_rules.change_project(c, admin, "winter", quotas))
    runner = ProjectionRunner(runtime.settings)
    call_with_outcome(runtime, "acme", "q1", "SALE")
    runner.settle(ledger.recorder.max_notification_id() or 0)
    assert ledger.quota_reached("acme", "winter", "SALE") is None
    call_with_outcome(runtime, "acme", "q2", "SALE")
    call_with_outcome(runtime, "acme", "q3", "SALE")
    runner.settle(ledger.recorder.max_notification_id() or 0)
    assert ledger.quota_reached("acme", "winter", "SALE") is not None
    runner.quotas.sweep()  # again, e.g. after a restart: still one
    head = ledger.recorder.max_notification_id() or 0
    topics = [n.topic for n in ledger.recorder.select_notifications(1, head)]
    assert topics.count("QuotaReached") == 1
    runtime.close()


def test_a_worker_far_behind_catches_up_as_a_replay_does_with_the_same_views_and_quotas(
    redis_url: str, shard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``BULK_FROM`` events behind, ``settle`` takes the replay's pipelined pass and then
    checks every project's quotas: the views and the quota record equal the plain loop's."""
    runtime = new_runtime(redis_url, shard)
    try:
        seed_project(runtime, "acme")
        ledger = runtime.ledger("acme")
        admin = Context("acme", "admin:t", datetime.now(UTC))
        quotas = ProjectSettings(name="Winter", direction="outbound", quotas={"SALE": 20})
        ledger.configure(admin, "project", "winter", lambda c: config_rules.change_project(c, admin, "winter", quotas))
        for i in range(45):
            call_with_outcome(runtime, "acme", f"c{i}", "NO_SALE" if i % 3 == 0 else "SALE")
        head = ledger.recorder.max_notification_id() or 0
        keys = ShardKeys(runtime.settings.shard, runtime.settings.key_prefix)

        # a worker far behind: the bulk pass, whose quota check records the quota reached
        monkeypatch.setattr(projection_worker, "BULK_FROM", 10)
        bulk = ProjectionRunner(runtime.settings)
        caps = [v.memory_cap for v in bulk.views if isinstance(v, OutcomeMixView | InteractionsView)]
        passes: list[int] = []
        real = bulk.catch_up_bulk
        monkeypatch.setattr(bulk, "catch_up_bulk", lambda up_to: (passes.append(up_to), real(up_to)))
        bulk.settle(head)
        first = head
        assert passes == [first]
        assert ledger.quota_reached("acme", "winter", "SALE") is not None
        head = ledger.recorder.max_notification_id() or 0  # and the QuotaReached recorded
        bulk.settle(head)  # one event behind: the plain loop
        assert passes == [first]
        assert [v.memory_cap for v in bulk.views if isinstance(v, OutcomeMixView | InteractionsView)] == caps
        expected = snapshot(runtime.client, keys)
        assert counts(runtime, bulk) == {"NO_SALE": 15, "SALE": 30}

        # every view dropped and caught up by the plain loop: the same keys, the quota once
        for view in bulk.views:
            view.drop()
        monkeypatch.setattr(projection_worker, "BULK_FROM", 10**9)
        plain = ProjectionRunner(runtime.settings)
        plain.settle(head)
        assert snapshot(runtime.client, keys) == expected
        topics = [n.topic for n in ledger.recorder.select_notifications(1, ledger.recorder.max_notification_id() or 0)]
        assert topics.count("QuotaReached") == 1
    finally:
        runtime.close()
