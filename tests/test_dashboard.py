"""The dashboard page driven in Debian's headless Chromium (scripts/setup-browser.sh installs it):
the real app served by uvicorn on a loopback port over the suite's Redis, a tenant with seeded
selections over ten days in two projects, the projections settled. The numbers the page shows
(the mix per day and in total, percentages, revenue, rates, the drilled-down history and sample)
are asserted equal to the API's JSON for the same filters, the page loads nothing from
elsewhere, and a screenshot is kept at var/artifacts/dashboard.png (a copy: docs/dashboard.png).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from litestar.testing import TestClient

from services.api.app import create_app
from services.permissions import Role
from tests.helpers import new_runtime
from tests.history_strategies import BASE, TZ, Driver, configure_world
from tests.stack import ROOT, Served
from tests.test_api_outcome_mix import OUTCOMES
from workers.projections import ProjectionRunner

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "var" / "artifacts" / "dashboard.png"
FIRST_DAY = date(2026, 10, 24)  # BASE is local midnight of this day (Europe/Helsinki)
DAYS = 10
FILTERS = {
    "project": "p1",
    "interaction": "call",
    "from": FIRST_DAY.isoformat(),
    "to": (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat(),
    "group": "outcome",
    "as_defined": "then",
}
WAIT_SECONDS = 30


def seed(d: Driver) -> None:
    """Calls over ten days in p1 and p2 by three agents: sales with revenue, big sales, no
    interest, busy lines (the system's outcome), calls ended without an outcome; some
    corrected, some with recordings. Fixed by a seeded random, so the screenshot repeats."""
    rnd = random.Random(20261024)
    codes = ("SALE", "SALE_BIG", "NO_INTEREST", "NO_INTEREST", "NO_INTEREST", "busy", None)
    n = 0
    for day in range(DAYS):
        for project, calls in (("p1", rnd.randint(4, 9)), ("p2", rnd.randint(1, 3))):
            for _ in range(calls):
                n += 1
                call, agent = f"c{n}", rnd.choice(("anna", "bob", "cara"))
                at = BASE + timedelta(days=day, hours=8 + rnd.randint(0, 9), minutes=rnd.randint(0, 59))
                d.start_call(call, project, "outbound", at, agent=agent)
                code = rnd.choice(codes)
                if code == "busy":
                    d.unanswered(call, at + timedelta(seconds=20), "busy")
                    d.end(call, at + timedelta(seconds=21), "network")
                    d.select(call, "BUSY", at + timedelta(seconds=22))  # the dialer's
                    continue
                d.answer(call, at + timedelta(seconds=9))
                d.end(call, at + timedelta(minutes=rnd.randint(1, 9)), "agent_hangup")
                if code is None:
                    continue
                revenue = {"SALE": Decimal(rnd.randint(10, 90)), "SALE_BIG": Decimal(250)}.get(code)
                d.select(call, code, at + timedelta(minutes=10), agent=agent, revenue=revenue)
                if code == "NO_INTEREST" and rnd.random() < 0.15:
                    d.correct(call, "SALE", at + timedelta(days=1), Decimal(20))
                if rnd.random() < 0.3:
                    d.attach_call(call, at + timedelta(minutes=12))


def test_the_page_and_its_assets_are_served_from_the_package(redis_url: str, shard: str) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        with TestClient(create_app(runtime)) as c:
            page = c.get("/dashboard")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert page.headers["referrer-policy"] == "no-referrer"
            for name, media_type in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
                asset = c.get(f"/dashboard/assets/{name}")
                assert asset.status_code == 200 and asset.headers["content-type"].startswith(media_type)
                assert f"/dashboard/assets/{name}" in page.text
            assert "http" not in page.text  # no address elsewhere: the page loads only its own assets
            for missing in ("dashboard.html", "app.py", "..%2Fapi%2Fapp.py"):
                r = c.get(f"/dashboard/assets/{missing}")
                assert r.status_code in (400, 404) and r.json()["status"] == r.status_code, missing
            assert "/dashboard" not in c.get("/schema/openapi.json").text
    finally:
        runtime.close()


class Site:
    """The served app over the seeded tenant, and a manager's key for the reports."""

    def __init__(self, base: str, secret: str) -> None:
        self.base = base
        self.secret = secret
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30)

    def report(self, name: str, **params: object) -> Any:
        r = self.http.get(f"/v1/reports/{name}", params={k: str(v) for k, v in params.items() if v is not None})
        assert r.status_code == 200, r.text
        return r.json()

    def mix(self, date_from: str, date_to: str) -> Any:
        return self.report(
            "outcome-mix",
            interaction="call",
            project="p1",
            date_from=date_from,
            date_to=date_to,
            group_by="outcome",
            as_defined="then",
        )


