"""The outcome mix by contact list, as of each selection, by hand: a contact moved to another
list by an outcome (the real contact-list follower records the move), a correction that keeps
the list of the selection it corrects, a project with a list of its own, a call with no outcome
-- through the API as JSON and CSV, and the same after a rebuild from 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar.testing import TestClient

from events.types import ContactHandling, ContactMovedToList, OutcomeDefinition, ProjectSettings, WrapUp
from services.api.app import create_app
from services.permissions import Role
from tests.helpers import new_runtime
from tests.history_strategies import Driver, tenant_events
from workers.contact_lists import ContactListPlanner
from workers.projections import ProjectionRunner

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


def call(d: Driver, call_id: str, project: str, contact: str, code: str | None, minutes: int) -> None:
    at = AT + timedelta(minutes=minutes)
    d.start_call(call_id, project, "outbound", at, agent="anna", contact_id=contact)
    d.end(call_id, at + timedelta(minutes=2))
    if code is not None:
        d.select(call_id, code, at + timedelta(minutes=3), agent="anna")


def test_the_mix_by_contact_list_as_of_each_selection(redis_url: str, shard: str) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        runtime.create_tenant("acme", "Acme", "UTC")
        d = Driver(runtime, "acme")
        d.agent("anna")
        d.define(OutcomeDefinition(code="MOVE", name="Move", contact_handling=ContactHandling(move_to_list="LX")))
        d.define(OutcomeDefinition(code="NO", name="No"))
        optional = WrapUp(mode="optional")
        d.project("p", ProjectSettings(name="P", direction="outbound", wrap_up=optional))
        d.project("q", ProjectSettings(name="Q", direction="outbound", wrap_up=optional, contact_list="QL"))
        d.save_contact("k", "LA")
        call(d, "c1", "p", "k", "MOVE", 0)  # on LA when selected; the outcome then moves k to LX
        planner = ContactListPlanner(runtime.settings)
        while planner.run_once():
            pass
        assert [e.to_list for e in tenant_events(runtime, "acme") if isinstance(e, ContactMovedToList)] == ["LX"]
        call(d, "c2", "p", "k", "NO", 10)  # on LX now
        call(d, "c3", "q", "k", "NO", 20)  # q dials its own list
        call(d, "c4", "p", "k", None, 30)  # no outcome: the list when it ended
        d.save_contact("k", "LB")  # a re-save does not undo the outcome's move: still LX
        call(d, "c5", "p", "k", "NO", 40)
        d.correct("c1", "NO", AT + timedelta(hours=2))  # corrected later: keeps LA, the list at its selection
        runner = ProjectionRunner(runtime.settings)
        runner.settle(runtime.ledger("acme").recorder.max_notification_id() or 0)
        _, key = runtime.registry.issue_key("acme", Role.MANAGER)
        with TestClient(create_app(runtime)) as http:
            h = {"Authorization": f"Bearer {key}"}

            def mix(**params: str) -> dict[str, int]:
                r = http.get("/v1/reports/outcome-mix", headers=h, params=params)
                assert r.status_code == 200, r.text
                return {row["key"]: row["count"] for row in r.json()["rows"] if row["count"]}

            expected = {"LA": 1, "LX": 3, "QL": 1}
            assert mix(group_by="list") == expected
            assert mix(contact_list="LX") == {"NO": 2, "-": 1}
            assert mix(contact_list="LA") == {"NO": 1}  # c1, as corrected
            assert mix(contact_list="LB") == {}
            text = http.get("/v1/reports/outcome-mix", headers=h, params={"group_by": "list", "format": "csv"}).text
            assert [line.split(",")[:2] for line in text.splitlines()[1:]] == [["LA", "1"], ["LX", "3"], ["QL", "1"]]
            trend = http.get("/v1/reports/trend", headers=h, params={"contact_list": "LX"}).json()["rows"]
            assert {(r["key"], r["count"]) for r in trend if r["count"]} == {("NO", 2), ("-", 1)}
            bad = http.get("/v1/reports/outcome-mix", headers=h, params={"contact_list": "a b"})
            assert bad.status_code == 400 and "contact_list" in bad.text
            for view in runner.views:
                view.drop()
            for view in runner.views:
                view.catch_up()
            assert mix(group_by="list") == expected
        runner.client.close()
    finally:
        runtime.close()
