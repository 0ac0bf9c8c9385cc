"""The outcome-mix view (projections/outcome_mix.py) equals the report oracle.

Random valid histories are played through the real Ledger against real Redis; the view
catches up from position 0 and every query -- each grouping, both definition readings,
a spread of filters -- must give the oracle's rows exactly. Dropping the view and catching
up again from 0 must give the same answers. ``MIX_EXAMPLES=300`` runs more examples (about
45 s; the default 20 takes a few seconds).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.codec import StructMapper, SubjectKeys
from projections.outcome_mix import GROUP_BYS, KINDS, OutcomeMixView, outcome_mix
from services.runtime import Runtime
from tests import report_oracle
from tests.history_strategies import (
    AGENTS,
    CHANNELS,
    LISTS,
    PROJECTS,
    REASONS,
    TEAMS,
    TZ,
    HistoryPlan,
    histories,
    new_tenant,
    play,
    tenant_events,
)

DAYS = [date(2026, 10, 24) + timedelta(days=n) for n in range(6)]


def mix_view(runtime: Runtime, tenant: str, batch_size: int = 1000) -> OutcomeMixView:
    client = runtime.client
    mapper = StructMapper(keys=SubjectKeys(client, runtime.settings.key_prefix))
    return OutcomeMixView(client, runtime.shard_keys(tenant), mapper, batch_size=batch_size)


def as_tuples(rows: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (r.key, r.count, r.percentage, r.agent_selections, r.system_selections, r.corrected, r.revenue) for r in rows
    ]


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    """A few filters at a time (one or none of each), over the dimensions the histories use."""
    first = draw(st.none() | st.sampled_from(DAYS))
    last = draw(st.none() | st.sampled_from(DAYS))
    chosen: dict[str, Any] = {
        "project": draw(st.none() | st.sampled_from(PROJECTS)),
        "agent": draw(st.none() | st.sampled_from(AGENTS)),
        "team": draw(st.none() | st.sampled_from(TEAMS)),
        "channel": draw(st.none() | st.sampled_from((*CHANNELS, "voice"))),
        "direction": draw(st.none() | st.sampled_from(("inbound", "outbound"))),
        "termination_reason": draw(st.none() | st.sampled_from(REASONS)),
        "contact_list": draw(st.none() | st.sampled_from(LISTS)),
        "date_from": first,
        "date_to": last,
    }
    return {k: v for k, v in chosen.items() if v is not None and draw(st.booleans())}


def queries(drawn: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every grouping and reading unfiltered, then each drawn filter set by outcome and by
    category (as defined now) and by one other grouping."""
    for kind in KINDS:
        for group_by in GROUP_BYS:
            for as_defined in ("then", "now"):
                yield {"interaction": kind, "group_by": group_by, "as_defined": as_defined}
        for n, f in enumerate(drawn):
            for group_by in ("outcome", "category", GROUP_BYS[n % len(GROUP_BYS)]):
                yield {"interaction": kind, "group_by": group_by, "as_defined": "now", **f}


@settings(
    max_examples=int(os.environ.get("MIX_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=histories(max_calls=8, max_conversations=4), drawn=st.lists(filters(), min_size=1, max_size=4))
def test_the_view_equals_the_oracle_and_a_rebuild_changes_nothing(
    redis_url: str, plan: HistoryPlan, drawn: list[dict[str, Any]]
) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        events = tenant_events(d.runtime, d.tenant)
        # small batches: state carried across batches is exercised, not only within one
        view = mix_view(d.runtime, d.tenant, batch_size=7)
        view.catch_up()
        keys = view.keys
        found = {}
        for q in queries(drawn):
            expected = report_oracle.outcome_mix(events, tz=TZ, **q)
            got = outcome_mix(d.runtime.client, keys, d.tenant, **q)
            assert as_tuples(got) == as_tuples(expected), q
            found[repr(q)] = as_tuples(got)
        view.drop()
        assert view.position() == 0
        assert not list(d.runtime.client.scan_iter(match=keys.view(view.name) + "*"))
        mix_view(d.runtime, d.tenant).catch_up()  # one batch this time
        for q in queries(drawn):
            assert as_tuples(outcome_mix(d.runtime.client, keys, d.tenant, **q)) == found[repr(q)], q
    finally:
        d.runtime.close()


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=histories(max_calls=6, max_conversations=3), batch_size=st.sampled_from([1, 1000]))
def test_catching_up_twice_counts_once(redis_url: str, plan: HistoryPlan, batch_size: int) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        view = mix_view(d.runtime, d.tenant, batch_size)
        applied = view.catch_up()
        assert applied == view.position() > 0
        first = as_tuples(outcome_mix(d.runtime.client, view.keys, d.tenant, interaction="call"))
        assert view.catch_up() == 0
        assert as_tuples(outcome_mix(d.runtime.client, view.keys, d.tenant, interaction="call")) == first
    finally:
        d.runtime.close()
