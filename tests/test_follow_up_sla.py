"""Follow-up SLA report (projections/follow_up_sla.py): tasks opened by real selections through
the API and the follow-up planner, reassigned, completed in time and late, left overdue,
cancelled by a correction -- counted per owner and team by hand and by the oracle
(tests/report_oracle.follow_up_sla); JSON, CSV, a rebuild from 0."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from projections.follow_up_sla import FollowUpSlaView
from services.permissions import Role
from tests import report_oracle
from tests.history_strategies import tenant_events
from tests.test_follow_ups import TENANT, World, call_with, world  # noqa: F401 (the fixture)
from workers.projections import ProjectionRunner

COLUMNS = ("tasks", "open", "completed", "cancelled", "overdue", "completed_in_time", "completed_late", "sla_met")


def test_sla_per_owner_and_team(world: World) -> None:  # noqa: F811
    w = world
    now = datetime.now(UTC).replace(microsecond=0)
    long_ago = now - timedelta(hours=3)  # due an hour after the selection: two hours ago
    call_with(w, "open", "CALL_BACK", now)
    call_with(w, "overdue", "CALL_BACK", long_ago)
    call_with(w, "late", "CALL_BACK", long_ago)
    call_with(w, "mine", "CALL_BACK", now)
    call_with(w, "cancelled", "CALL_BACK", now)
    call_with(w, "none", "DONE", now)
    task = {c: w.tasks(c)[0]["follow_up_id"] for c in ("late", "mine")}
    w.post(f"/v1/follow-ups/{task['late']}/complete", {})
    w.post(
        f"/v1/follow-ups/{task['mine']}/reassign",
        {"owner_agent": "anna", "owner_team": "sales"},
        actor="supervisor:sue",
    )
    w.post(f"/v1/follow-ups/{task['mine']}/complete", {}, actor="agent:anna")
    correction = {"outcome_code": "DONE", "occurred_at": now.isoformat(), "reason": "no call back needed"}
    w.post("/v1/calls/cancelled/correction", correction, actor="supervisor:sue")
    while w.planner.run_once():
        pass
    runner = ProjectionRunner(w.runtime.settings)
    runner.settle(w.runtime.ledger(TENANT).recorder.max_notification_id() or 0)
    _, key = w.runtime.registry.issue_key(TENANT, Role.MANAGER)
    h = {"Authorization": f"Bearer {key}"}

    def report(**params: str) -> dict[str, tuple[object, ...]]:
        r = w.http.get("/v1/reports/follow-ups", headers=h, params=params)
        assert r.status_code == 200, r.text
        return {row["key"]: tuple(row[c] for c in COLUMNS) for row in r.json()["rows"]}

    by_owner = report()
    # the oracle, from the log alone, at the moment the report was made
    events = tenant_events(w.runtime, TENANT)
    for group_by in ("owner", "team"):
        answer = w.http.get("/v1/reports/follow-ups", headers=h, params={"group_by": group_by}).json()
        at = datetime.fromisoformat(answer["as_of"])
        expected = report_oracle.follow_up_sla(events, tz="UTC", now=at, group_by=group_by)  # type: ignore[arg-type]
        assert {row["key"]: tuple(row[c] for c in COLUMNS) for row in answer["rows"]} == expected
    assert by_owner == {
        # open, overdue (open, past due), completed late, cancelled; met: 0 in time of (1 completed + 1 overdue)
        "team:care": (4, 2, 1, 1, 1, 0, 1, 0.0),
        "agent:anna": (1, 0, 1, 0, 0, 1, 0, 1.0),
    }
    assert report(group_by="team") == {"care": by_owner["team:care"], "sales": by_owner["agent:anna"]}
    assert report(project="other") == {}
    today = now.date()  # the tenant's zone is UTC: due days are UTC dates
    later = (now + timedelta(days=2)).date().isoformat()
    assert report(date_from=later) == {}
    assert sum(v[0] for v in report(date_to=today.isoformat()).values()) <= 5
    text = w.http.get("/v1/reports/follow-ups", headers=h, params={"format": "csv"}).text
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(x["key"], x["overdue"], x["sla_met"]) for x in lines] == [
        ("agent:anna", "0", "1.0"),
        ("team:care", "1", "0.0"),
    ]
    view = next(v for v in runner.views if isinstance(v, FollowUpSlaView))
    view.drop()
    assert report() == {}
    view.catch_up()
    assert report() == by_owner
    for params, word in (({"group_by": "agent"}, "group_by"), ({"date_from": "2026-13-01"}, "date_from")):
        bad = w.http.get("/v1/reports/follow-ups", headers=h, params=params)
        assert bad.status_code == 400 and word in bad.text, bad.text
    runner.client.close()
