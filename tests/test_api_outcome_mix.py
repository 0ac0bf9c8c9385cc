"""GET /v1/reports/outcome-mix through the real ASGI app: the worker's runner keeps the view
current, the endpoint answers the oracle's rows as JSON and as CSV, and bad parameters get
4xx JSON errors naming the problem."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from litestar.testing import TestClient

from services.api.app import create_app
from tests import report_oracle
from tests.helpers import new_runtime
from tests.history_strategies import BASE, TZ, Driver, OutcomePlan, configure_world, tenant_events
from workers.projections import ProjectionRunner

OUTCOMES = (
    OutcomePlan("SALE", "sale", None, True, True, True, False, "optional"),
    OutcomePlan("SALE_BIG", "", "SALE", True, True, True, False, "required"),
    OutcomePlan("NO_INTEREST", "no_sale", None, True, False, False, False, "none"),
)


class World:
    def __init__(self, client: TestClient[Any], driver: Driver, keys: dict[str, dict[str, str]]) -> None:
        self.client = client
        self.driver = driver
        self.keys = keys

    def get(self, who: str = "manager", **params: str) -> Any:
        return self.client.get("/v1/reports/outcome-mix", headers=self.keys[who], params=params)


def play_calls(d: Driver) -> None:
    """Four calls over two local days in p1 and p2: a sale with revenue, a big sale, a call
    ended without an outcome, a no-interest corrected to a sale."""
    for n, (project, code, revenue, agent) in enumerate(
        (
            ("p1", "SALE", Decimal("12.50"), "anna"),
            ("p1", "SALE_BIG", Decimal(100), "bob"),
            ("p2", None, None, "cara"),
            ("p1", "NO_INTEREST", None, "anna"),
        )
    ):
        at = BASE + timedelta(hours=20 * n + 1)
        d.start_call(f"c{n}", project, "outbound", at, agent=agent)
        d.answer(f"c{n}", at + timedelta(seconds=5))
        d.end(f"c{n}", at + timedelta(minutes=3), "agent_hangup")
        if code is not None:
            d.select(f"c{n}", code, at + timedelta(minutes=4), agent=agent, revenue=revenue)
    d.correct("c3", "SALE", BASE + timedelta(days=3), Decimal(7))


@contextmanager
def served(
    redis_url: str, shard: str, play: Callable[[Driver], None]
) -> Iterator[tuple[TestClient[Any], Driver, dict[str, dict[str, str]]]]:
    """The app over a tenant whose history ``play`` made, every view settled; with the
    headers of an admin, a manager, an agent and no one."""
    runtime = new_runtime(redis_url, shard)
    _, admin = runtime.create_tenant("acme", "Acme", TZ)
    d = Driver(runtime, "acme")
    configure_world(d, OUTCOMES)
    play(d)
    runner = ProjectionRunner(runtime.settings)
    runner.settle(runtime.ledger("acme").recorder.max_notification_id() or 0)
    with TestClient(create_app(runtime)) as c:
        a = {"Authorization": f"Bearer {admin}"}
        keys = {"admin": a, "none": {}}
        for role in ("manager", "agent"):
            secret = c.post("/v1/keys", headers=a, json={"role": role}).json()["secret"]
            keys[role] = {"Authorization": f"Bearer {secret}"}
        yield c, d, keys
    runner.client.close()
    runtime.close()


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[World]:
    with served(redis_url, shard, play_calls) as (c, d, keys):
        yield World(c, d, keys)


def oracle_rows(d: Driver, **query: Any) -> list[dict[str, Any]]:
    events = tenant_events(d.runtime, d.tenant)
    return [
        {
            "key": r.key,
            "count": r.count,
            "percentage": r.percentage,
            "agent_selections": r.agent_selections,
            "system_selections": r.system_selections,
            "corrected": r.corrected,
            "revenue": str(r.revenue),
        }
        for r in report_oracle.outcome_mix(events, tz=TZ, **query)
    ]


def test_the_report_is_the_oracles_as_json_and_as_csv(world: World) -> None:
    r = world.get(project="p1")
    assert r.status_code == 200, r.text
    body = r.json()
    expected = oracle_rows(world.driver, interaction="call", project="p1")
    assert body["rows"] == expected
    assert body["total"] == 3 and body["position"] == world.driver.ledger.recorder.max_notification_id()
    by_key = {row["key"]: row for row in body["rows"]}
    assert by_key["SALE"]["count"] == 2 and by_key["SALE"]["corrected"] == 1
    assert Decimal(by_key["SALE"]["revenue"]) == Decimal("19.50")
    assert by_key["NO_INTEREST"]["count"] == 0 and "BUSY" in by_key  # every defined outcome has a row

    by_day = world.get(group_by="day", date_from="2026-10-24", date_to="2026-10-25", format="json").json()
    assert by_day["rows"] == oracle_rows(
        world.driver,
        interaction="call",
        group_by="day",
        date_from=report_oracle.date(2026, 10, 24),
        date_to=report_oracle.date(2026, 10, 25),
    )

    category = world.get(group_by="category", as_defined="now", format="csv")
    assert category.status_code == 200 and category.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(category.text)))
    json_rows = world.get(group_by="category", as_defined="now").json()["rows"]
    assert [{k: str(v) for k, v in row.items()} for row in json_rows] == table
    assert {row["key"]: int(row["count"]) for row in table} == {"-": 1, "sale": 3}


@pytest.mark.parametrize(
    ("who", "params", "status", "says"),
    [
        ("manager", {"group_by": "colour"}, 400, "group_by"),
        ("manager", {"interaction": "email"}, 400, "interaction"),
        ("manager", {"as_defined": "later"}, 400, "as_defined"),
        ("manager", {"format": "xml"}, 400, "format"),
        ("manager", {"date_from": "24.10.2026"}, 400, "date_from"),
        ("manager", {"date_from": "2026-10-26", "date_to": "2026-10-24"}, 400, "after date_to"),
        ("manager", {"direction": "sideways"}, 400, "direction"),
        ("manager", {"agent": "x" * 200}, 400, "agent"),
        ("agent", {}, 403, "may not"),
        ("none", {}, 401, ""),
    ],
)
def test_bad_parameters_get_json_errors_naming_them(
    world: World, who: str, params: dict[str, str], status: int, says: str
) -> None:
    r = world.get(who, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and body["error"] and says.lower() in body["message"].lower(), body