@pytest.fixture()
def site(redis_url: str, shard: str) -> Iterator[Site]:
    runtime = new_runtime(redis_url, shard)
    runtime.create_tenant("acme", "Acme", TZ)
    d = Driver(runtime, "acme")
    configure_world(d, OUTCOMES)
    seed(d)
    runner = ProjectionRunner(runtime.settings)
    runner.settle(runtime.ledger("acme").recorder.max_notification_id() or 0)
    _, secret = runtime.registry.issue_key("acme", Role.MANAGER)
    try:
        with Served(runtime) as served:
            s = Site(served.base, secret)
            yield s
            s.http.close()
    finally:
        runner.client.close()
        runtime.close()


@pytest.fixture()
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = f"{CHROMIUM} or {CHROMEDRIVER} missing and scripts/setup-browser.sh could not install them"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the dashboard test: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--lang=en-US",
        "--window-size=1360,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, css: str, states: tuple[str, ...] = ("ready", "error", "key")) -> str:
    """Wait until the element's data-state is one of states; return it."""
    from selenium.webdriver.support.ui import WebDriverWait

    def state(_: Any) -> str | None:
        found: str | None = driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e && e.dataset.state", css
        )
        return found if found in states else None

    from selenium.common.exceptions import TimeoutException

    try:
        reached: str = WebDriverWait(driver, WAIT_SECONDS).until(state)
    except TimeoutException:
        console = [e["message"] for e in driver.get_log("browser")]
        raise AssertionError(f"{css} never reached {states}; the browser's console: {console}") from None
    return reached


