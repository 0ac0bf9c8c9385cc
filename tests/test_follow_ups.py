"""Follow-up tasks (PRODUCT.md §3): opened by the outcome with an owner and a due time,
completed and reassigned over the API, overdue through the shared durable scheduler --
through the real API, Redis and the workers' own classes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from litestar.testing import TestClient

from events.types import FollowUpCancelled, FollowUpCompleted, FollowUpOpened, FollowUpOverdue
from services.api.app import create_app
from services.interactions import aggregate_id
from services.permissions import Role
from services.runtime import Runtime
from tests.helpers import new_runtime
from workers.actions import FollowUpPlanner
from workers.timers import TimerRunner

TENANT = "tasks"


class World:
    def __init__(self, runtime: Runtime, http: TestClient[Any], platform: str) -> None:
        self.runtime, self.http = runtime, http
        self.platform = platform
        self.planner = FollowUpPlanner(runtime.settings)

    def as_(self, actor: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.platform}", "X-Acting-For": actor}

    def post(self, path: str, body: dict[str, Any], actor: str = "agent:anna", status: int = 0) -> dict[str, Any]:
        r = self.http.post(path, headers=self.as_(actor), json=body)
        assert r.status_code == status if status else 200 <= r.status_code < 300, r.text
        return cast(dict[str, Any], r.json())

    def tasks(self, call_id: str) -> list[dict[str, Any]]:
        r = self.http.get(f"/v1/calls/{call_id}/follow-ups", headers=self.as_("agent:anna"))
        assert r.status_code == 200, r.text
        return cast(list[dict[str, Any]], r.json())

    def history(self, task_id: str) -> list[type]:
        from uuid import UUID

        return [type(e) for e in self.runtime.ledger(TENANT).events.get(UUID(task_id))]


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    _, secret = runtime.create_tenant(TENANT, "Tasks")
    admin = {"Authorization": f"Bearer {secret}"}
    _, platform = runtime.registry.issue_key(TENANT, Role.PLATFORM)
    with TestClient(create_app(runtime)) as http:
        for path, body in (
            ("/v1/teams", {"team_id": "care", "name": "Care"}),
            ("/v1/teams", {"team_id": "sales", "name": "Sales"}),
            ("/v1/outcomes", {"code": "CALL_BACK", "name": "Call back",
                              "follow_up": {"owner_team": "care", "due_within_seconds": 3600}}),
            ("/v1/outcomes", {"code": "DONE", "name": "Done"}),
            ("/v1/projects", {"project_id": "p", "name": "P", "direction": "outbound"}),
        ):  # fmt: skip
            assert http.post(path, headers=admin, json=body).status_code == 201
        yield World(runtime, http, platform)
    runtime.close()


def select(w: World, call_id: str, code: str, at: datetime) -> None:
    w.post("/v1/calls", {"call_id": call_id, "project_id": "p", "direction": "outbound", "occurred_at": at.isoformat()})
    w.post(f"/v1/calls/{call_id}/ended", {"occurred_at": (at + timedelta(minutes=2)).isoformat()})
    selected = (at + timedelta(minutes=3)).isoformat()
    w.post(f"/v1/calls/{call_id}/outcome", {"outcome_code": code, "occurred_at": selected})


def call_with(w: World, call_id: str, code: str, at: datetime) -> None:
    select(w, call_id, code, at)
    while w.planner.run_once():
        pass


def test_an_outcome_opens_a_task_that_is_reassigned_and_completed_by_its_owner(world: World) -> None:
    w = world
    now = datetime.now(UTC).replace(microsecond=0)
    call_with(w, "t1", "CALL_BACK", now)
    call_with(w, "t0", "DONE", now)
    assert w.tasks("t0") == []
    (task,) = w.tasks("t1")
    assert (task["status"], task["owner_team"], task["overdue"]) == ("open", "care", False)
    assert task["due_at"] == (now + timedelta(minutes=3, hours=1)).isoformat().replace("+00:00", "Z")
    path = f"/v1/follow-ups/{task['follow_up_id']}"
    refused = w.post(path + "/reassign", {"owner_agent": "anna"}, actor="agent:anna", status=403)
    assert refused["error"] == "forbidden"  # reassigning is a supervisor's
    w.post(path + "/reassign", {"owner_agent": "anna", "owner_team": "sales"}, actor="supervisor:sue")
    refused = w.post(path + "/complete", {"note": "mine now"}, actor="agent:bob", status=403)
    assert "agent 'anna'" in refused["message"]
    w.post(path + "/complete", {"note": "called her back"}, actor="agent:anna")
    (task,) = w.tasks("t1")
    assert (task["status"], task["owner_agent"], task["completed_by"]) == ("completed", "anna", "agent:anna")
    again = w.post(path + "/complete", {}, actor="agent:anna", status=409)
    assert again["error"] == "follow_up_closed"


def test_a_task_still_open_at_its_due_time_is_overdue_once(world: World) -> None:
    w = world
    long_ago = datetime.now(UTC) - timedelta(hours=3)  # due two hours ago
    call_with(w, "t2", "CALL_BACK", long_ago)
    call_with(w, "t3", "CALL_BACK", long_ago)
    (open_task,), (done_task,) = w.tasks("t2"), w.tasks("t3")
    w.post(f"/v1/follow-ups/{done_task['follow_up_id']}/complete", {})
    timers = TimerRunner(w.runtime.settings)
    assert timers.run_once() == 2  # both timers were set with the tasks, durably
    assert timers.run_once() == 0
    assert w.tasks("t2")[0]["overdue"] is True
    assert w.history(open_task["follow_up_id"]) == [FollowUpOpened, FollowUpOverdue]
    assert w.history(done_task["follow_up_id"]) == [FollowUpOpened, FollowUpCompleted]  # done in time: no overdue
    timers.close()


def test_a_correction_cancels_the_corrected_selections_open_task(world: World) -> None:
    w = world
    call_with(w, "t4", "CALL_BACK", datetime.now(UTC))
    w.post(
        "/v1/calls/t4/correction",
        {"outcome_code": "DONE", "occurred_at": datetime.now(UTC).isoformat(), "reason": "no call back needed"},
        actor="supervisor:sue",
    )
    while w.planner.run_once():
        pass
    (task,) = w.tasks("t4")
    assert task["status"] == "cancelled"
    assert w.history(task["follow_up_id"]) == [FollowUpOpened, FollowUpCancelled]


def test_twin_planners_open_one_task(world: World) -> None:
    w = world
    twin = FollowUpPlanner(w.runtime.settings)
    select(w, "t5", "CALL_BACK", datetime(2026, 11, 22, 9, tzinfo=UTC))
    while twin.run_once() + w.planner.run_once():
        pass
    task_id = aggregate_id(TENANT, "follow-up", f"{aggregate_id(TENANT, 'call', 't5')}/3")
    assert w.history(str(task_id)) == [FollowUpOpened]
