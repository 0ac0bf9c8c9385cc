"""What-if (services/what_if.py) through the real ASGI app and the CLI, against real Redis:
a proposed change (an outcome's flags, category and handling changed, another hidden, a new
one defined) tried on the last days of a project shows the rates, the mix and the follow-up
actions as they were and as they would have been -- and afterwards every key's digest and
every consumer group's state are unchanged. A proposal the real change would refuse is
refused the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from litestar.testing import TestClient

from events.types import FollowUpSpec, OutcomeDefinition, OutcomeFlags, ProjectSettings
from services.api.app import create_app
from services.cli import main
from services.rules import config as config_rules
from services.runtime import Runtime
from tests.digest import diff, snapshot
from tests.helpers import new_runtime, role_keys
from tests.history_strategies import Driver
from workers.actions import FollowUpPlanner, SmsPlanner
from workers.contact_lists import ContactListPlanner
from workers.projections import ProjectionRunner, ensure_group

T = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
PROPOSAL: dict[str, Any] = {
    "days": 7,
    "until": "2026-11-22",
    "project_id": "p1",
    "changes": [
        {
            "op": "change_outcome",
            "definition": {
                "code": "INTERESTED",
                "name": "Interested",
                "category": "sale",
                "flags": {"contact": True, "success": True},
                "sms_template": "thanks",
                "auto_send": True,
                "contact_handling": {"move_to_list": "hot"},
            },
        },
        {"op": "hide_outcome", "code": "NO_SALE", "project_id": "p1"},
        {"op": "define_outcome", "definition": {"code": "CALL_LATER", "name": "Call later"}},
    ],
}


@dataclass
class World:
    runtime: Runtime
    client: TestClient[Any]
    redis: redis.Redis
    keys: dict[str, dict[str, str]]

    def what_if(self, body: Any, who: str = "admin") -> Any:
        return self.client.post("/v1/what-if", headers=self.keys[who], json=body)

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.redis, self.runtime.settings.key_prefix + ":")


def _play(d: Driver) -> None:
    d.team("north")
    d.configure(lambda c, ctx: config_rules.save_template(c, ctx, "thanks", "Thanks for your time"))
    d.define(
        OutcomeDefinition(code="SALE", name="Sale", category="sale", flags=OutcomeFlags(contact=True, success=True))
    )
    d.define(
        OutcomeDefinition(
            code="INTERESTED",
            name="Interested",
            category="warm",
            flags=OutcomeFlags(contact=True),
            follow_up=FollowUpSpec(owner_team="north"),
        )
    )
    d.define(OutcomeDefinition(code="NO_SALE", name="No sale", category="lost", flags=OutcomeFlags(contact=True)))
    for project in ("p1", "p2"):
        d.project(project, ProjectSettings(name=project.upper(), direction="outbound"))
    for n, code in enumerate(("SALE", "INTERESTED", "NO_SALE", "NO_SALE"), 1):
        at = T + timedelta(hours=n)
        d.start_call(f"c{n}", "p1", "outbound", at, agent="anna", contact_id=f"k{n}")
        d.answer(f"c{n}", at + timedelta(seconds=5))
        d.end(f"c{n}", at + timedelta(minutes=3))
        d.select(f"c{n}", code, at + timedelta(minutes=4), agent="anna")
    d.correct("c3", "INTERESTED", T + timedelta(days=1))


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    _, admin = runtime.create_tenant("acme", "Acme", "Europe/Helsinki")
    _play(Driver(runtime, "acme"))
    ProjectionRunner(runtime.settings).settle(runtime.ledger("acme").recorder.max_notification_id() or 0)
    for planner in (SmsPlanner, FollowUpPlanner, ContactListPlanner):
        planner(runtime.settings).run_once()
    # a consumer group with entries pending: its state must not move either
    log = runtime.shard_keys("acme").log
    ensure_group(runtime.client, log, "what-if-watch")
    runtime.client.xreadgroup("what-if-watch", "w1", {log: ">"}, count=3)
    try:
        with TestClient(create_app(runtime)) as client:
            keys = role_keys(client, admin, ("auditor", "supervisor", "agent", "reviewer"))
            yield World(runtime, client, runtime.client, keys)
    finally:
        runtime.close()


def _actions(project: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {a["action"]: (a["before"], a["after"]) for a in project["actions"]}


def test_what_if_shows_rates_mix_and_actions_and_writes_nothing(world: World) -> None:
    before = world.snapshot()
    assert any(e.get("groups") and e["groups"][0]["pending"]["pending"] for e in before.values())
    r = world.what_if(PROPOSAL)
    assert r.status_code == 200, r.text
    assert not diff(before, world.snapshot()), "what-if changed Redis"
    body = r.json()
    assert (body["first_day"], body["last_day"]) == ("2026-11-16", "2026-11-22")
    assert body["proposed_events"] == ["OutcomeChanged", "OutcomeHidden", "OutcomeDefined"]
    [p1] = body["projects"]
    assert p1["project_id"] == "p1" and p1["interactions"] == 4
    # success rate: 1 of 4 contacts as reported; 3 of 4 with INTERESTED a success
    assert (p1["rates_before"]["success_calls"], p1["rates_after"]["success_calls"]) == (1, 3)
    assert (p1["rates_before"]["success_rate"], p1["rates_after"]["success_rate"]) == (0.25, 0.75)
    assert p1["rates_before"]["contact_rate"] == p1["rates_after"]["contact_rate"] == 1.0
    mix = {row["code"]: row for row in p1["mix"]}
    assert mix["INTERESTED"]["calls"] == 2 and mix["INTERESTED"]["changed"]
    assert (mix["INTERESTED"]["category_before"], mix["INTERESTED"]["category_after"]) == ("warm", "sale")
    assert mix["NO_SALE"]["calls"] == 1 and mix["NO_SALE"]["in_set_before"] and not mix["NO_SALE"]["in_set_after"]
    assert (
        mix["CALL_LATER"]["calls"] == 0 and not mix["CALL_LATER"]["in_set_before"] and mix["CALL_LATER"]["in_set_after"]
    )
    assert p1["not_selectable_after"] == 1
    categories = {c["category"]: (c["before"], c["after"]) for c in p1["categories"]}
    assert categories["sale"] == (1, 3) and categories["warm"] == (2, 0) and categories["lost"] == (1, 1)
    # the two INTERESTED selections (c2's, c3's correction): a follow-up task then; an SMS and a list move now
    assert p1["redecided"] == 2
    actions = _actions(p1)
    assert actions["FollowUpOpened"] == (2, 0)
    assert actions["SmsRequested"] == (0, 2)
    assert actions["ContactMovedToList"] == (0, 2)
    # every project when none is named
    everywhere = world.what_if({k: v for k, v in PROPOSAL.items() if k != "project_id"}, who="supervisor").json()
    assert [p["project_id"] for p in everywhere["projects"]] == ["p1", "p2"]
    assert everywhere["projects"][0] == p1 and everywhere["projects"][1]["interactions"] == 0
    assert not diff(before, world.snapshot()), "what-if changed Redis"


def test_the_cli_answers_the_same_and_writes_nothing(world: World) -> None:
    settings = world.runtime.settings
    env = {"REDIS_URL": settings.redis_url, "REDIS_SHARD": settings.shard, "REDIS_KEY_PREFIX": settings.key_prefix}
    before = world.snapshot()
    result = CliRunner().invoke(main, ["what-if", "acme", "-"], input=json.dumps(PROPOSAL), env=env)
    assert result.exit_code == 0, result.output
    assert not diff(before, world.snapshot()), "what-if changed Redis"
    assert json.loads(result.output)["projects"] == world.what_if(PROPOSAL).json()["projects"]
    refused = CliRunner().invoke(main, ["what-if", "acme", "-"], input='{"changes": []}', env=env)
    assert refused.exit_code != 0 and "changes" in refused.output


def _change(op: dict[str, Any]) -> dict[str, Any]:
    return {"days": 7, "until": "2026-11-22", "changes": [op]}


@pytest.mark.parametrize(
    ("body", "who", "status", "says"),
    [
        (_change({"op": "change_outcome", "definition": {"code": "NOPE", "name": "Nope"}}), "admin", 404,
         "change 1 (change_outcome): outcome 'NOPE' not found"),
        (_change({"op": "define_outcome", "definition": {"code": "SALE", "name": "Sale again"}}), "admin", 409,
         "already exists"),
        (_change({"op": "define_outcome", "definition": {"code": "SALE2", "name": "sale"}}), "admin", 409, "SALE"),
        (_change({"op": "hide_outcome", "code": "SALE", "project_id": "nowhere"}), "admin", 404, "nowhere"),
        (_change({"op": "change_outcome", "definition": {"code": "SALE", "name": "Sale", "auto_send": True}}),
         "admin", 422, "auto_send"),
        (_change({"op": "bogus", "code": "SALE"}), "admin", 400, "op"),
        ({**_change({"op": "retire_outcome", "code": "SALE"}), "days": 0}, "admin", 400, "days"),
        ({**_change({"op": "retire_outcome", "code": "SALE"}), "project_id": "nowhere"}, "admin", 404, "nowhere"),
        ({"days": 7, "changes": []}, "admin", 400, "changes"),
        (PROPOSAL, "agent", 403, "may not"),
        (PROPOSAL, "reviewer", 403, "may not"),
    ],
)  # fmt: skip
def test_a_refused_proposal_is_4xx_json_and_writes_nothing(
    world: World, body: Any, who: str, status: int, says: str
) -> None:
    before = world.snapshot()
    r = world.what_if(body, who=who)
    assert r.status_code == status, r.text
    assert r.json()["status"] == status and says.lower() in r.json()["message"].lower(), r.json()
    assert not diff(before, world.snapshot())


def test_the_rates_after_are_the_reports_once_the_change_is_published(world: World) -> None:
    """The oracle for the rates: publish the INTERESTED change for real, let the projection
    catch up, and the rates report "as defined now" over the same 30 days says what the
    what-if said (every other outcome is unchanged, so now = then for them)."""
    month = {**PROPOSAL, "days": 30, "changes": PROPOSAL["changes"][:1]}
    predicted = world.what_if(month).json()["projects"][0]["rates_after"]
    definition = PROPOSAL["changes"][0]["definition"]
    r = world.client.put("/v1/outcomes/INTERESTED", headers=world.keys["admin"], json=definition)
    assert r.status_code == 200, r.text
    ledger = world.runtime.ledger("acme")
    ProjectionRunner(world.runtime.settings).settle(ledger.recorder.max_notification_id() or 0)
    params = {"project_id": "p1", "rolling_30_days_ending": "2026-11-22", "as_defined": "now"}
    report = world.client.get("/v1/reports/rates", headers=world.keys["admin"], params=params)
    assert report.status_code == 200, report.text
    assert report.json()["rates"] == predicted
    assert predicted["success_calls"] == 3
