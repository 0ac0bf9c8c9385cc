"""QA verdicts (PRODUCT.md §4): the rules, the report's arithmetic on hand-built records,
and the endpoints through the real ASGI app against hand-computed agreement and confusion;
the interactions view rebuilt from 0 gives the same report. On random valid histories with
random verdicts the report equals the oracle's (tests/report_oracle.qa) for every project and
period (``QA_EXAMPLES=100`` runs more examples)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient

from events.codec import StructMapper, SubjectKeys
from projections.interactions import InteractionsView, Record, Selection, Verdict
from projections.qa import compute, qa_report
from services.api.app import create_app
from services.errors import InvalidVerdict, NothingToReview, OutcomeNotInProject
from services.ledger import Ledger
from services.rules import Context
from services.rules.interactions import Choice
from services.runtime import Runtime
from tests import report_oracle
from tests.helpers import new_runtime, seed_project
from tests.history_strategies import PROJECTS, TZ, HistoryPlan, histories, new_tenant, play, tenant_events
from tests.test_rates import interactions_view
from workers.projections import ProjectionRunner

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- the rules, through the ledger (real Redis) ------------------------------------------------------------


@pytest.fixture()
def ledger(redis_url: str, shard: str) -> Iterator[tuple[Ledger, str]]:
    runtime = new_runtime(redis_url, shard)
    seed_project(runtime, "acme", ("SALE", "NO_SALE", "CALLBACK"))
    try:
        yield runtime.ledger("acme"), "winter"
    finally:
        runtime.close()


def _call_with(ledger: Ledger, project: str, call_id: str, code: str | None) -> None:
    agent = Context("acme", "agent:anna", datetime.now(UTC))
    ledger.start_call(agent, call_id=call_id, project_id=project, direction="outbound", occurred_at=at(0))
    ledger.end_call(agent, call_id=call_id, occurred_at=at(60))
    if code is not None:
        ledger.select_call_outcome(agent, call_id=call_id, choice=Choice(code, at(65)))


def test_verdict_rules(ledger: tuple[Ledger, str]) -> None:
    led, project = ledger
    reviewer = Context("acme", "reviewer:r1", datetime.now(UTC))
    _call_with(led, project, "bare", None)
    with pytest.raises(NothingToReview, match="no outcome to review"):
        led.record_verdict(reviewer, "call", "bare", verdict="confirmed")
    _call_with(led, project, "sold", "SALE")
    with pytest.raises(InvalidVerdict, match="confirmed verdict names no"):
        led.record_verdict(reviewer, "call", "sold", verdict="confirmed", should_have_been="NO_SALE")
    with pytest.raises(InvalidVerdict, match="should_have_been"):
        led.record_verdict(reviewer, "call", "sold", verdict="disputed")
    with pytest.raises(InvalidVerdict, match="under review"):
        led.record_verdict(reviewer, "call", "sold", verdict="disputed", should_have_been="SALE")
    with pytest.raises(OutcomeNotInProject, match="'NOPE' is not in the active outcome set"):
        led.record_verdict(reviewer, "call", "sold", verdict="disputed", should_have_been="NOPE")
    receipt = led.record_verdict(reviewer, "call", "sold", verdict="disputed", should_have_been="NO_SALE", note="n")
    assert receipt.events == ("QaVerdictRecorded",) and receipt.version == 4
    # the same reviewer again: a new event (the report keeps the latest); the call's state is unchanged
    again = led.record_verdict(reviewer, "call", "sold", verdict="confirmed")
    assert again.version == 5
    call = led.call("acme", "sold")
    assert call.version == 5 and call.outcome is not None and call.outcome.code == "SALE"


# -- the report's arithmetic, on records ---------------------------------------------------------------------


def _record(n: int, code: str, *verdicts: tuple[str, str | None]) -> Record:
    return Record(
        kind="call",
        id=f"c{n}",
        originator=f"o{n}",
        project="p1",
        channel="voice",
        started_at=T0,
        day="2026-11-22",
        selections=(Selection(code=code, at=T0, actor="agent:anna"),),
        verdicts=tuple(
            Verdict(
                reviewer=f"reviewer:r{i}",
                outcome_code=code,
                verdict="confirmed" if shb is None else "disputed",
                should_have_been=shb,
                at=T0,
            )
            for i, (_, shb) in enumerate(verdicts)
        ),
    )


def test_flags_follow_the_documented_thresholds() -> None:
    ok, dispute = ("confirmed", None), ("disputed", "B")
    # A: 5 reviews, 2 confirmed (40% < 80%) -> disputed; 3 disputes away > 2 x the 1 into it -> overused
    # B: disputed into A once and A into B: unclear both ways
    records = [_record(n, "A", ok) for n in range(2)] + [_record(n, "A", dispute) for n in (2, 3, 4)]
    records.append(_record(5, "B", ("disputed", "A")))
    found = {r.outcome: r for r in compute(records).outcomes}
    assert found["A"].flags == ["disputed", "overused", "unclear"] and found["A"].unclear_with == ["B"]
    assert found["B"].flags == ["unclear"] and found["B"].agreement_rate == 0.0
    # four reviews are too few to call an outcome disputed or overused
    fewer = compute(records[1:5]).outcomes
    assert [(r.outcome, r.flags) for r in fewer] == [("A", []), ("B", [])]
    # 4 of 5 confirmed is 80%: not disputed
    at_threshold = compute([_record(n, "A", ok) for n in range(4)] + [_record(4, "A", dispute)]).outcomes
    assert at_threshold[0].agreement_rate == 0.8 and at_threshold[0].flags == []


# -- through the ASGI app ----------------------------------------------------------------------------------


class Api:
    def __init__(self, client: TestClient[Any], headers: dict[str, dict[str, str]]) -> None:
        self.client, self.headers = client, headers

    def post(self, who: str, path: str, body: dict[str, Any]) -> Any:
        r = self.client.post(path, headers=self.headers[who], json=body)
        assert r.status_code in (200, 201), f"{path}: {r.status_code} {r.text}"
        return r.json()

    def report(self, **params: str) -> Any:
        q = {"project_id": "qa-p", "date_from": "2026-11-22", "date_to": "2026-11-23", **params}
        return self.client.get("/v1/reports/qa", headers=self.headers["manager"], params=q)


def _play(api: Api) -> None:
    a = "admin"
    for code in ("SALE", "NO_SALE", "CALLBACK"):
        api.post(a, "/v1/outcomes", {"code": code, "name": code.title().replace("_", " ")})
    api.post(a, "/v1/projects", {"project_id": "qa-p", "name": "Qa", "direction": "outbound"})
    calls = {n: "SALE" for n in range(1, 7)} | {7: "NO_SALE", 8: "NO_SALE", 9: "NO_SALE", 10: "CALLBACK", 11: "SALE"}
    calls[12] = "SALE"  # started three days later: outside the period
    for n, code in calls.items():
        start = T0 + timedelta(days=3 if n == 12 else 0, minutes=n)
        api.post("agent", "/v1/calls", {"call_id": f"c{n}", "project_id": "qa-p", "direction": "outbound",
                                        "occurred_at": start.isoformat()})  # fmt: skip
        api.post("agent", f"/v1/calls/c{n}/answered", {"occurred_at": (start + timedelta(seconds=5)).isoformat()})
        api.post("agent", f"/v1/calls/c{n}/ended", {"occurred_at": (start + timedelta(seconds=90)).isoformat()})
        selected = (start + timedelta(seconds=95)).isoformat()
        api.post("agent", f"/v1/calls/c{n}/outcome", {"outcome_code": code, "occurred_at": selected})
    api.post("agent", "/v1/conversations", {"conversation_id": "v1", "project_id": "qa-p", "channel": "sms",
                                            "occurred_at": at(30).isoformat()})  # fmt: skip
    api.post("agent", "/v1/conversations/v1/outcome", {"outcome_code": "NO_SALE", "occurred_at": at(40).isoformat()})

    def verdict(who: str, n: int, should_have_been: str | None = None) -> None:
        body = {"verdict": "confirmed"} if should_have_been is None else {
            "verdict": "disputed", "should_have_been": should_have_been}  # fmt: skip
        api.post(who, f"/v1/calls/c{n}/verdicts", body)

    for n in (1, 2, 3):
        verdict("reviewer", n)
    verdict("reviewer", 4, "NO_SALE")
    verdict("reviewer", 5, "NO_SALE")
    verdict("reviewer", 6)  # replaced below by the same reviewer's dispute
    verdict("reviewer", 6, "CALLBACK")
    verdict("reviewer", 7, "SALE")
    verdict("reviewer", 8)
    verdict("reviewer", 9)
    verdict("reviewer", 10)
    verdict("supervisor", 10, "NO_SALE")  # a second reviewer on the same call
    verdict("reviewer", 12, "NO_SALE")  # outside the period
    api.post("reviewer", "/v1/conversations/v1/verdicts", {"verdict": "confirmed", "note": "fine"})


@pytest.fixture()
def api(redis_url: str, shard: str) -> Iterator[tuple[Api, Runtime]]:
    runtime = new_runtime(redis_url, shard)
    _, admin = runtime.create_tenant("acme", "Acme", "UTC")
    try:
        with TestClient(create_app(runtime)) as c:
            a = {"Authorization": f"Bearer {admin}"}
            headers = {"admin": a}
            for role in ("platform", "reviewer", "supervisor", "manager", "agent"):
                secret = c.post("/v1/keys", headers=a, json={"role": role}).json()["secret"]
                headers[role] = {"Authorization": f"Bearer {secret}"}
            headers["agent"] = {**headers.pop("platform"), "X-Acting-For": "agent:anna"}
            yield Api(c, headers), runtime
    finally:
        runtime.close()


# hand-computed: SALE 6 reviews (c1-c3 confirmed; c4, c5 -> NO_SALE; c6 -> CALLBACK, its confirmation
# replaced), NO_SALE 4 (c8, c9, v1 confirmed; c7 -> SALE), CALLBACK 2 (c10 confirmed by one, -> NO_SALE by
# another); c11 unreviewed; c12 outside the period
EXPECTED = {
    "SALE": dict(selections=7, reviewed=6, confirmed=3, disputed=3, agreement_rate=0.5, disputed_into=1,
                 flags=["disputed", "overused", "unclear"], unclear_with=["NO_SALE"]),
    "NO_SALE": dict(selections=4, reviewed=4, confirmed=3, disputed=1, agreement_rate=0.75, disputed_into=3,
                    flags=["unclear"], unclear_with=["SALE"]),
    "CALLBACK": dict(selections=1, reviewed=2, confirmed=1, disputed=1, agreement_rate=0.5, disputed_into=1,
                     flags=[], unclear_with=[]),
}  # fmt: skip
PAIRS = [("SALE", "NO_SALE", 2), ("CALLBACK", "NO_SALE", 1), ("NO_SALE", "SALE", 1), ("SALE", "CALLBACK", 1)]


def test_the_qa_report_through_the_api_and_after_a_rebuild(api: tuple[Api, Runtime]) -> None:
    client, runtime = api
    _play(client)
    runner = ProjectionRunner(runtime.settings)
    try:
        runner.settle(runtime.ledger("acme").recorder.max_notification_id() or 0)
    finally:
        runner.client.close()
    r = client.report()
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["reviewed"], body["confirmed"], body["disputed"]) == (12, 7, 5)
    assert body["agreement_rate"] == pytest.approx(7 / 12) and body["position"] > 0
    rows = {row["outcome"]: {k: v for k, v in row.items() if k != "outcome"} for row in body["outcomes"]}
    assert rows == EXPECTED
    assert [(p["outcome"], p["should_have_been"], p["count"]) for p in body["confused_pairs"]] == PAIRS
    # the oracle, from the log alone, agrees -- flags included
    oracle = report_oracle.qa(
        tenant_events(runtime, "acme"), tz="UTC", project="qa-p", date_from=T0.date(), date_to=T0.date() + timedelta(1)
    )
    assert [vars(x) for x in oracle.outcomes] == [
        {"outcome": row["outcome"], **rows[row["outcome"]]} for row in body["outcomes"]
    ]
    assert oracle.confused_pairs == PAIRS and oracle.reviewed == 12

    table = list(csv.DictReader(io.StringIO(client.report(format="csv").text)))
    assert [t["outcome"] for t in table] == ["CALLBACK", "NO_SALE", "SALE"]
    sale = table[2]
    assert (sale["reviewed"], sale["agreement_rate"], sale["flags"]) == ("6", "0.5", "disputed|overused|unclear")
    pairs = list(csv.reader(io.StringIO(client.report(format="csv", table="pairs").text)))
    assert pairs[0] == ["outcome", "should_have_been", "count"] and pairs[1] == ["SALE", "NO_SALE", "2"]
    later = client.report(date_from="2026-11-25", date_to="2026-11-25").json()
    assert [(p["outcome"], p["should_have_been"]) for p in later["confused_pairs"]] == [("SALE", "NO_SALE")]

    # the view rebuilt from 0 gives the same records and the same report
    client_, keys = runtime.client, runtime.shard_keys("acme")
    view = InteractionsView(client_, keys, StructMapper(keys=SubjectKeys(client_, runtime.settings.key_prefix)), 5)
    stored = client_.hgetall(keys.view(view.name) + "i:acme")
    view.drop()
    assert client.report().json()["reviewed"] == 0
    view.catch_up()
    assert client_.hgetall(keys.view(view.name) + "i:acme") == stored
    assert client.report().json() == body


def test_bad_report_parameters_and_who_may_record(api: tuple[Api, Runtime]) -> None:
    client, _ = api
    assert client.report(date_from="2026-11-24", date_to="2026-11-22").status_code == 400
    assert client.report(date_from="2025-01-01", date_to="2026-11-22").status_code == 400
    assert client.client.get("/v1/reports/qa", headers=client.headers["manager"]).status_code == 400
    r = client.client.post("/v1/calls/c1/verdicts", headers=client.headers["manager"], json={"verdict": "confirmed"})
    assert r.status_code == 403 and "may not record QA verdicts" in r.json()["message"]


# -- against the oracle, on random histories --------------------------------------------------------------

#: the whole spread of the histories, one day in the middle (the DST one), and one before them
PERIODS = ((date(2026, 10, 23), date(2026, 10, 31)), (date(2026, 10, 25), date(2026, 10, 25)), (T0.date(), T0.date()))


def _as_oracle(r: Any) -> report_oracle.Qa:
    return report_oracle.Qa(
        outcomes=[report_oracle.QaRow(**msgspec.structs.asdict(o)) for o in r.outcomes],
        confused_pairs=[(p.outcome, p.should_have_been, p.count) for p in r.confused_pairs],
        reviewed=r.reviewed,
        confirmed=r.confirmed,
        agreement_rate=r.agreement_rate,
    )


@settings(
    max_examples=int(os.environ.get("QA_EXAMPLES", "10")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=histories(max_calls=8, max_conversations=4))
def test_the_qa_report_equals_the_oracle_and_a_rebuild_changes_nothing(redis_url: str, plan: HistoryPlan) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        events = tenant_events(d.runtime, d.tenant)
        view = interactions_view(d.runtime, d.tenant, batch_size=7)
        view.catch_up()
        keys, client = view.keys, d.runtime.client

        def reports() -> list[report_oracle.Qa]:
            return [
                _as_oracle(qa_report(client, keys, d.tenant, project=p, date_from=a, date_to=b, position=0))
                for p in PROJECTS
                for a, b in PERIODS
            ]

        found = reports()
        expected = [
            report_oracle.qa(events, tz=TZ, project=p, date_from=a, date_to=b) for p in PROJECTS for a, b in PERIODS
        ]
        assert found == expected
        view.drop()
        interactions_view(d.runtime, d.tenant).catch_up()
        assert reports() == found
    finally:
        d.runtime.close()
