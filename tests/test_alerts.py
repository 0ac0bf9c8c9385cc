"""Outcome-mix alerts (PRODUCT.md §4): the pure rules on hand-computed windows; the follower
(workers/alerts.py) over a real history in Redis, killed between recording and moving its
position and run twice side by side -- never a doubled alert event; the alerts view rebuilt
from 0; the report through the ASGI app as JSON and CSV."""

from __future__ import annotations

import csv
import io
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from events.codec import StructMapper, SubjectKeys
from events.types import (
    OutcomeAlertRaised,
    OutcomeDefinition,
    OutcomeFlags,
    OutcomeSelected,
    ProjectSettings,
    TargetMix,
    WrapUp,
)
from projections.alerts import AlertsView, alerts
from projections.base import View
from projections.outcome_mix import OutcomeMixView
from services.api.app import create_app
from services.permissions import Role
from services.rules import alerts as rules
from services.runtime import Runtime
from tests.helpers import new_runtime, wait_until
from tests.history_strategies import Driver, tenant_events
from workers.alerts import AlertWatch, weeks_touched
from workers.projections import ProjectionRunner

TZ = "Europe/Helsinki"
#: Monday of ISO week 2026-W45 (local), the week that goes wrong; the baseline is in 2026-W43
WEEK = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BASELINE = WEEK - timedelta(weeks=2)


# -- the rules, by hand ----------------------------------------------------------------------------------


def w(total: int, **counts: int) -> rules.Window:
    return rules.Window(total=total, counts=counts)


def test_a_rare_negative_outcome_rising_is_found_and_noise_is_not() -> None:
    baseline = w(100, COMPLAINT=2, RUDE=10)
    found = rules.rare_negative_rises(w(50, COMPLAINT=5, RUDE=20), baseline, {"COMPLAINT", "RUDE"})
    # COMPLAINT 2 % -> 10 %: rare, doubled, +8 points, 5 cases; RUDE was 10 %: not rare
    assert [(f.rule, f.outcome_code, f.observed_share, f.expected_share) for f in found] == [
        ("rare_negative_rise", "COMPLAINT", 0.1, 0.02)
    ]
    assert rules.rare_negative_rises(w(50, COMPLAINT=4), baseline, {"COMPLAINT"}) == []  # 4 cases: too few
    assert rules.rare_negative_rises(w(400, COMPLAINT=12), baseline, {"COMPLAINT"}) == []  # 3 %: +1 point only
    assert rules.rare_negative_rises(w(19, COMPLAINT=9), baseline, {"COMPLAINT"}) == []  # a small week says nothing
    assert rules.rare_negative_rises(w(50, COMPLAINT=9), w(19), {"COMPLAINT"}) == []  # no baseline to speak of


def test_positive_outcomes_rising_without_successes() -> None:
    baseline = w(100, NICE=10, SALE=20)
    positive, success = {"NICE", "SALE"}, {"SALE"}
    (f,) = rules.positive_without_success(w(100, NICE=30, SALE=20), baseline, positive, success)
    assert (f.rule, f.outcome_code, f.observed_share, f.expected_share) == ("positive_without_success", None, 0.5, 0.3)
    # successes rose with them (+5 points): healthy
    assert rules.positive_without_success(w(100, NICE=25, SALE=25), baseline, positive, success) == []
    # positive +4 points only
    assert rules.positive_without_success(w(100, NICE=14, SALE=20), baseline, positive, success) == []


def test_leaving_the_target_beyond_its_tolerance() -> None:
    target = TargetMix(shares={"SALE": 0.3, "NO_SALE": 0.6}, tolerance=0.1)
    found = rules.off_target(w(100, SALE=15, NO_SALE=65), target)
    assert [(f.outcome_code, f.observed_share, f.expected_share, f.threshold) for f in found] == [
        ("SALE", 0.15, 0.3, 0.1)
    ]  # NO_SALE 65 % is within 60 % ± 10
    assert rules.off_target(w(100, SALE=21, NO_SALE=60), target) == []  # 21 % is 9 points off: within
    assert rules.off_target(w(10, SALE=0), target) == []  # too small a week
    assert rules.off_target(w(100, SALE=0), None) == []  # no target


# -- the follower over a real history -------------------------------------------------------------------


def define(d: Driver) -> None:
    flags = {
        "SALE": OutcomeFlags(contact=True, success=True, polarity="positive"),
        "NICE": OutcomeFlags(contact=True, polarity="positive"),
        "NO_SALE": OutcomeFlags(contact=True),
        "COMPLAINT": OutcomeFlags(contact=True, polarity="negative"),
    }
    d.agent("anna")
    for code, f in flags.items():
        d.define(OutcomeDefinition(code=code, name=code.title(), flags=f))
    target = TargetMix(shares={"SALE": 0.3}, tolerance=0.1)
    d.project("p", ProjectSettings(name="P", direction="outbound", wrap_up=WrapUp(mode="optional"), target_mix=target))