def half_up(value: float, scale: int = 1) -> str:
    """How JS's toFixed(1) writes a number (ties away from zero, on the exact binary value)."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP))


MIX_TABLE = """
return [...document.querySelectorAll('#mix tbody tr, #mix tfoot tr')].map(tr => ({
  key: tr.dataset.key,
  cells: Object.fromEntries([...tr.querySelectorAll('td[data-bucket]')].map(td => [td.dataset.bucket,
    td.textContent.trim()])),
  percentage: tr.querySelector('td[data-field=percentage]')?.textContent.trim(),
  revenue: tr.querySelector('td[data-field=revenue]')?.textContent.trim(),
}));
"""
DRILL_ROWS = """
return [...document.querySelectorAll('#drill-table tbody tr[data-id]')].map(tr => ({
  id: tr.dataset.id,
  fields: Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.field, td.textContent])),
}));
"""


def test_the_dashboard_shows_the_apis_numbers(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    # no key yet: the page asks for one; a wrong one is refused, the right one opens it
    browser.get(f"{site.base}/dashboard?{urlencode(FILTERS)}")
    assert wait_for(browser, "body") == "key"
    browser.find_element(By.ID, "key").send_keys("olk_nobody_xxxxxxxx")
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    assert wait_for(browser, "body", ("key",)) == "key"
    assert "did not accept" in browser.find_element(By.ID, "key-error").text

    # the key in the URL fragment: kept in the tab, gone from the address
    browser.get(f"{site.base}/dashboard?{urlencode(FILTERS)}#key={site.secret}")
    state = wait_for(browser, "body")
    assert state == "ready", browser.find_element(By.ID, "error").text
    assert "#key" not in browser.current_url and site.secret not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('outcomes.dashboard.key')") == site.secret

    # the table: every day's counts, the totals, percentages and revenue are the API's
    days = [(FIRST_DAY + timedelta(days=n)).isoformat() for n in range(DAYS)]
    total = site.mix(FILTERS["from"], FILTERS["to"])
    per_day = {day: site.mix(day, day) for day in days}
    shown = {row["key"]: row for row in browser.execute_script(MIX_TABLE)}
    assert list(shown) == [r["key"] for r in total["rows"]] + ["*"]
    for r in total["rows"]:
        row = shown[r["key"]]
        assert row["cells"]["total"] == str(r["count"])
        assert row["percentage"] == half_up(r["percentage"]) + "%"
        assert row["revenue"] == r["revenue"]
        for day in days:
            (api_row,) = [x for x in per_day[day]["rows"] if x["key"] == r["key"]]
            assert row["cells"][day] == str(api_row["count"]), (r["key"], day)
    assert shown["*"]["cells"] == {"total": str(total["total"]), **{d: str(per_day[d]["total"]) for d in days}}
    assert total["total"] > 40 and sum(per_day[d]["total"] for d in days) == total["total"]
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart rect.bar")
    assert len(bars) == sum(1 for d in days for r in per_day[d]["rows"] if r["count"] > 0)

    # the rates cards: the API's rates for the 30 days ending on To
    rates = site.report("rates", project_id="p1", rolling_30_days_ending=FILTERS["to"], as_defined="then")["rates"]
    cards = {e.get_attribute("data-card"): e.text.split("\n") for e in browser.find_elements(By.CSS_SELECTOR, ".card")}
    assert cards["total"][1] == str(total["total"])
    for name, num, den in (
        ("contact_rate", "contact_calls", "live_answered"),
        ("success_rate", "success_calls", "contact_calls"),
        ("abandoned_rate", "abandoned_calls", "live_answered"),
    ):
        assert cards[name][1:] == [half_up(100 * rates[name]) + "%", f"{rates[num]} / {rates[den]}"], name
    assert cards["revenue"][1] == rates["revenue"]

    # drill-down: a day's SALE count opens the history behind it, as the API pages it
    busiest = max(days, key=lambda d: next(r["count"] for r in per_day[d]["rows"] if r["key"] == "SALE"))
    browser.find_element(By.CSS_SELECTOR, f'tr[data-key="SALE"] td[data-bucket="{busiest}"] button').click()
    assert wait_for(browser, "#drill") == "ready"
    history = site.report(
        "history", project="p1", outcome="SALE", interaction="call", date_from=busiest, date_to=busiest, limit=50
    )
    rows = browser.execute_script(DRILL_ROWS)
    assert [r["id"] for r in rows] == [f"{h['kind']}:{h['id']}" for h in history["rows"]]
    assert [r["fields"]["outcome"] for r in rows] == [h["outcome"] for h in history["rows"]]
    assert len(rows) >= 1
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # the page's height at the new width
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1360, height + 140)  # the window's height includes its frame
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(SCREENSHOT))

    # ... and "sample" draws a QA sample: the API's draw for the seed the page shows
    browser.find_element(By.CSS_SELECTOR, '[data-sample="SALE"]').click()
    assert wait_for(browser, "#drill") == "ready"
    seed = browser.find_element(By.ID, "drill").get_attribute("data-seed")
    period = {"date_from": FILTERS["from"], "date_to": FILTERS["to"]}
    drawn = site.report("sample", outcome_code="SALE", n=10, seed=seed, **period)
    rows = browser.execute_script(DRILL_ROWS)
    assert [r["id"] for r in rows] == [f"{h['kind']}:{h['id']}" for h in drawn["sample"]["rows"]]
    assert [r["fields"]["references"] for r in rows] == [
        ", ".join(f"{x['kind']}: {x['reference']}" for x in h["references"]) for h in drawn["sample"]["rows"]
    ]
    assert f"of {drawn['sample']['population']} interactions" in browser.find_element(By.ID, "drill-note").text

    # offline: everything the page loaded came from the service, and nothing failed
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(site.base + "/") for url in loaded), loaded
    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
    assert problems == []


def test_the_form_shows_weeks_and_categories_as_defined_now(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{site.base}/dashboard#key={site.secret}")
    assert wait_for(browser, "body") == "ready", browser.find_element(By.ID, "error").text
    # over 45 days: one column per ISO week, cut to the range; rows by category as defined now
    wanted = {"project": "p1", "from": "2026-10-01", "to": "2026-12-15", "group": "category", "as_defined": "now"}
    browser.execute_script(
        "const form = document.getElementById('filters');"
        "for (const [name, value] of Object.entries(arguments[0])) form.elements[name].value = value;"
        "document.body.dataset.state = 'submitted'; form.requestSubmit();",
        wanted,
    )
    assert wait_for(browser, "body") == "ready", browser.find_element(By.ID, "error").text
    assert "group=category" in browser.current_url and "as_defined=now" in browser.current_url

    query = {"interaction": "call", "project": "p1", "date_from": wanted["from"], "date_to": wanted["to"]}
    weeks = site.report("outcome-mix", group_by="week", **query)
    labels = {
        e.get_attribute("data-bucket"): e.text for e in browser.find_elements(By.CSS_SELECTOR, "#mix thead button")
    }
    # 2026-10-01 is a Thursday, 2026-12-15 a Tuesday: both weeks cut to the range
    assert len(labels) == 12 and labels["2026-10-01"] == "2026-W40" and labels["2026-12-14"] == "2026-W51"
    shown = {row["key"]: row for row in browser.execute_script(MIX_TABLE)}
    per_week = {labels[day]: int(count) for day, count in shown["*"]["cells"].items() if day != "total"}
    assert {k: v for k, v in per_week.items() if v} == {r["key"]: r["count"] for r in weeks["rows"] if r["count"]}

    categories = site.report("outcome-mix", group_by="category", as_defined="now", **query)
    assert {k: row["cells"]["total"] for k, row in shown.items() if k != "*"} == {
        r["key"]: str(r["count"]) for r in categories["rows"]
    }
    assert shown["*"]["cells"]["total"] == str(categories["total"])
