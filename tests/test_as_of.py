"""State as of a past moment (services/as_of.py) through the real ASGI app and the CLI,
against real Redis: a project's outcome set at moments across configuration changes
(an outcome added, hidden, its flags changed), a call's outcome before and after a
correction, by time and by log position; bad moments and unknown ids get 4xx JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from events.types import OutcomeDefinition, OutcomeFlags, ProjectSettings
from services.api.app import create_app
from services.cli import main
from services.rules import config as config_rules
from services.runtime import Runtime
from tests.helpers import new_runtime, role_keys
from tests.history_strategies import Driver

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
CALLBACK = OutcomeDefinition(code="CALLBACK", name="Callback")


@dataclass
class World:
    runtime: Runtime
    client: TestClient[Any]
    keys: dict[str, dict[str, str]]
    #: moments between the steps, by name
    moments: dict[str, datetime] = field(default_factory=dict)

    def get(self, path: str, who: str = "auditor", **params: str) -> Any:
        return self.client.get(f"/v1/as-of/{path}", headers=self.keys[who], params=params)


def _moment() -> datetime:
    """A time after every event recorded so far and before the next one."""
    time.sleep(0.002)
    moment = datetime.now(UTC)
    time.sleep(0.002)
    return moment


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    before = _moment()
    _, admin = runtime.create_tenant("acme", "Acme")
    d = Driver(runtime, "acme")
    d.define(OutcomeDefinition(code="SALE", name="Sale", flags=OutcomeFlags(contact=True, success=True)))
    d.define(OutcomeDefinition(code="NO_SALE", name="No sale", flags=OutcomeFlags(contact=True)))
    d.project("winter", ProjectSettings(name="Winter", direction="outbound"))
    moments = {"before": before, "created": _moment()}
    d.start_call("c1", "winter", "outbound", T0, agent="anna")
    d.end("c1", T0 + timedelta(minutes=3))
    d.select("c1", "NO_SALE", T0 + timedelta(minutes=4), agent="anna")
    moments["selected"] = _moment()
    d.define(CALLBACK)
    moments["added"] = _moment()
    d.correct("c1", "SALE", T0 + timedelta(hours=1))
    moments["corrected"] = _moment()
    d.configure(lambda c, ctx: config_rules.hide_outcome(c, ctx, "SALE", "winter"))
    moments["hidden"] = _moment()
    d.change(OutcomeDefinition(code="CALLBACK", name="Callback", flags=OutcomeFlags(contact=True)))
    moments["flagged"] = _moment()
    try:
        with TestClient(create_app(runtime)) as client:
            keys = role_keys(client, admin, ("auditor", "supervisor", "agent", "platform"))
            yield World(runtime, client, keys, moments)
    finally:
        runtime.close()


def _codes(body: dict[str, Any]) -> set[str]:
    return {o["definition"]["code"] for o in body["outcome_set"]["outcomes"]}


def _flags(body: dict[str, Any], code: str) -> dict[str, Any]:
    return next(o["definition"]["flags"] for o in body["outcome_set"]["outcomes"] if o["definition"]["code"] == code)


def test_the_outcome_set_at_moments_across_configuration_changes(world: World) -> None:
    sets = {}
    for name in ("created", "added", "hidden", "flagged"):
        r = world.get("projects/winter/outcome-set", at=world.moments[name].isoformat())
        assert r.status_code == 200, r.text
        sets[name] = r.json()
    assert {"SALE", "NO_SALE", "BUSY"} <= _codes(sets["created"]) and "CALLBACK" not in _codes(sets["created"])
    assert {"SALE", "CALLBACK"} <= _codes(sets["added"]) and sets["added"]["hidden"] == []
    assert "SALE" not in _codes(sets["hidden"]) and sets["hidden"]["hidden"] == ["SALE"]
    assert _flags(sets["hidden"], "CALLBACK")["contact"] is False
    assert _flags(sets["flagged"], "CALLBACK")["contact"] is True
    # each change moved the project's outcome-set version, and the moment says what it holds
    versions = [sets[n]["outcome_set"]["version"] for n in ("created", "added", "hidden", "flagged")]
    assert versions == sorted(versions) and len(set(versions)) == 4
    assert all(datetime.fromisoformat(sets[n]["as_of"]["last_recorded_at"]) <= world.moments[n] for n in sets)
    # the latest moment is the state now
    now = world.client.get("/v1/projects/winter/outcome-set", headers=world.keys["admin"]).json()
    assert sets["flagged"]["outcome_set"] == now


def test_a_log_position_gives_the_same_state_as_the_time_it_was_written(world: World) -> None:
    by_time = world.get("projects/winter/outcome-set", at=world.moments["added"].isoformat()).json()
    position = by_time["as_of"]["last_position"]
    by_position = world.get("projects/winter/outcome-set", position=str(position)).json()
    assert by_position["outcome_set"] == by_time["outcome_set"]
    assert by_position["as_of"]["version"] == by_time["as_of"]["version"]
    # both bounds: the earlier one wins
    both = world.get(
        "projects/winter/outcome-set", at=world.moments["flagged"].isoformat(), position=str(position)
    ).json()
    assert both["outcome_set"] == by_time["outcome_set"]
    one_before = world.get("projects/winter/outcome-set", position=str(position - 1)).json()
    assert "CALLBACK" not in _codes(one_before)


def test_a_calls_outcome_before_and_after_its_correction(world: World) -> None:
    before = world.get("calls/c1", who="supervisor", at=world.moments["added"].isoformat())
    after = world.get("calls/c1", who="supervisor", at=world.moments["corrected"].isoformat())
    assert before.status_code == 200 and after.status_code == 200, (before.text, after.text)
    assert before.json()["call"]["outcome"]["code"] == "NO_SALE"
    assert after.json()["call"]["outcome"]["code"] == "SALE"
    assert after.json()["call"]["outcome"]["corrected_from"] == "NO_SALE"
    assert after.json()["as_of"]["version"] == before.json()["as_of"]["version"] + 1
    started = world.get("calls/c1", at=world.moments["created"].isoformat())
    assert started.status_code == 404 and "not found" in started.json()["message"]


def test_the_cli_prints_the_same_state(world: World) -> None:
    settings = world.runtime.settings
    env = {"REDIS_URL": settings.redis_url, "REDIS_SHARD": settings.shard, "REDIS_KEY_PREFIX": settings.key_prefix}
    at = world.moments["hidden"].isoformat()
    result = CliRunner().invoke(main, ["as-of", "outcome-set", "acme", "winter", "--at", at], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == world.get("projects/winter/outcome-set", at=at).json()
    result = CliRunner().invoke(
        main, ["as-of", "call", "acme", "c1", "--at", world.moments["selected"].isoformat()], env=env
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["call"]["outcome"]["code"] == "NO_SALE"
    refused = CliRunner().invoke(main, ["as-of", "call", "acme", "c1"], env=env)
    assert refused.exit_code != 0 and "give the moment" in refused.output


@pytest.mark.parametrize(
    ("path", "params", "who", "status", "says"),
    [
        ("projects/winter/outcome-set", {}, "auditor", 400, "give the moment"),
        ("projects/winter/outcome-set", {"at": "2026-11-22T09:00:00"}, "auditor", 400, "time zone"),
        ("projects/winter/outcome-set", {"at": "last tuesday"}, "auditor", 400, "at"),
        ("projects/winter/outcome-set", {"position": "0"}, "auditor", 400, "position"),
        ("projects/winter/outcome-set", {"position": "x"}, "auditor", 400, "position"),
        ("projects/nope/outcome-set", {"position": "1000000"}, "auditor", 404, "project 'nope' not found"),
        ("calls/nope", {"position": "1000000"}, "supervisor", 404, "call 'nope' not found"),
        ("conversations/nope", {"position": "1000000"}, "supervisor", 404, "conversation 'nope' not found"),
        ("calls/c1", {"position": "1000000"}, "agent", 403, "may not"),
        ("calls/c1", {"position": "1000000"}, "platform", 403, "may not"),
        ("calls/c1", {"position": "1000000"}, "none", 401, "Authorization"),
    ],
)
def test_bad_moments_and_unknown_ids_are_4xx_json(
    world: World, path: str, params: dict[str, str], who: str, status: int, says: str
) -> None:
    world.keys.setdefault("none", {})
    r = world.get(path, who=who, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and says.lower() in body["message"].lower(), body


def test_before_the_tenant_existed_nothing_is_found(world: World) -> None:
    r = world.get("projects/winter/outcome-set", at=world.moments["before"].isoformat())
    assert r.status_code == 404 and "tenant not found" in r.json()["message"]
