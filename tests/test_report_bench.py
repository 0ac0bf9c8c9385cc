"""The report benchmark's loader and queries, scaled down (bench/reports_bench.py runs them
at 1,000,000 selections; no timing here).

A few thousand calls are loaded through the Ledger's save path by ``bench.report_load``;
every view catches up from position 0 the way the projection worker does it; the
benchmark's four outcome-mix queries (and more groupings) equal the independent oracle
(tests/report_oracle.py) over the log's events; dropping every view and catching up again
from 0 gives the same answers, rates included.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from bench.report_load import Shape, configure, load
from bench.reports_bench import TENANT, query_cases
from projections.outcome_mix import WHOLE, MixFilter, outcome_mix, rollup_for
from projections.rates import rates
from services.runtime import Runtime
from tests import report_oracle
from tests.helpers import new_runtime
from tests.history_strategies import tenant_events
from tests.test_outcome_mix import as_tuples
from workers.projections import ProjectionRunner

SHAPE = Shape(selections=4000, days=14, projects=4, agents=24, teams=3, corrected=0.05, first_day=date(2026, 10, 19))


@pytest.fixture(scope="module")
def loaded(redis_url: str) -> Iterator[tuple[Runtime, ProjectionRunner]]:
    runtime = new_runtime(redis_url, "rb" + random.Random().randbytes(5).hex())
    configure(runtime, TENANT, SHAPE)
    done = load(runtime, TENANT, SHAPE, calls_per_save=300)
    assert done.selections == SHAPE.selections
    runner = ProjectionRunner(runtime.settings)
    runner.settle(runtime.ledger(TENANT).recorder.max_notification_id() or 0)
    yield runtime, runner
    runner.runtime.close()
    runner.client.close()
    runtime.close()


def drawn_queries() -> list[dict[str, Any]]:
    """Each benchmark query a few times, plus the other groupings and "as defined now"."""
    rng = random.Random(11)
    cases = query_cases(SHAPE, rng)
    out = [draw() for draw in cases.values() for _ in range(3)]
    whole = {"date_from": SHAPE.first_day, "date_to": SHAPE.first_day + timedelta(days=SHAPE.days - 1)}
    out += [{**whole, "group_by": g} for g in ("outcome", "agent", "team", "project", "day")]
    out += [{**whole, "group_by": "category", "as_defined": "now"}, {"team": SHAPE.team(1), "group_by": "outcome"}]
    out += [{"project": SHAPE.project(2), "agent": SHAPE.agent(6), "group_by": "category"}]
    return out


def answers(runtime: Runtime, queries: list[dict[str, Any]]) -> list[Any]:
    keys = runtime.shard_keys(TENANT)
    found: list[Any] = [as_tuples(outcome_mix(runtime.client, keys, TENANT, interaction="call", **q)) for q in queries]
    for p in range(SHAPE.projects):
        ending = SHAPE.first_day + timedelta(days=SHAPE.days - 1)
        found.append(rates(runtime.client, keys, TENANT, project=SHAPE.project(p), rolling_30_days_ending=ending))
    return found


def test_the_loaded_log_is_what_the_shape_says(loaded: tuple[Runtime, ProjectionRunner]) -> None:
    runtime, _ = loaded
    events = tenant_events(runtime, TENANT)
    selected = [e for e in events if type(e).__name__ == "OutcomeSelected"]
    assert len(selected) == SHAPE.selections
    assert {e.project_id for e in selected} == {SHAPE.project(p) for p in range(SHAPE.projects)}  # type: ignore[attr-defined]
    assert any(type(e).__name__ == "OutcomeCorrected" for e in events)


def test_the_benchmark_queries_equal_the_oracle(loaded: tuple[Runtime, ProjectionRunner]) -> None:
    runtime, _ = loaded
    events = tenant_events(runtime, TENANT)
    keys = runtime.shard_keys(TENANT)
    for q in drawn_queries():
        got = outcome_mix(runtime.client, keys, TENANT, interaction="call", **q)
        expected = report_oracle.outcome_mix(events, tz=SHAPE.time_zone, interaction="call", **q)
        assert as_tuples(got) == as_tuples(expected), q
        assert sum(r.count for r in got) > 0, q


def test_catching_up_from_zero_gives_the_same_answers(loaded: tuple[Runtime, ProjectionRunner]) -> None:
    runtime, runner = loaded
    queries = drawn_queries()
    before = answers(runtime, queries)
    for view in runner.views:
        view.drop()
        assert view.position() == 0
    runner.settle(runtime.ledger(TENANT).recorder.max_notification_id() or 0)
    assert answers(runtime, queries) == before


def test_a_view_behind_the_others_catches_up_alone(loaded: tuple[Runtime, ProjectionRunner]) -> None:
    """The worker reads each batch once for every view; a view dropped while the others are
    current is rebuilt from 0 from those reads, and the others apply nothing twice."""
    runtime, runner = loaded
    queries = drawn_queries()
    before = answers(runtime, queries)
    head = runtime.ledger(TENANT).recorder.max_notification_id() or 0
    mix = next(v for v in runner.views if v.name == "outcome-mix")
    mix.drop()
    assert [v.position() for v in runner.views if v is not mix] == [head] * (len(runner.views) - 1)
    runner.settle(head)
    assert mix.position() == head
    assert answers(runtime, queries) == before


def test_which_queries_a_rollup_answers() -> None:
    """Rollups keep outcome, category then, selected by and corrected per tenant, project,
    agent and team: any other filter or grouping reads the cells."""
    assert rollup_for(MixFilter("call"), "category", "then") == (WHOLE, WHOLE)
    assert rollup_for(MixFilter("call", project="p1"), "week", "now") == ("project", "p1")
    assert rollup_for(MixFilter("call", project="p1"), "category", "now") == ("project", "p1")
    assert rollup_for(MixFilter("call", agent="a1"), "agent", "then") == ("agent", "a1")
    assert rollup_for(MixFilter("call", team="t1", date_from=date(2026, 1, 1)), "day", "then") == ("team", "t1")
    assert rollup_for(MixFilter("call", agent="a1"), "category", "now") is None  # needs the project
    assert rollup_for(MixFilter("call", agent="a1"), "team", "then") is None
    assert rollup_for(MixFilter("call"), "project", "then") is None
    assert rollup_for(MixFilter("call", project="p1", agent="a1"), "outcome", "then") is None
    assert rollup_for(MixFilter("call", channel="voice"), "outcome", "then") is None
    assert rollup_for(MixFilter("call", termination_reason="transfer"), "outcome", "then") is None
