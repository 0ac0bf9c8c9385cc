"""The interactions view's memory between batches: used only while the view's position is
the one its own last commit set; another writer, or the cap, sends it back to Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from projections import interactions
from projections.interactions import InteractionsView, Record, records
from services.rules import Context
from services.rules.interactions import Choice
from tests.helpers import T0, call_with_outcome, new_runtime, seed_project
from workers.projections import ProjectionRunner


@pytest.fixture()
def world(redis_url: str, shard: str):  # type: ignore[no-untyped-def]
    runtime = new_runtime(redis_url, shard)
    seed_project(runtime, "acme")
    runner = ProjectionRunner(runtime.settings)
    yield runtime, next(v for v in runner.views if isinstance(v, InteractionsView))
    runtime.close()


def view_keys(view: InteractionsView) -> dict[bytes, Any]:
    """Every key of the view and what it holds."""
    out: dict[bytes, Any] = {}
    for key in sorted(view.client.scan_iter(match=view.keys.view(interactions.NAME) + "*")):
        kind = view.client.type(key)
        out[key] = view.client.hgetall(key) if kind == b"hash" else view.client.zrange(key, 0, -1, withscores=True)
    return out


def rebuilt(view: InteractionsView) -> dict[bytes, Any]:
    """The view's keys as a fresh view builds them from position 0."""
    fresh = InteractionsView(view.client, view.keys, view.mapper)
    fresh.drop()
    fresh.catch_up()
    return view_keys(fresh)


def test_a_view_reads_records_again_after_another_writer(world) -> None:  # type: ignore[no-untyped-def]
    runtime, mine = world
    ledger = runtime.ledger("acme")
    ctx = Context("acme", "agent:anna", datetime.now(UTC))
    ledger.start_call(ctx, call_id="c1", project_id="winter", direction="outbound", occurred_at=T0)
    started = ledger.recorder.max_notification_id()
    ledger.end_call(ctx, call_id="c1", occurred_at=T0 + timedelta(minutes=3))
    ended = ledger.recorder.max_notification_id()
    ledger.select_call_outcome(ctx, call_id="c1", choice=Choice("SALE", T0 + timedelta(minutes=4)))

    mine.catch_up(until=started)  # its memory: c1 started, not ended
    other = InteractionsView(mine.client, mine.keys, mine.mapper)  # e.g. a second worker
    other.catch_up(until=ended)
    mine.catch_up()  # must not fold onto its memory: the position is the other's

    (record,) = records(mine.client, mine.keys, "acme", ["call:c1"])
    assert isinstance(record, Record)
    assert record.ended_at == T0 + timedelta(minutes=3)
    assert [s.code for s in record.selections] == ["SALE"]
    keys = view_keys(mine)
    assert keys == rebuilt(mine)


def test_a_memory_past_its_cap_gives_the_same_view(world) -> None:  # type: ignore[no-untyped-def]
    runtime, view = world
    for i, code in enumerate(["SALE", "NO_SALE", "SALE", "SALE", "NO_SALE"]):
        call_with_outcome(runtime, "acme", f"c{i}", code)
    whole = rebuilt(view)
    small = InteractionsView(view.client, view.keys, view.mapper, batch_size=2, memory_cap=1)
    small.drop()
    small.catch_up()  # a call's events span batches: records forgotten are read back
    assert len(whole) > 5
    assert view_keys(small) == whole


def test_records_read_in_chunks_come_back_in_the_order_asked(world, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    runtime, view = world
    for n in range(5):
        call_with_outcome(runtime, "acme", f"c{n}", "SALE")
    view.catch_up()
    asked = ["call:c3", "call:nope", "call:c0", "call:c4", "conversation:c1", "call:c1", "call:c2"]
    whole = records(view.client, view.keys, "acme", asked)
    monkeypatch.setattr(interactions, "READ_CHUNK", 2)  # four HMGETs in one round trip
    assert records(view.client, view.keys, "acme", asked) == whole
    assert [r.id if r else None for r in whole] == ["c3", None, "c0", "c4", None, "c1", "c2"]
