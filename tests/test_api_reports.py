"""GET /v1/reports/rates, /history and /sample through the real ASGI app: the worker's
runner keeps the interactions view current; rates answer the oracle's, history pages
follow the cursor (JSON and CSV), samples repeat by seed; bad parameters get 4xx JSON
errors naming the problem."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from litestar.testing import TestClient

from tests import report_oracle
from tests.history_strategies import BASE, TZ, Driver, tenant_events
from tests.test_api_outcome_mix import play_calls, served


class World:
    def __init__(self, client: TestClient[Any], driver: Driver, keys: dict[str, dict[str, str]]) -> None:
        self.client = client
        self.driver = driver
        self.keys = keys

    def get(self, path: str, who: str = "manager", **params: str) -> Any:
        return self.client.get(f"/v1/reports/{path}", headers=self.keys[who], params=params)


def play_with_a_late_recording(d: Driver) -> None:
    play_calls(d)
    d.attach_call("c1", BASE + timedelta(days=2))


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[World]:
    with served(redis_url, shard, play_with_a_late_recording) as (c, d, keys):
        yield World(c, d, keys)


def oracle_rates(d: Driver, **query: Any) -> dict[str, Any]:
    found = report_oracle.rates(tenant_events(d.runtime, d.tenant), tz=TZ, **query)
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in vars(found).items()}


def test_rates_are_the_oracles_as_json_and_as_csv(world: World) -> None:
    r = world.get("rates", project_id="p1", rolling_30_days_ending="2026-10-30")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rates"] == oracle_rates(world.driver, project="p1", rolling_30_days_ending=date(2026, 10, 30))
    assert body["first_day"] == "2026-10-01" and body["position"] > 0
    assert body["rates"]["calls"] == 3 and Decimal(body["rates"]["revenue"]) == Decimal("119.50")
    day = world.get("rates", project_id="p1", day="2026-10-24").json()
    assert day["rates"] == oracle_rates(world.driver, project="p1", day=date(2026, 10, 24))
    table = list(csv.DictReader(io.StringIO(world.get("rates", project_id="p1", day="2026-10-24", format="csv").text)))
    assert len(table) == 1 and table[0]["project_id"] == "p1"
    assert table[0]["calls"] == str(day["rates"]["calls"]) and table[0]["live_answered"] == str(
        day["rates"]["live_answered"]
    )


def test_history_pages_follow_the_cursor_as_json_and_as_csv(world: World) -> None:
    ids: list[str] = []
    params = {"limit": "3"}
    while True:
        body = world.get("history", **params).json()
        ids += [row["id"] for row in body["rows"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert ids == ["c0", "c1", "c2", "c3"]
    c3 = world.get("history", outcome="SALE", project="p1", date_from="2026-10-26").json()["rows"]
    assert [r["id"] for r in c3] == ["c3"]
    assert [(c["previous_code"], c["outcome_code"]) for c in c3[0]["corrections"]] == [("NO_INTEREST", "SALE")]

    first = world.get("history", limit="2", format="csv")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(first.text)))
    assert [r["id"] for r in rows] == ["c0", "c1"] and rows[1]["references"] == "recording:rec-c1"
    rest = world.get("history", limit="2", format="csv", cursor=first.headers["x-next-cursor"])
    rows = list(csv.DictReader(io.StringIO(rest.text)))
    assert [r["id"] for r in rows] == ["c2", "c3"] and rows[1]["corrections"] == "NO_INTEREST>SALE"
    assert rows[0]["outcome"] == "-" and "x-next-cursor" not in rest.headers


def test_a_sample_repeats_by_seed_and_says_its_seed(world: World) -> None:
    q = {"outcome_code": "SALE", "date_from": "2026-10-24", "date_to": "2026-10-30", "n": "2"}
    one = world.get("sample", seed="42", **q).json()
    assert one["sample"]["population"] == 2 and one["sample"]["seed"] == 42
    assert world.get("sample", seed="42", **q).json()["sample"] == one["sample"]
    seedless = world.get("sample", **q).json()["sample"]
    again = world.get("sample", seed=str(seedless["seed"]), **q).json()["sample"]
    assert again == seedless
    table = list(csv.DictReader(io.StringIO(world.get("sample", seed="42", format="csv", **q).text)))
    assert sorted(r["id"] for r in table) == ["c0", "c3"]


SAMPLE = {"outcome_code": "SALE", "date_from": "2026-10-24", "date_to": "2026-10-30"}


@pytest.mark.parametrize(
    ("path", "who", "params", "status", "says"),
    [
        ("rates", "manager", {}, 400, "project_id"),
        ("rates", "manager", {"project_id": "p1"}, 400, "day or rolling_30_days_ending"),
        (
            "rates",
            "manager",
            {"project_id": "p1", "day": "2026-10-24", "rolling_30_days_ending": "2026-10-24"},
            400,
            "either",
        ),
        ("rates", "manager", {"project_id": "p1", "day": "yesterday"}, 400, "day"),
        ("rates", "manager", {"project_id": "p 1", "day": "2026-10-24"}, 400, "project_id"),
        ("rates", "manager", {"project_id": "p1", "day": "2026-10-24", "format": "xml"}, 400, "format"),
        ("rates", "manager", {"project_id": "p1", "day": "2026-10-24", "as_defined": "later"}, 400, "as_defined"),
        ("rates", "agent", {"project_id": "p1", "day": "2026-10-24"}, 403, "may not"),
        ("rates", "none", {"project_id": "p1", "day": "2026-10-24"}, 401, ""),
        ("history", "manager", {"limit": "0"}, 400, "limit"),
        ("history", "manager", {"limit": "1001"}, 400, "limit"),
        ("history", "manager", {"cursor": "nope"}, 400, "cursor"),
        ("history", "manager", {"interaction": "email"}, 400, "interaction"),
        ("history", "manager", {"date_from": "2026-10-26", "date_to": "2026-10-24"}, 400, "after date_to"),
        ("history", "manager", {"outcome": "x" * 200}, 400, "outcome"),
        ("history", "agent", {}, 403, "may not"),
        ("history", "none", {}, 401, ""),
        ("sample", "manager", {"date_from": "2026-10-24", "date_to": "2026-10-30"}, 400, "outcome_code"),
        ("sample", "manager", {"outcome_code": "SALE", "date_from": "2026-10-24"}, 400, "date_to"),
        ("sample", "manager", {**SAMPLE, "n": "0"}, 400, "n"),
        ("sample", "manager", {**SAMPLE, "seed": "-1"}, 400, "seed"),
        ("sample", "manager", {**SAMPLE, "seed": "abc"}, 400, "seed"),
        ("sample", "manager", {**SAMPLE, "date_from": "2026-10-31"}, 400, "after date_to"),
        ("sample", "agent", SAMPLE, 403, "may not"),
        ("sample", "none", SAMPLE, 401, ""),
    ],
)
def test_bad_parameters_get_json_errors_naming_them(
    world: World, path: str, who: str, params: dict[str, str], status: int, says: str
) -> None:
    r = world.get(path, who, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and body["error"] and says.lower() in body["message"].lower(), body
