"""Every report, together: each GET report endpoint of the OpenAPI document answers JSON and
CSV over one tenant whose history feeds every view (calls and conversations, a kept-active
conversation, a correction after close, a late recording, QA verdicts, follow-up tasks,
quotas, alerts, a contact on a list, a definition change); then every read model is
dropped (no key of any view is left, the reports are empty), ``outcomes rebuild`` rebuilds
them from the log, and every answer -- JSON and CSV, byte for byte -- is what it was; so it is
after ``outcomes replay`` (fresh generations, switched over)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from events.types import FollowUpSpec, OutcomeDefinition, OutcomeFlags
from services.api.app import create_app
from services.catalogue import Catalogue
from services.cli import main as cli
from services.permissions import Role
from services.rules import Context
from services.rules import config as config_rules
from tests.helpers import new_runtime
from tests.history_strategies import Driver, tenant_events
from tests.test_alerts import BASELINE, TZ, WEEK, history
from tests.test_rules_more import cli_env
from workers.actions import FollowUpPlanner
from workers.alerts import NAME as ALERT_WATCH
from workers.projections import ProjectionRunner

FIRST, LAST = (BASELINE - timedelta(days=1)).date().isoformat(), (WEEK + timedelta(days=6)).date().isoformat()
DAY = (WEEK + timedelta(days=1)).date().isoformat()  # the day of x1, x2 and v1
RANGE = {"date_from": FIRST, "date_to": LAST}
#: stands for the outcome-set version project "p" had before CALL_BACK and KEEP_OPEN were defined
EARLIER = "earlier"
GROUP_BYS = ("outcome", "category", "agent", "team", "list", "project", "day", "week")

#: (path, parameters): every report with its variants; each is asked for as JSON and as CSV
QUERIES: list[tuple[str, dict[str, str]]] = [
    *(
        ("/v1/reports/outcome-mix", {"interaction": kind, "group_by": group_by, "as_defined": as_defined})
        for kind in ("call", "conversation")
        for group_by in GROUP_BYS
        for as_defined in ("then", "now")
    ),
    ("/v1/reports/outcome-mix", {"project": "p", "agent": "anna", "team": "care", "direction": "outbound"}),
    ("/v1/reports/outcome-mix", {"contact_list": "LA", "termination_reason": "agent_hangup", **RANGE}),
    ("/v1/reports/outcome-mix", {"interaction": "conversation", "channel": "chat", "group_by": "agent"}),
    ("/v1/reports/outcome-mix", {"project": "p", "table": "quotas"}),
    ("/v1/reports/rates", {"project_id": "p", "day": DAY}),
    ("/v1/reports/rates", {"project_id": "p", "rolling_30_days_ending": LAST, "as_defined": "now"}),
    ("/v1/reports/history", {"limit": "1000"}),
    ("/v1/reports/history", {"limit": "7"}),
    ("/v1/reports/history", {"outcome": "SALE", "project": "p", "agent": "anna", **RANGE}),
    ("/v1/reports/history", {"interaction": "conversation"}),
    ("/v1/reports/sample", {"outcome_code": "NO_SALE", "n": "5", "seed": "7", **RANGE}),
    ("/v1/reports/qa", {"project_id": "p", **RANGE}),
    ("/v1/reports/qa", {"project_id": "p", "table": "pairs", **RANGE}),
    *(
        ("/v1/reports/trend", {"period": period, "by": by, "as_defined": as_defined})
        for period in ("day", "week")
        for by in ("outcome", "category")
        for as_defined in ("then", "now")
    ),
    ("/v1/reports/alerts", {}),
    ("/v1/reports/alerts", {"project": "p", "rule": "off_target"}),
    *(
        ("/v1/reports/definition-comparison", {"project_id": "p", "version": EARLIER, "table": table})
        for table in ("categories", "flags", "outcomes")
    ),
    ("/v1/reports/follow-ups", {"group_by": "owner"}),
    ("/v1/reports/follow-ups", {"group_by": "team"}),
    ("/v1/projects/p/quotas", {}),
    ("/v1/projects/p/outcome-counts", {}),
]


def _with_quota(c: Catalogue, ctx: Context) -> Sequence[Any]:
    settings = msgspec.structs.replace(c.projects["p"].settings, quotas={"SALE": 10, "COMPLAINT": 100})
    return config_rules.change_project(c, ctx, "p", settings)


def play(d: Driver) -> int:
    """The alerts' two weeks of calls (tests/test_alerts.py), then one of everything else;
    returns the earlier outcome-set version of project "p"."""
    history(d)  # anna; SALE, NICE, NO_SALE, COMPLAINT; project "p" with a target mix; 60 calls
    d.configure(_with_quota)
    earlier = d.ledger.catalogue(d.tenant).projects["p"].set_version
    d.team("care")
    d.move("anna", "care")
    d.agent("bob")
    d.define(OutcomeDefinition(code="CALL_BACK", name="Call back", follow_up=FollowUpSpec(owner_team="care")))
    d.define(
        OutcomeDefinition(
            code="KEEP_OPEN",
            name="Keep open",
            applies_to=("conversation",),
            keeps_conversation_active=True,
            flags=OutcomeFlags(contact=True),
        )
    )
    d.save_contact("k1", "LA")
    at = WEEK + timedelta(days=1)
    d.start_call("x1", "p", "outbound", at, agent="anna", contact_id="k1")
    d.answer("x1", at + timedelta(seconds=5))
    d.end("x1", at + timedelta(minutes=4), "agent_hangup")
    d.select("x1", "CALL_BACK", at + timedelta(minutes=5), agent="anna")
    d.start_call("x2", "p", "outbound", at + timedelta(hours=1))  # no agent: abandoned
    d.unanswered("x2", at + timedelta(hours=1, seconds=20), "drop_hang_up")
    d.end("x2", at + timedelta(hours=1, seconds=30), "network")
    d.start_conversation("v1", "p", at, channel="chat", contact_id="k1")
    d.select_conversation("v1", "KEEP_OPEN", at + timedelta(minutes=1), agent="bob")
    d.select_conversation("v1", "CALL_BACK", at + timedelta(minutes=9), agent="anna")
    d.correct("c-1102-0", "NICE", WEEK + timedelta(days=3))  # after close
    d.attach_call("c-1102-1", WEEK + timedelta(days=4))  # a late recording
    reviewer = d.ctx("reviewer:rita")
    for n, should in enumerate((None, "SALE", "SALE", None, "COMPLAINT")):
        verdict = "confirmed" if should is None else "disputed"
        d.ledger.record_verdict(reviewer, "call", f"c-1102-{12 + n}", verdict=verdict, should_have_been=should)
    # "now" differs from "then": SALE moves category and stops being a success
    d.change(OutcomeDefinition(code="SALE", name="Sale", category="won", flags=OutcomeFlags(contact=True)))
    planner = FollowUpPlanner(d.runtime.settings)
    while planner.run_once():
        pass
    planner.client.close()
    return earlier


class Reports:
    def __init__(self, http: TestClient[Any], key: str, earlier: int) -> None:
        self.http = http
        self.earlier = str(earlier)
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, params: dict[str, str]) -> Any:
        r = self.http.get(path, headers=self.headers, params=params)
        assert r.status_code == 200, (path, params, r.text)
        return r

    def answers(self) -> dict[str, Any]:
        """Every query's JSON (without the moment it was asked: ``as_of``) and CSV text."""
        found: dict[str, Any] = {}
        for path, given in QUERIES:
            params = {k: self.earlier if v == EARLIER else v for k, v in given.items()}
            name = f"{path}?{sorted(params.items())}"
            if params.get("table") in (None, "rows", "categories"):
                body = self.get(path, params).json()
                if isinstance(body, dict):
                    body.pop("as_of", None)
                found[name + " json"] = body
            text = self.get(path, {**params, "format": "csv"})
            assert text.headers["content-type"].startswith("text/csv"), name
            found[name + " csv"] = text.text
        return found


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[tuple[Driver, Reports, ProjectionRunner]]:
    runtime = new_runtime(redis_url, shard)
    runtime.create_tenant("acme", "Acme", TZ)
    d = Driver(runtime, "acme")
    earlier = play(d)
    runner = ProjectionRunner(runtime.settings)
    for _ in range(2):  # the second settle takes in the alerts the first one recorded
        runner.settle(d.ledger.recorder.max_notification_id() or 0)
    _, key = runtime.registry.issue_key("acme", Role.MANAGER)
    with TestClient(create_app(runtime)) as http:
        yield d, Reports(http, key, earlier), runner
    runner.client.close()
    runner.runtime.close()
    runtime.close()


