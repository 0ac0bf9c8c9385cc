"""The rates (projections/rates.py over projections/interactions.py) equal the oracle's.

Random valid histories are played through the real Ledger against real Redis; the
interactions view catches up from 0 in small batches and the rates of every project, for
each day and for rolling 30-day windows, both definition readings, must equal
tests/report_oracle.rates. Dropping the view and catching up again from 0 gives the same.
``RATES_EXAMPLES=200`` runs more examples.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from events.codec import StructMapper, SubjectKeys
from projections.interactions import InteractionsView
from projections.rates import Period, rates
from services.runtime import Runtime
from tests import report_oracle
from tests.history_strategies import PROJECTS, TZ, HistoryPlan, histories, new_tenant, play, tenant_events

DAYS = [date(2026, 10, 23) + timedelta(days=n) for n in range(7)]
#: averages are float sums in another order: equal up to rounding
APPROX = ("average_handle_seconds", "average_wrap_up_seconds")


def interactions_view(runtime: Runtime, tenant: str, batch_size: int = 1000) -> InteractionsView:
    client = runtime.client
    mapper = StructMapper(keys=SubjectKeys(client, runtime.settings.key_prefix))
    return InteractionsView(client, runtime.shard_keys(tenant), mapper, batch_size=batch_size)


def queries() -> Iterator[dict[str, Any]]:
    for project in PROJECTS:
        for as_defined in ("then", "now"):
            for day in DAYS:
                yield {"project": project, "day": day, "as_defined": as_defined}
            for end in (DAYS[2], DAYS[-1], DAYS[-1] + timedelta(days=29)):
                yield {"project": project, "rolling_30_days_ending": end, "as_defined": as_defined}


def same(got: Any, expected: Any) -> None:
    g, e = msgspec.structs.asdict(got), asdict(expected)
    for name in APPROX:
        assert g.pop(name) == pytest.approx(e.pop(name)), name
    assert g == e


@settings(
    max_examples=int(os.environ.get("RATES_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=histories(max_calls=10, max_conversations=5))
def test_the_rates_equal_the_oracle_and_a_rebuild_changes_nothing(redis_url: str, plan: HistoryPlan) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        events = tenant_events(d.runtime, d.tenant)
        view = interactions_view(d.runtime, d.tenant, batch_size=7)
        view.catch_up()
        keys, client = view.keys, d.runtime.client
        found = {}
        for q in queries():
            got = rates(client, keys, d.tenant, **q)
            same(got, report_oracle.rates(events, tz=TZ, **q))
            found[repr(q)] = got
        view.drop()
        assert view.position() == 0
        assert not list(client.scan_iter(match=keys.view(view.name) + "*"))
        interactions_view(d.runtime, d.tenant).catch_up()
        for q in queries():
            assert rates(client, keys, d.tenant, **q) == found[repr(q)], q
    finally:
        d.runtime.close()


def test_a_period_is_a_day_or_thirty_days() -> None:
    assert Period.of(date(2026, 10, 30), None).days() == ["2026-10-30"]
    month = Period.of(None, date(2026, 10, 30)).days()
    assert len(month) == 30 and month[0] == "2026-10-01" and month[-1] == "2026-10-30"
    with pytest.raises(ValueError, match="give a day"):
        Period.of(date(2026, 10, 30), date(2026, 10, 30))
