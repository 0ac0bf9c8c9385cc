"""Each outcome's share over time (projections/trends.py) and the mix against an earlier
definition version (services/definition_versions.py) equal the report oracle on random
valid histories; both read the outcome-mix view, rebuilt from 0 in tests/test_outcome_mix.py
(a rebuild here must not change them either). Hand-computed: the catalogue at a version."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from events.types import OutcomeDefinition, OutcomeFlags, ProjectSettings
from projections.outcome_mix import MixFilter
from projections.trends import outcome_trend
from services.api.app import create_app
from services.catalogue import Catalogue, apply
from services.definition_versions import catalogue_at, compare, definitions_of
from services.interactions import aggregate_id
from services.permissions import Role
from tests import report_oracle
from tests.helpers import new_runtime
from tests.history_strategies import TZ, Driver, HistoryPlan, histories, new_tenant, play, tenant_events
from tests.test_outcome_mix import mix_view
from workers.projections import ProjectionRunner

EXAMPLES = int(os.environ.get("TREND_EXAMPLES", "6"))


def _week(d: date) -> tuple[date, date]:
    monday = d - timedelta(days=d.weekday())
    return monday, monday + timedelta(days=6)


def oracle_trend(events: list[Any], *, period: str, by: str, as_defined: str, **f: Any) -> list[tuple[Any, ...]]:
    """The trend from the oracle alone: its mix by day/week names the periods, and each
    period's mix (the same filters, the period's dates) gives the shares."""
    periods = report_oracle.outcome_mix(events, tz=TZ, group_by=period, **f)  # type: ignore[arg-type]
    rows = []
    for p in periods:
        if not p.count:
            continue
        if period == "day":
            first = last = date.fromisoformat(p.key)
        else:
            year, week = p.key.split("-W")
            first, last = _week(date.fromisocalendar(int(year), int(week), 1))
        narrowed = {
            **f,
            "date_from": max(first, f.get("date_from") or first),
            "date_to": min(last, f.get("date_to") or last),
        }
        for r in report_oracle.outcome_mix(events, tz=TZ, group_by=by, as_defined=as_defined, **narrowed):  # type: ignore[arg-type]
            rows.append((p.key, r.key, r.count, p.count, r.percentage))
    return rows


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    plan=histories(max_calls=8, max_conversations=4),
    query=st.fixed_dictionaries(
        {
            "interaction": st.sampled_from(["call", "conversation"]),
            "period": st.sampled_from(["day", "week"]),
            "by": st.sampled_from(["outcome", "category"]),
            "as_defined": st.sampled_from(["then", "now"]),
        }
    ),
    project=st.none() | st.sampled_from(["p1", "p2"]),
    since=st.none() | st.sampled_from([date(2026, 10, 25), date(2026, 10, 26)]),
)
def test_the_trend_equals_the_oracle(
    redis_url: str, plan: HistoryPlan, query: dict[str, Any], project: str | None, since: date | None
) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        events = tenant_events(d.runtime, d.tenant)
        view = mix_view(d.runtime, d.tenant, batch_size=5)
        view.catch_up()
        f = MixFilter(query["interaction"], project, date_from=since)
        got = outcome_trend(
            d.runtime.client,
            view.keys,
            d.tenant,
            f,
            period=query["period"],
            by=query["by"],
            as_defined=query["as_defined"],
        )
        filters = {"interaction": query["interaction"], "project": project, "date_from": since}
        expected = oracle_trend(
            events, period=query["period"], by=query["by"], as_defined=query["as_defined"], **filters
        )
        assert [(r.period, r.key, r.count, r.total, r.percentage) for r in got] == expected
    finally:
        d.runtime.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    plan=histories(max_calls=8, max_conversations=4),
    pick=st.integers(0, 10),
    kind=st.sampled_from(["call", "conversation"]),
)
def test_the_comparison_with_an_earlier_version_equals_the_oracle(
    redis_url: str, plan: HistoryPlan, pick: int, kind: str
) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        events = tenant_events(d.runtime, d.tenant)
        view = mix_view(d.runtime, d.tenant)
        view.catch_up()
        ledger = d.runtime.ledger(d.tenant)
        now = ledger.catalogue(d.tenant)
        catalogue_events = list(ledger.events.get(aggregate_id(d.tenant, "catalogue")))
        state: Catalogue | None = None
        versions = set()  # the versions p1's outcome set went through
        for e in catalogue_events:
            state = apply(e, state)  # type: ignore[arg-type]
            if "p1" in state.projects:
                versions.add(state.projects["p1"].set_version)
        version = sorted(versions)[pick % len(versions)]
        then = catalogue_at(catalogue_events, "p1", version)  # type: ignore[arg-type]
        assert then is not None and then.projects["p1"].set_version == version
        defs_now, defs_then = definitions_of(now), definitions_of(then)
        got = compare(
            d.runtime.client,
            view.keys,
            d.tenant,
            project="p1",
            now=defs_now,
            then=defs_then,
            interaction=kind,  # type: ignore[arg-type]
        )

        def by_category(defs: dict[Any, OutcomeDefinition]) -> dict[str, tuple[int, float]]:
            rows = report_oracle.outcome_mix(
                events,
                tz=TZ,
                interaction=kind,
                project="p1",
                group_by="category",
                as_defined="now",
                catalogue_now=defs,  # type: ignore[arg-type]
            )
            return {r.key: (r.count, r.percentage) for r in rows}

        a, b = by_category(defs_now), by_category(defs_then)
        assert [
            (c.category, c.count_now, c.percentage_now, c.count_then, c.percentage_then) for c in got.categories
        ] == [(k, *a.get(k, (0, 0.0)), *b.get(k, (0, 0.0))) for k in sorted(a.keys() | b.keys())]
        by_outcome = report_oracle.outcome_mix(events, tz=TZ, interaction=kind, project="p1")  # type: ignore[arg-type]

        def flagged(defs: dict[Any, OutcomeDefinition], flag: str) -> int:
            found = (defs.get(("p1", r.key)) or defs.get((None, r.key)) for r in by_outcome)
            return sum(r.count for r, x in zip(by_outcome, found, strict=True) if x and getattr(x.flags, flag))

        counts = {f.flag: (f.count_now, f.count_then) for f in got.flags}
        for flag in ("contact", "presentation", "success", "first_call_resolution"):
            assert counts[flag] == (flagged(defs_now, flag), flagged(defs_then, flag)), flag
    finally:
        d.runtime.close()


# -- by hand -----------------------------------------------------------------------------------------


def test_the_catalogue_at_a_version_and_the_comparison_over_http(redis_url: str, shard: str) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        runtime.create_tenant("acme", "Acme", TZ)
        d = Driver(runtime, "acme")
        d.agent("anna")
        d.define(OutcomeDefinition(code="SALE", name="Sale", category="won", flags=OutcomeFlags(contact=True)))
        d.define(OutcomeDefinition(code="NO", name="No", category="lost", flags=OutcomeFlags(contact=True)))
        d.project("p", ProjectSettings(name="P", direction="outbound"))
        v = runtime.ledger("acme").catalogue("acme").projects["p"].set_version
        # the known-good set: SALE counts as success; then it is changed to count as none
        d.change(
            OutcomeDefinition(code="SALE", name="Sale", category="won", flags=OutcomeFlags(contact=True, success=True))
        )
        good = v + 1
        d.change(OutcomeDefinition(code="SALE", name="Sale", category="other", flags=OutcomeFlags(contact=True)))
        at = datetime(2026, 11, 2, 9, tzinfo=UTC)
        for n, code in enumerate(("SALE", "SALE", "NO")):
            d.start_call(f"c{n}", "p", "outbound", at, agent="anna")
            d.end(f"c{n}", at + timedelta(minutes=2))
            d.select(f"c{n}", code, at + timedelta(minutes=3), agent="anna")
        ledger = runtime.ledger("acme")
        events = list(ledger.events.get(aggregate_id("acme", "catalogue")))
        state: Catalogue | None = None
        for e in events:
            state = apply(e, state)  # type: ignore[arg-type]
        assert state is not None and state.projects["p"].set_version == good + 1
        then = catalogue_at(events, "p", good)  # type: ignore[arg-type]
        assert then is not None and then.outcomes["SALE"].definition.flags.success is True
        assert catalogue_at(events, "p", good + 5) is None  # type: ignore[arg-type]
        ProjectionRunner(runtime.settings).settle(ledger.recorder.max_notification_id() or 0)
        _, key = runtime.registry.issue_key("acme", Role.MANAGER)
        with TestClient(create_app(runtime)) as http:
            h = {"Authorization": f"Bearer {key}"}
            got = http.get("/v1/reports/definition-comparison", headers=h, params={"project_id": "p", "version": good})
            assert got.status_code == 200, got.text
            body = got.json()
            assert (body["version"], body["current_version"]) == (good, good + 1)
            cats = {c["category"]: (c["count_now"], c["count_then"]) for c in body["comparison"]["categories"]}
            assert cats == {"lost": (1, 1), "other": (2, 0), "won": (0, 2)}
            flags = {f["flag"]: (f["count_now"], f["count_then"]) for f in body["comparison"]["flags"]}
            assert flags["success"] == (0, 2) and flags["contact"] == (3, 3)
            sale = next(o for o in body["comparison"]["outcomes"] if o["code"] == "SALE")
            assert (sale["count"], sale["category_now"], sale["category_then"], sale["changed"]) == (
                2,
                "other",
                "won",
                True,
            )
            text = http.get(
                "/v1/reports/definition-comparison",
                headers=h,
                params={"project_id": "p", "version": good, "format": "csv", "table": "flags"},
            ).text
            assert text.splitlines()[0] == "flag,count_now,count_then" and "success,0,2" in text.splitlines()
            for params, status, word in (
                ({"project_id": "p", "version": good + 5}, 404, "version"),
                ({"project_id": "nope", "version": 1}, 404, "nope"),
                ({"project_id": "p", "version": 0}, 400, "version"),
                ({"project_id": "p"}, 400, "version"),
            ):
                bad = http.get("/v1/reports/definition-comparison", headers=h, params=params)
                assert bad.status_code == status and word in bad.text, (params, bad.text)
            trend = http.get("/v1/reports/trend", headers=h, params={"project": "p", "period": "week"}).json()
            rows = trend["rows"]
            assert {r["key"] for r in rows} >= {"-", "NO", "SALE", "BUSY"}  # every defined outcome: zeros too
            assert [(r["period"], r["key"], r["count"], r["total"]) for r in rows if r["count"]] == [
                ("2026-W45", "NO", 1, 3), ("2026-W45", "SALE", 2, 3)
            ]  # fmt: skip
            text = http.get("/v1/reports/trend", headers=h, params={"project": "p", "format": "csv"}).text
            assert text.splitlines()[0] == "period,key,count,total,percentage"
            assert "2026-11-02,SALE,2,3,66.66666666666667" in text.splitlines()
            bad = http.get("/v1/reports/trend", headers=h, params={"period": "month"})
            assert bad.status_code == 400 and "period" in bad.text
    finally:
        runtime.close()


def test_quota_status_in_the_outcome_mix(redis_url: str, shard: str) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        runtime.create_tenant("acme", "Acme", TZ)
        d = Driver(runtime, "acme")
        d.agent("anna")
        d.define(OutcomeDefinition(code="SALE", name="Sale"))
        d.define(OutcomeDefinition(code="NO", name="No"))
        d.project("q", ProjectSettings(name="Q", direction="outbound", quotas={"SALE": 2, "NO": 5}))
        at = datetime(2026, 11, 2, 9, tzinfo=UTC)
        for n, code in enumerate(("SALE", "SALE", "NO")):
            d.start_call(f"c{n}", "q", "outbound", at, agent="anna")
            d.end(f"c{n}", at + timedelta(minutes=2))
            d.select(f"c{n}", code, at + timedelta(minutes=3), agent="anna")
        runner = ProjectionRunner(runtime.settings)
        runner.settle(runtime.ledger("acme").recorder.max_notification_id() or 0)
        _, key = runtime.registry.issue_key("acme", Role.MANAGER)
        with TestClient(create_app(runtime)) as http:
            h = {"Authorization": f"Bearer {key}"}
            body = http.get("/v1/reports/outcome-mix", headers=h, params={"project": "q"}).json()
            quotas = {
                q["outcome_code"]: (q["quota"], q["selections"], q["reached_at"] is not None) for q in body["quotas"]
            }
            assert quotas == {"NO": (5, 1, False), "SALE": (2, 2, True)}
            assert http.get("/v1/reports/outcome-mix", headers=h).json()["quotas"] is None
            text = http.get(
                "/v1/reports/outcome-mix", headers=h, params={"project": "q", "format": "csv", "table": "quotas"}
            ).text
            assert text.splitlines()[:2] == ["outcome_code,quota,selections,reached_at", "NO,5,1,"]
            bad = http.get("/v1/reports/outcome-mix", headers=h, params={"format": "csv", "table": "quotas"})
            assert bad.status_code == 400 and "table=quotas needs a project" in bad.text
        runner.client.close()
    finally:
        runtime.close()