def report_operations(http: TestClient[Any]) -> set[str]:
    """The GET paths of the OpenAPI document that are reports: under /v1/reports/, or
    documented with a CSV answer."""
    document = http.get("/schema/openapi.json").json()
    found = set()
    for path, item in document["paths"].items():
        get = item.get("get")
        if get is None:
            continue
        csv_too = "text/csv" in get.get("responses", {}).get("200", {}).get("content", {})
        if path.startswith("/v1/reports/") or csv_too:
            found.add(path.replace("{project_id}", "p"))
    return found


def test_every_report_answers_json_and_csv_and_a_rebuild_of_every_view_changes_nothing(
    world: tuple[Driver, Reports, ProjectionRunner],
) -> None:
    d, reports, runner = world
    # every report of the document is asked for, and every one it documents is there
    assert {path for path, _ in QUERIES} == report_operations(reports.http)
    before = reports.answers()

    # the history fed every view: no report is empty
    def json_of(path: str, **params: str) -> Any:
        return reports.get(path, params).json()

    raised = {e.rule for e in tenant_events(d.runtime, d.tenant) if type(e).__name__ == "OutcomeAlertRaised"}
    assert raised == {"rare_negative_rise", "positive_without_success", "off_target"}
    assert len(json_of("/v1/reports/alerts")["rows"]) == 3
    assert json_of("/v1/reports/qa", project_id="p", **RANGE)["reviewed"] == 5
    assert json_of("/v1/reports/follow-ups")["rows"][0]["tasks"] == 2
    assert json_of("/v1/reports/outcome-mix", project="p")["quotas"][1]["reached_at"] is not None  # SALE: 12 of 10
    assert json_of("/v1/reports/rates", project_id="p", day=DAY)["rates"]["abandoned_calls"] == 1
    history_rows = json_of("/v1/reports/history", limit="1000")["rows"]
    assert len(history_rows) == 63
    v1 = next(r for r in history_rows if r["id"] == "v1")
    assert [o["code"] for o in v1["outcomes"]] == ["KEEP_OPEN", "CALL_BACK"]

    # drop every read model: none of their keys is left, and the reports say nothing
    client, keys = d.runtime.client, runner.keys
    for view in runner.views:
        view.drop()
    for view in runner.views:
        if view.name != ALERT_WATCH:  # a follower, not a read model (docs/reports.md "Alerts")
            assert not list(client.scan_iter(match=keys.view(view.name) + "*")), view.name
            assert view.position() == 0, view.name
    assert json_of("/v1/reports/history")["rows"] == []
    assert json_of("/v1/reports/alerts")["rows"] == []

    # the operator's rebuild, from the log
    out = CliRunner().invoke(cli, ["rebuild"], env=cli_env(d.runtime))
    assert out.exit_code == 0, out.output
    assert "interactions:" in out.output and "outcome-mix:" in out.output
    after = reports.answers()
    assert after.keys() == before.keys()
    for name, answer in before.items():
        assert after[name] == answer, name

    # and a replay into fresh generations, switched over atomically, answers the same again
    out = CliRunner().invoke(cli, ["replay", "--grace", "0"], env=cli_env(d.runtime))
    assert out.exit_code == 0, out.output
    assert "generation" in out.output
    again = reports.answers()
    for name, answer in before.items():
        assert again[name] == answer, name


def test_a_report_of_an_unknown_project_is_404_in_both_formats(
    world: tuple[Driver, Reports, ProjectionRunner],
) -> None:
    _, reports, _ = world
    for path in ("/v1/projects/nope/quotas", "/v1/projects/nope/outcome-counts"):
        for fmt in ("json", "csv"):
            r = reports.http.get(path, headers=reports.headers, params={"format": fmt})
            assert r.status_code == 404 and "nope" in r.json()["message"], r.text
    r = reports.http.get("/v1/projects/p/quotas", headers=reports.headers, params={"format": "xml"})
    assert r.status_code == 400 and "format" in r.json()["message"], r.text