def calls(d: Driver, first: datetime, mix: dict[str, int]) -> None:
    n = 0
    for code, count in mix.items():
        for _ in range(count):
            at = first + timedelta(minutes=10 * n)
            call_id = f"c-{first:%m%d}-{n}"
            d.start_call(call_id, "p", "outbound", at, agent="anna")
            d.answer(call_id, at + timedelta(seconds=5))
            d.end(call_id, at + timedelta(minutes=3))
            d.select(call_id, code, at + timedelta(minutes=4), agent="anna")
            n += 1


def history(d: Driver) -> None:
    define(d)
    calls(d, BASELINE, {"SALE": 9, "NO_SALE": 20, "COMPLAINT": 1})
    calls(d, WEEK, {"SALE": 3, "NICE": 12, "NO_SALE": 9, "COMPLAINT": 6})


class Watch:
    def __init__(self, runtime: Runtime, tenant: str, batch_size: int = 25) -> None:
        mapper = StructMapper(keys=SubjectKeys(runtime.client, runtime.settings.key_prefix))
        self.keys = runtime.shard_keys(tenant)
        self.mix = OutcomeMixView(runtime.client, self.keys, mapper)
        self.watch = AlertWatch(runtime, self.keys, mapper, self.mix, batch_size=batch_size)
        self.view = AlertsView(runtime.client, self.keys, mapper)


@pytest.fixture()
def driver(redis_url: str, shard: str) -> Iterator[Driver]:
    runtime = new_runtime(redis_url, shard)
    runtime.create_tenant("acme", "Acme", TZ)
    d = Driver(runtime, "acme")
    history(d)
    yield d
    runtime.close()


def raised(d: Driver) -> list[OutcomeAlertRaised]:
    return [e for e in tenant_events(d.runtime, d.tenant) if isinstance(e, OutcomeAlertRaised)]


EXPECTED = {
    ("rare_negative_rise", "COMPLAINT", 6 / 30, 1 / 30),
    ("positive_without_success", None, 15 / 30, 9 / 30),
    ("off_target", "SALE", 3 / 30, 0.3),
}


def test_the_follower_records_each_alert_once_however_often_it_is_killed_or_twinned(driver: Driver) -> None:
    d = driver
    first, twin = Watch(d.runtime, d.tenant), Watch(d.runtime, d.tenant)
    # killed after marking the weeks with its position, before checking them: nothing is lost
    View.catch_up(first.watch)
    assert first.watch.position() > 0 and raised(d) == []
    pending = first.watch.pending()  # the weeks of the selections (Mondays) and of the Sundays before
    assert {(p, k, w) for _, p, k, w in pending} == {
        ("p", "call", w) for w in ("2026-W42", "2026-W43", "2026-W44", "2026-W45")
    }
    # killed after recording, before forgetting the weeks it checked
    assert first.watch.record(pending) == 3
    once = raised(d)
    assert {(e.rule, e.outcome_code, e.observed_share, e.expected_share) for e in once} == EXPECTED
    assert {(e.project_id, e.interaction, e.period, e.interactions) for e in once} == {("p", "call", "2026-W45", 30)}
    # the rerun, and a twin: they find the same alerts and record none again
    first.watch.catch_up()
    twin.watch.catch_up()
    assert first.watch.position() == twin.watch.position() > 0
    assert first.watch.pending() == {}
    assert raised(d) == once
    # a later selection in the same week, checked again: still once
    calls(d, WEEK + timedelta(days=2), {"COMPLAINT": 1})
    first.watch.catch_up()
    assert raised(d) == once and first.watch.pending() == {}
    assert len({e.originator_id for e in once}) == len(once) == 3


def test_a_week_marked_again_while_it_was_checked_stays_pending(driver: Driver) -> None:
    w = Watch(driver.runtime, driver.tenant).watch
    View.catch_up(w)
    read = w.pending()
    week = next(iter(read))
    driver.runtime.client.hset(w.pending_key, msgspec.json.encode(week).decode(), "a later batch")
    w.forget(read)
    assert w.pending() == {week: "a later batch"}


#: a follower process: one event per batch, so a kill lands mid-way through the history
FOLLOWER = """
import sys
from services.config import Settings
from services.runtime import Runtime
from tests.test_alerts import Watch
runtime = Runtime(Settings(redis_url=sys.argv[1], shard=sys.argv[2], key_prefix=sys.argv[3]))
watch = Watch(runtime, "acme", batch_size=1)
print("started", flush=True)
watch.watch.catch_up()
"""


def _moved_on(watch: AlertWatch, target: int, proc: subprocess.Popen[bytes]) -> bool:
    return watch.position() >= target or proc.poll() is not None


