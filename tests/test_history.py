"""The history table and QA sampling (projections/history.py over the interactions view),
against real Redis: paging over a page boundary (ties included, rows added meanwhile),
corrections with both values, a kept-active conversation's outcomes, filters, late
references, and reproducible samples. On random histories, with random filters: paging in
small pages lists exactly the oracle's rows (tests/report_oracle.history), in order, each with
the outcome that stands, its agent, every selection and every correction; a sample of a
whole period is the oracle's rows for the outcome (``HISTORY_EXAMPLES=100`` runs more)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.history import BadCursor, HistoryFilter, HistoryRow, history, sample
from tests import report_oracle
from tests.history_strategies import (
    AGENTS,
    BASE,
    PROJECTS,
    TZ,
    Driver,
    HistoryPlan,
    OutcomePlan,
    configure_world,
    histories,
    new_tenant,
    play,
    tenant_events,
)
from tests.test_rates import interactions_view

OUTCOMES = (
    OutcomePlan("SALE", "sale", None, True, True, True, False, "optional"),
    OutcomePlan("NO_INTEREST", "no_sale", None, True, False, False, False, "none"),
    OutcomePlan("CALL_BACK", "open", None, True, False, False, False, "none", keeps_active=True),
    OutcomePlan("RESOLVED", "done", None, True, False, False, True, "none"),
)
DAY = date(2026, 10, 24)
EVERYTHING = HistoryFilter()


@pytest.fixture()
def d(redis_url: str) -> Iterator[Driver]:
    driver = new_tenant(redis_url)
    configure_world(driver, OUTCOMES)
    yield driver
    driver.runtime.close()


def call(d: Driver, n: int, minute: int, code: str | None, agent: str = "anna", project: str = "p1") -> None:
    at = BASE + timedelta(minutes=minute)
    d.start_call(f"c{n}", project, "outbound", at, agent=agent)
    d.answer(f"c{n}", at + timedelta(seconds=5))
    d.end(f"c{n}", at + timedelta(minutes=3), "agent_hangup")
    if code is not None:
        d.select(f"c{n}", code, at + timedelta(minutes=4), agent=agent)


def page_all(d: Driver, f: HistoryFilter = EVERYTHING, limit: int = 3, **kw: date) -> list[HistoryRow]:
    view = interactions_view(d.runtime, d.tenant, batch_size=5)
    view.catch_up()
    rows: list[HistoryRow] = []
    cursor = None
    while True:
        page = history(d.runtime.client, view.keys, d.tenant, f=f, limit=limit, cursor=cursor, **kw)
        assert len(page.rows) <= limit
        rows.extend(page.rows)
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def test_pages_cross_boundaries_in_a_stable_order_and_new_rows_come_last(d: Driver) -> None:
    # c0..c2 start in the same minute: the tie is ordered by "<kind>:<id>"
    for n, minute in enumerate((10, 10, 10, 20, 30, 40, 50)):
        call(d, n, minute, "SALE" if n % 2 else None)
    view = interactions_view(d.runtime, d.tenant)
    view.catch_up()
    first = history(d.runtime.client, view.keys, d.tenant, f=HistoryFilter(), limit=3)
    assert [r.id for r in first.rows] == ["c0", "c1", "c2"] and first.next_cursor
    call(d, 7, 5, None)  # starts before everything, recorded after the first page was read
    view.catch_up()
    second = history(d.runtime.client, view.keys, d.tenant, f=HistoryFilter(), limit=3, cursor=first.next_cursor)
    assert [r.id for r in second.rows] == ["c3", "c4", "c5"]
    assert [r.id for r in page_all(d, limit=3)] == ["c7", "c0", "c1", "c2", "c3", "c4", "c5", "c6"]
    assert [r.id for r in page_all(d, limit=1000)] == [r.id for r in page_all(d, limit=1)]
    row = second.rows[0]
    assert row.outcome == "SALE" and row.duration_seconds == 180.0 and row.agent == "anna"
    assert second.rows[1].outcome == "-"


def test_a_correction_shows_both_values_and_a_kept_active_conversation_every_outcome(d: Driver) -> None:
    call(d, 0, 10, "NO_INTEREST")
    d.correct("c0", "SALE", BASE + timedelta(hours=3), Decimal(5))
    at = BASE + timedelta(minutes=30)
    d.start_conversation("v0", "p1", at, contact_id="k1")
    d.select_conversation("v0", "CALL_BACK", at + timedelta(minutes=1), agent="bob")
    d.select_conversation("v0", "RESOLVED", at + timedelta(minutes=2), agent="bob")  # closes it
    c0, v0 = page_all(d)
    assert c0.outcome == "SALE" and [(o.code, o.corrected) for o in c0.outcomes] == [("SALE", True)]
    both = [(c.previous_code, c.outcome_code, c.reason) for c in c0.corrections]
    assert both == [("NO_INTEREST", "SALE", "QA review")]
    assert c0.outcomes[0].revenue == Decimal(5)
    assert v0.kind == "conversation" and v0.outcome == "RESOLVED" and v0.agent == "bob"
    assert [o.code for o in v0.outcomes] == ["CALL_BACK", "RESOLVED"] and v0.duration_seconds == 120.0


def test_filters(d: Driver) -> None:
    call(d, 0, 10, "SALE", agent="anna")
    call(d, 1, 20, "NO_INTEREST", agent="bob")
    call(d, 2, 24 * 60 + 10, None, agent="bob", project="p2")  # the next local day
    d.start_conversation("v0", "p2", BASE + timedelta(minutes=30))  # p2: wrap-up optional
    d.close("v0", BASE + timedelta(minutes=40))

    def ids(f: HistoryFilter = EVERYTHING, **kw: date) -> list[str]:
        return [r.id for r in page_all(d, f, limit=2, **kw)]

    assert ids(HistoryFilter(project="p2")) == ["v0", "c2"]
    assert ids(HistoryFilter(agent="bob")) == ["c1", "c2"]
    assert ids(HistoryFilter(outcome="SALE")) == ["c0"]
    assert ids(HistoryFilter(outcome="-")) == ["v0", "c2"]
    assert ids(HistoryFilter(kind="conversation")) == ["v0"]
    assert ids(date_from=DAY, date_to=DAY) == ["c0", "c1", "v0"]
    assert ids(date_from=DAY + timedelta(days=1)) == ["c2"]
    assert ids(HistoryFilter(outcome="SALE"), date_from=DAY + timedelta(days=1)) == []


def test_a_cursor_it_did_not_give_is_refused(d: Driver) -> None:
    view = interactions_view(d.runtime, d.tenant)
    for bad in ("nope", "W10=", "WzEsMl0"):
        with pytest.raises(BadCursor):
            history(d.runtime.client, view.keys, d.tenant, f=HistoryFilter(), cursor=bad)


def test_a_sample_is_reproducible_by_seed_and_carries_late_references(d: Driver) -> None:
    for n in range(12):
        call(d, n, 10 * n, "SALE" if n < 10 else "NO_INTEREST")
    d.attach_call("c3", BASE + timedelta(days=2))  # long after the call
    call(d, 12, 3 * 24 * 60, "SALE")  # outside the period
    view = interactions_view(d.runtime, d.tenant)
    view.catch_up()

    def draw(n: int, seed: int) -> list[HistoryRow]:
        s = sample(
            d.runtime.client, view.keys, d.tenant, outcome_code="SALE", date_from=DAY, date_to=DAY, n=n, seed=seed
        )
        assert s.population == 10 and s.seed == seed
        return s.rows

    first = draw(4, 7)
    assert len(first) == 4 and all(r.outcome == "SALE" and r.id != "c12" for r in first)
    assert [r.id for r in draw(4, 7)] == [r.id for r in first]
    assert len({tuple(r.id for r in draw(4, seed)) for seed in range(10)}) > 1
    everything = draw(50, 1)
    assert sorted(r.id for r in everything) == sorted(f"c{n}" for n in range(10))
    c3 = next(r for r in everything if r.id == "c3")
    assert [(x.kind, x.reference) for x in c3.references] == [("recording", "rec-c3")]


def as_oracle(r: HistoryRow) -> report_oracle.HistoryRow:
    return report_oracle.HistoryRow(
        kind=r.kind,
        id=r.id,
        outcome=r.outcome,
        agent=r.agent,
        outcomes=[o.code for o in r.outcomes if not o.late],
        late=[o.code for o in r.outcomes if o.late],
        corrections=[(c.previous_code or "-", c.outcome_code) for c in r.corrections],
    )


@st.composite
def history_filters(draw: st.DrawFn) -> dict[str, Any]:
    """One or none of each history filter, over the values the histories use."""
    days = [DAY + timedelta(days=n) for n in range(-1, 5)]
    chosen = {
        "project": draw(st.none() | st.sampled_from(PROJECTS)),
        "agent": draw(st.none() | st.sampled_from(AGENTS)),
        "outcome": draw(st.none() | st.sampled_from(("SALE", "KEEP_OPEN", "ACCEPTED_LATER", "NO_ANSWER", "-"))),
        "kind": draw(st.none() | st.sampled_from(("call", "conversation"))),
        "date_from": draw(st.none() | st.sampled_from(days)),
        "date_to": draw(st.none() | st.sampled_from(days)),
    }
    return {k: v for k, v in chosen.items() if v is not None}


@settings(
    max_examples=int(os.environ.get("HISTORY_EXAMPLES", "10")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=histories(max_calls=8, max_conversations=4), drawn=st.lists(history_filters(), min_size=1, max_size=4))
def test_the_history_and_samples_equal_the_oracle_with_any_filters(
    redis_url: str, plan: HistoryPlan, drawn: list[dict[str, Any]]
) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        events = tenant_events(d.runtime, d.tenant)
        for q in [{}, *drawn]:
            expected = report_oracle.history(events, tz=TZ, **q)
            dates = {k: q[k] for k in ("date_from", "date_to") if k in q}
            f = HistoryFilter(**{k: v for k, v in q.items() if k not in dates})
            # small pages: the cursor is crossed many times
            assert [as_oracle(r) for r in page_all(d, f, limit=2, **dates)] == expected, q
        # a sample of every row showing an outcome in a period is those rows
        view = interactions_view(d.runtime, d.tenant)
        first, last = DAY, DAY + timedelta(days=2)
        for code in ("SALE", "CALLBACK", "ACCEPTED_LATER"):
            s = sample(
                d.runtime.client, view.keys, d.tenant, outcome_code=code, date_from=first, date_to=last, n=1000, seed=3
            )
            rows = report_oracle.history(events, tz=TZ, outcome=code, date_from=first, date_to=last)
            assert s.population == len(rows) and sorted(r.id for r in s.rows) == sorted(r.id for r in rows), code
    finally:
        d.runtime.close()