def test_the_follower_process_killed_at_random_moments_records_each_alert_once(driver: Driver) -> None:
    d = driver
    s = d.runtime.settings
    root = Path(__file__).resolve().parent.parent
    rng = random.Random(7)
    head = d.runtime.ledger(d.tenant).recorder.max_notification_id() or 0
    probe = Watch(d.runtime, d.tenant).watch
    # three kills at random points of the history (by the follower's own position, so they
    # land mid-way however fast the machine is), one as it records the marked weeks' alerts
    targets = [*sorted(rng.sample(range(2, head - 1), 3)), head]
    kills = 0
    for target in [*targets, None]:
        proc = subprocess.Popen(
            [sys.executable, "-c", FOLLOWER, s.redis_url, s.shard, s.key_prefix], cwd=root, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
        try:
            if target is None:  # the last run goes to the end
                assert proc.wait(timeout=120) == 0
                break
            wait_until(partial(_moved_on, probe, target, proc), 120, "the follower to move on")
            if target == head:
                time.sleep(rng.uniform(0, 0.05))  # somewhere in checking and recording the weeks
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.wait()
        finally:
            proc.stdout.close()
    assert kills >= 3
    once = raised(d)
    assert {(e.rule, e.outcome_code, e.observed_share, e.expected_share) for e in once} == EXPECTED
    assert len({e.originator_id for e in once}) == len(once) == 3
    head = d.runtime.ledger(d.tenant).recorder.max_notification_id() or 0
    last = Watch(d.runtime, d.tenant).watch
    # every selection followed and every week checked (the alert events after the last selection
    # are behind the position too when a killed run had recorded them before the last run)
    assert last.position() >= head - len(once) and last.pending() == {}


def test_weeks_touched_include_the_day_before() -> None:
    # a selection early on a Monday (local) may be of an interaction that started on Sunday
    sel = OutcomeSelected(
        originator_id=uuid.uuid4(),
        originator_version=2,
        recorded_at=WEEK,
        tenant_id="acme",
        actor="agent:anna",
        occurred_at=datetime(2026, 11, 1, 22, 30, tzinfo=UTC),  # Monday 00:30 in Helsinki
        interaction="call",
        interaction_id="c",
        project_id="p",
        outcome_code="SALE",
        outcome_set_version=1,
        definition=OutcomeDefinition(code="SALE", name="Sale"),
    )
    assert weeks_touched([sel], {"acme": TZ}) == {("acme", "p", "call", "2026-W45"), ("acme", "p", "call", "2026-W44")}


def test_the_alerts_report_as_json_and_csv_and_after_a_rebuild(driver: Driver) -> None:
    d = driver
    runner = ProjectionRunner(d.runtime.settings)
    runner.settle(d.runtime.ledger(d.tenant).recorder.max_notification_id() or 0)
    # the alerts it recorded are in the log now: the next settle puts them in the view
    runner.settle(d.runtime.ledger(d.tenant).recorder.max_notification_id() or 0)
    keys = d.runtime.shard_keys(d.tenant)
    rows = alerts(d.runtime.client, keys, d.tenant)
    assert {(r.rule, r.outcome_code, r.observed_share, r.expected_share) for r in rows} == EXPECTED
    assert alerts(d.runtime.client, keys, d.tenant, date_to=date(2026, 11, 1)) == []  # W45 starts on the 2nd
    assert alerts(d.runtime.client, keys, d.tenant, project="other") == []
    view = next(v for v in runner.views if isinstance(v, AlertsView))
    view.drop()
    assert alerts(d.runtime.client, keys, d.tenant) == []
    view.catch_up()
    assert alerts(d.runtime.client, keys, d.tenant) == rows
    _, admin = d.runtime.registry.issue_key(d.tenant, Role.MANAGER)
    with TestClient(create_app(d.runtime)) as http:
        h = {"Authorization": f"Bearer {admin}"}
        got: Any = http.get("/v1/reports/alerts", headers=h, params={"rule": "off_target"}).json()
        assert [(r["rule"], r["outcome_code"], r["period"]) for r in got["rows"]] == [
            ("off_target", "SALE", "2026-W45")
        ]
        assert got["position"] > 0
        text = http.get("/v1/reports/alerts", headers=h, params={"format": "csv"}).text
        lines = list(csv.DictReader(io.StringIO(text)))
        assert sorted(x["rule"] for x in lines) == sorted(r.rule for r in rows)
        bad = http.get("/v1/reports/alerts", headers=h, params={"rule": "nonsense"})
        assert bad.status_code == 400 and "rule" in bad.text
        bad = http.get("/v1/reports/alerts", headers=h, params={"date_from": "2026-11-09", "date_to": "2026-11-01"})
        assert bad.status_code == 400 and bad.json()["message"] == "date_from 2026-11-09 is after date_to 2026-11-01"
    runner.client.close()
