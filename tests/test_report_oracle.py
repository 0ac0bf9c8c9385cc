"""The report oracle (tests/report_oracle.py) and the read models on hand-computed histories,
and the oracle's invariants on random valid histories played through the real Ledger against
real Redis.

Every hand-computed case drives the Ledger's commands and checks the numbers worked out by
hand in the comments twice: from the oracle over the tenant's log read back from the store,
and from the views (outcome mix, interactions) caught up from position 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings

from events.codec import DomainEvent
from events.types import (
    CallEnded,
    CallStarted,
    ConversationClosed,
    OutcomeDefined,
    OutcomeDefinition,
    OutcomeFlags,
    OutcomeSelected,
    ProjectSettings,
    WrapUp,
)
from projections.outcome_mix import outcome_mix as view_mix
from projections.rates import rates as view_rates
from tests.history_strategies import TZ, Driver, HistoryPlan, histories, new_tenant, play, tenant_events
from tests.report_oracle import NO_OUTCOME, GroupBy, Kind, outcome_mix, rates
from tests.test_outcome_mix import mix_view
from tests.test_rates import interactions_view

BUILT_INS = {"BUSY", "NO_ANSWER", "ANSWERING_MACHINE", "FAX_MODEM", "DROPPED", "OPERATOR_INTERCEPT", "WRAP_UP_TIMEOUT"}
HAND = {"SALE", "SALE_BIG", "NO_INTEREST", "CALLBACK", "KEEP_OPEN", "ACCEPTED_LATER", "RESOLVED_BOTH"}


def _definitions() -> list[OutcomeDefinition]:
    both = OutcomeFlags(contact=True, presentation=True)
    return [
        OutcomeDefinition(
            code="SALE",
            name="Sale",
            category="sale",
            flags=OutcomeFlags(
                contact=True, presentation=True, success=True, revenue="optional", first_call_resolution=True
            ),
        ),
        # a sub-outcome without a category of its own: rolls up to its parent's, "sale"
        OutcomeDefinition(
            code="SALE_BIG",
            name="Big sale",
            parent="SALE",
            flags=OutcomeFlags(contact=True, presentation=True, success=True, revenue="required"),
        ),
        OutcomeDefinition(code="NO_INTEREST", name="No interest", category="no_sale", flags=both),
        OutcomeDefinition(code="CALLBACK", name="Callback", category="follow_up", flags=OutcomeFlags(contact=True)),
        OutcomeDefinition(
            code="KEEP_OPEN",
            name="Keep open",
            category="follow_up",
            applies_to=("conversation",),
            keeps_conversation_active=True,
            flags=OutcomeFlags(contact=True),
        ),
        OutcomeDefinition(
            code="ACCEPTED_LATER",
            name="Accepted later",
            category="sale",
            selectable_after_interaction=True,
            flags=OutcomeFlags(success=True, revenue="optional"),
        ),
        OutcomeDefinition(
            code="RESOLVED_BOTH",
            name="Resolved",
            category="service",
            close_conversation_with_call=True,
            flags=OutcomeFlags(contact=True, first_call_resolution=True),
        ),
    ]


@pytest.fixture()
def world(redis_url: str) -> Iterator[Driver]:
    """Tenant in Europe/Helsinki; anna in north, bob in south; p1 outbound (mandatory
    wrap-up), p2 blended (optional wrap-up)."""
    d = new_tenant(redis_url, "acme", TZ)
    for team in ("north", "south"):
        d.team(team)
    for agent, team in (("anna", "north"), ("bob", "south")):
        d.agent(agent)
        d.move(agent, team)
    for definition in _definitions():
        d.define(definition)
    d.project("p1", ProjectSettings(name="Outbound", direction="outbound"))
    d.project("p2", ProjectSettings(name="Inbound", direction="blended", wrap_up=WrapUp(mode="optional")))
    yield d
    d.runtime.close()


class Reports:
    """The reports a hand-computed case checks, read from one source: the oracle over the
    tenant's log, or the read models (outcome mix, interactions) caught up from 0 -- so the
    numbers worked out by hand hold for both."""

    def __init__(self, d: Driver, source: str) -> None:
        self.events = tenant_events(d.runtime, d.tenant)
        self.source, self.client, self.tenant = source, d.runtime.client, d.tenant
        if source == "views":
            self.mix_view, self.interactions = mix_view(d.runtime, d.tenant), interactions_view(d.runtime, d.tenant)
            self.mix_view.catch_up()
            self.interactions.catch_up()

    def mix(self, **q: Any) -> list[Any]:
        if self.source == "oracle":
            return outcome_mix(self.events, tz=TZ, **q)
        now = q.pop("catalogue_now", None)
        if now is not None:
            q["defined_as"] = {key: (x.category, x.parent) for key, x in now.items()}
        q.setdefault("interaction", "call")
        return view_mix(self.client, self.mix_view.keys, self.tenant, **q)

    def rates(self, **q: Any) -> Any:
        if self.source == "oracle":
            return rates(self.events, tz=TZ, **q)
        return view_rates(self.client, self.interactions.keys, self.tenant, **q)


Read = Callable[[Driver], Reports]


@pytest.fixture(params=["oracle", "views"])
def read(request: pytest.FixtureRequest) -> Read:
    source: str = request.param
    return lambda d: Reports(d, source)


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, second, tzinfo=UTC)


def rows(found: list[Any]) -> dict[str, Any]:
    return {r.key: r for r in found}


def counts(found: list[Any]) -> dict[str, int]:
    """The non-zero counts."""
    return {r.key: r.count for r in found if r.count}


def answered_call(
    d: Driver,
    call_id: str,
    at: datetime,
    code: str | None,
    *,
    agent: str = "anna",
    project: str = "p1",
    talk: int = 60,
    wrap: int = 10,
    revenue: Decimal | None = None,
) -> None:
    d.start_call(call_id, project, "outbound", at, agent=agent)
    d.answer(call_id, at + timedelta(seconds=5))
    d.end(call_id, at + timedelta(seconds=5 + talk), "agent_hangup")
    if code is not None:
        d.select(call_id, code, at + timedelta(seconds=5 + talk + wrap), agent=agent, revenue=revenue)


# -- a day across a DST change ----------------------------------------------------------------------


def test_a_day_across_the_end_of_summer_time_is_25_local_hours(world: Driver, read: Read) -> None:
    d = world
    # Helsinki leaves summer time on Sun 2026-10-25 at 04:00 EEST (+3) -> 03:00 EET (+2), 01:00 UTC.
    #   c1 10-24 20:59Z = Sat 23:59 EEST -> 24th   SALE
    #   c2 10-24 21:00Z = Sun 00:00 EEST -> 25th   SALE        (UTC alone would say the 24th)
    #   c3 10-25 00:30Z = Sun 03:30 EEST -> 25th   SALE
    #   c4 10-25 01:30Z = Sun 03:30 EET  -> 25th   NO_INTEREST (the second 03:30 of the day)
    #   c5 10-25 21:59Z = Sun 23:59 EET  -> 25th   ended, no outcome: "-" (a fixed +3 would say the 26th)
    #   c6 10-25 22:00Z = Mon 00:00 EET  -> 26th   CALLBACK
    answered_call(d, "c1", utc(24, 20, 59), "SALE")
    answered_call(d, "c2", utc(24, 21, 0), "SALE")
    answered_call(d, "c3", utc(25, 0, 30), "SALE")
    answered_call(d, "c4", utc(25, 1, 30), "NO_INTEREST")
    d.start_call("c5", "p1", "outbound", utc(25, 21, 59))
    d.unanswered("c5", utc(25, 21, 59, 20), "drop_hang_up")
    d.end("c5", utc(25, 21, 59, 30), "network")
    answered_call(d, "c6", utc(25, 22, 0), "CALLBACK")
    reports = read(d)

    # by day: 24th 1, 25th 4, 26th 1; by ISO week: Sat 24 and Sun 25 in W43, Mon 26 in W44
    assert counts(reports.mix(group_by="day")) == {"2026-10-24": 1, "2026-10-25": 4, "2026-10-26": 1}
    assert counts(reports.mix(group_by="week")) == {"2026-W43": 5, "2026-W44": 1}
    # the 25th alone: SALE 2 of 4 = 50 %, NO_INTEREST 1 = 25 %, "-" 1 = 25 %
    sunday = date(2026, 10, 25)
    mix = rows(reports.mix(date_from=sunday, date_to=sunday))
    assert {k: (r.count, r.percentage) for k, r in mix.items() if r.count} == {
        "SALE": (2, 50.0),
        "NO_INTEREST": (1, 25.0),
        NO_OUTCOME: (1, 25.0),
    }
    # every defined outcome has a row, zero rows included
    assert set(mix) == BUILT_INS | HAND | {NO_OUTCOME}
    assert mix["CALLBACK"].count == 0 and mix["BUSY"].percentage == 0.0
    # in UTC the same log gives 24th: c1 c2; 25th: c3 c4 c5 c6
    assert counts(outcome_mix(reports.events, tz="UTC", group_by="day")) == {"2026-10-24": 2, "2026-10-25": 4}
    # rates of the 25th: live-answered c2 c3 c4 = 3; contact outcomes c2 c3 c4 = 3 -> contact rate 1;
    # presentation 3/3; success c2 c3 = 2/3; abandoned c5 (drop_hang_up, no agent) = 1/3
    r = reports.rates(project="p1", day=sunday)
    assert (r.calls, r.live_answered, r.contact_calls, r.success_calls, r.abandoned_calls) == (4, 3, 3, 2, 1)
    assert r.contact_rate == 1.0 and r.success_rate == pytest.approx(2 / 3) and r.abandoned_rate == pytest.approx(1 / 3)


# -- an agent changing team mid-period -------------------------------------------------------------------


def test_each_selection_is_attributed_to_the_team_of_its_time(world: Driver, read: Read) -> None:
    d = world
    # a1 anna (north) SALE; a2 bob (south) NO_INTEREST; anna moves to south;
    # a3 anna (now south) CALLBACK; a4 anna (south) SALE_BIG 500
    answered_call(d, "a1", utc(26, 8), "SALE", agent="anna")
    answered_call(d, "a2", utc(26, 9), "NO_INTEREST", agent="bob")
    d.move("anna", "south")
    answered_call(d, "a3", utc(26, 10), "CALLBACK", agent="anna")
    answered_call(d, "a4", utc(26, 11), "SALE_BIG", agent="anna", revenue=Decimal(500))
    reports = read(d)

    # by team: north a1 = 1 (25 %); south a2 a3 a4 = 3 (75 %)
    by_team = rows(reports.mix(group_by="team"))
    assert {k: (r.count, r.percentage) for k, r in by_team.items()} == {"north": (1, 25.0), "south": (3, 75.0)}
    assert by_team["south"].revenue == Decimal(500)
    # by agent: anna 3 (a1 a3 a4), bob 1
    assert counts(reports.mix(group_by="agent")) == {"anna": 3, "bob": 1}
    # team south only: NO_INTEREST, CALLBACK, SALE_BIG: one each (a1 stays north's)
    assert counts(reports.mix(team="south")) == {"NO_INTEREST": 1, "CALLBACK": 1, "SALE_BIG": 1}
    # anna's calls by category: SALE and SALE_BIG roll up to "sale" (2), CALLBACK "follow_up" (1)
    assert counts(reports.mix(agent="anna", group_by="category")) == {"sale": 2, "follow_up": 1}


# -- a correction after close --------------------------------------------------------------------------


def test_a_correction_after_close_replaces_the_outcome_and_is_counted_once(world: Driver, read: Read) -> None:
    d = world
    # k1: NO_INTEREST by anna at the end of the call (10-26); a supervisor corrects it two days
    # later (10-28) to SALE with 120. k2: SALE by bob, 80, not corrected.
    answered_call(d, "k1", utc(26, 8), "NO_INTEREST", agent="anna")
    answered_call(d, "k2", utc(26, 9), "SALE", agent="bob", revenue=Decimal(80))
    d.correct("k1", "SALE", utc(28, 12), Decimal(120))
    # a call closing its conversation with RESOLVED_BOTH, corrected later to SALE: the
    # conversation's outcome is corrected with it (one OutcomeCorrected on each)
    d.start_conversation("v1", "p1", utc(26, 10), channel="voice", contact_id="x1")
    d.start_call("k3", "p1", "outbound", utc(26, 10, 1), agent="anna", conversation_id="v1")
    d.answer("k3", utc(26, 10, 1, 5))
    d.end("k3", utc(26, 10, 3))
    d.select("k3", "RESOLVED_BOTH", utc(26, 10, 4), agent="anna")
    d.correct("k3", "SALE", utc(27, 9))
    reports = read(d)

    # calls: SALE 3 (k1 corrected, k2, k3 corrected), NO_INTEREST 0, RESOLVED_BOTH 0; 3 calls in all
    mix = rows(reports.mix())
    assert counts(list(mix.values())) == {"SALE": 3}
    sale = mix["SALE"]
    # all three first selected by an agent; two corrected; revenue 120 + 80 + none = 200
    assert (sale.percentage, sale.agent_selections, sale.system_selections, sale.corrected) == (100.0, 3, 0, 2)
    assert sale.revenue == Decimal(200)
    assert mix["NO_INTEREST"].count == 0
    # the corrected call stays on the day it happened (26th), not the day of the correction
    assert counts(reports.mix(group_by="day")) == {"2026-10-26": 3}
    # the corrected call stays anna's (north): north k1 k3 = 2, south k2 = 1
    assert counts(reports.mix(group_by="team")) == {"north": 2, "south": 1}
    # the conversation follows its call's correction: SALE 1
    assert counts(reports.mix(interaction="conversation")) == {"SALE": 1}
    # rates: 3 live-answered, all contact, all success; revenue 200
    r = reports.rates(project="p1", day=date(2026, 10, 26))
    assert (r.live_answered, r.contact_calls, r.success_calls, r.revenue) == (3, 3, 3, Decimal(200))


def test_reports_as_defined_then_and_as_defined_now(world: Driver, read: Read) -> None:
    d = world
    # two SALE calls; then SALE is redefined: category "won", no longer a success
    answered_call(d, "s1", utc(26, 8), "SALE", revenue=Decimal(10))
    answered_call(d, "s2", utc(26, 9), "SALE_BIG", revenue=Decimal(30))
    [sale] = [x for x in _definitions() if x.code == "SALE"]
    d.change(
        OutcomeDefinition(
            code="SALE", name="Sale", category="won", flags=OutcomeFlags(contact=True, revenue="optional")
        )
    )
    reports = read(d)
    # then: both roll up to "sale" (SALE_BIG's parent was SALE in category "sale"); now: both "won"
    assert counts(reports.mix(group_by="category")) == {"sale": 2}
    assert counts(reports.mix(group_by="category", as_defined="now")) == {"won": 2}
    # against a previous known-good definition set: the original SALE
    catalogue: dict[tuple[str | None, str], OutcomeDefinition] = {(None, "SALE"): sale}
    # (SALE_BIG is not in that set: its own definition, whose parent SALE is "sale" there)
    assert counts(reports.mix(group_by="category", as_defined="now", catalogue_now=catalogue)) == {"sale": 2}
    # success: then s1 and s2 = 2 of 2 contacts; now SALE is no success: only s2 = 1 of 2
    day = date(2026, 10, 26)
    assert reports.rates(project="p1", day=day).success_calls == 2
    assert reports.rates(project="p1", day=day, as_defined="now").success_calls == 1


# -- a late recording and a late business result ---------------------------------------------------------


def test_a_late_recording_and_a_late_business_result_leave_the_call_counted_once_on_its_day(
    world: Driver, read: Read
) -> None:
    d = world
    # r1 on 10-24 (local) with NO_INTEREST; its recording arrives on 10-27 and a business
    # result ACCEPTED_LATER with 250 on 10-25. r2 on 10-24 with CALLBACK, no recording.
    answered_call(d, "r1", utc(24, 9), "NO_INTEREST")
    answered_call(d, "r2", utc(24, 10), "CALLBACK")
    d.select("r1", "ACCEPTED_LATER", utc(25, 9), agent="anna", revenue=Decimal(250))
    d.attach_call("r1", utc(27, 15))
    reports = read(d)

    # the mix: r1 stays NO_INTEREST (a call gets one outcome; the late result does not replace
    # it), r2 CALLBACK; both on the 24th; nothing on the 25th or the 27th
    assert counts(reports.mix()) == {"NO_INTEREST": 1, "CALLBACK": 1}
    assert counts(reports.mix(group_by="day")) == {"2026-10-24": 2}
    assert counts(reports.mix(date_from=date(2026, 10, 25), date_to=date(2026, 10, 31))) == {}
    # rates of the 24th: 2 live-answered, 2 contact (NO_INTEREST, CALLBACK); success: r1 through its
    # late result = 1 of 2; revenue = 250 (sum over selections)
    r = reports.rates(project="p1", day=date(2026, 10, 24))
    assert (r.live_answered, r.contact_calls, r.success_calls, r.revenue) == (2, 2, 1, Decimal(250))
    assert r.success_rate == 0.5


# -- a conversation kept active with several outcomes ----------------------------------------------------


def test_only_the_closing_outcome_of_a_kept_active_conversation_counts(world: Driver, read: Read) -> None:
    d = world
    # m1: KEEP_OPEN (anna), KEEP_OPEN (bob), SALE 40 (anna) -> closed by the SALE
    # m2: KEEP_OPEN (bob), then the Close button -> closed with KEEP_OPEN
    # m3: KEEP_OPEN, still open -> not in the mix yet
    # m4: Close button with no outcome (wrap-up optional in p2) -> "-"
    for conversation_id in ("m1", "m2", "m3", "m4"):
        d.start_conversation(conversation_id, "p2", utc(26, 8), channel="chat")
    d.select_conversation("m1", "KEEP_OPEN", utc(26, 8, 5), agent="anna")
    d.select_conversation("m1", "KEEP_OPEN", utc(26, 8, 10), agent="bob")
    d.select_conversation("m1", "SALE", utc(26, 8, 20), agent="anna", revenue=Decimal(40))
    d.select_conversation("m2", "KEEP_OPEN", utc(26, 8, 5), agent="bob")
    d.close("m2", utc(26, 8, 30), agent="bob")
    d.select_conversation("m3", "KEEP_OPEN", utc(26, 8, 5), agent="anna")
    d.close("m4", utc(26, 8, 30))
    reports = read(d)
    assert sum(isinstance(e, OutcomeSelected) for e in reports.events) == 5  # the history shows all

    # m1 SALE, m2 KEEP_OPEN, m4 "-": three conversations, a third each
    mix = rows(reports.mix(interaction="conversation"))
    assert counts(list(mix.values())) == {"SALE": 1, "KEEP_OPEN": 1, NO_OUTCOME: 1}
    assert mix["SALE"].percentage == pytest.approx(100 / 3)
    assert mix["SALE"].revenue == Decimal(40)
    # attributed to the agent of the closing outcome: m1 anna, m2 bob, m4 none
    assert counts(reports.mix(interaction="conversation", group_by="agent")) == {
        "anna": 1,
        "bob": 1,
        NO_OUTCOME: 1,
    }
    # and the call mix is empty
    assert counts(reports.mix()) == {}
    # a correction of m1 replaces the closing outcome only
    d.correct_conversation("m1", "CALLBACK", utc(27, 9))
    reports = read(d)
    assert counts(reports.mix(interaction="conversation")) == {
        "CALLBACK": 1,
        "KEEP_OPEN": 1,
        NO_OUTCOME: 1,
    }


# -- the rates, by hand --------------------------------------------------------------------------------


def test_rates_for_a_project_day_and_over_30_days(world: Driver, read: Read) -> None:
    d = world
    # p1 on Mon 10-26 (local):
    #   r1 answered, talk 300 s, SALE 150 selected 60 s after the end     (contact, presentation, success)
    #   r2 answered, talk 120 s, NO_INTEREST 30 s after the end           (contact, presentation)
    #   r3 answered, talk 60 s, CALLBACK selected 10 s *before* the end   (contact; wrap-up 0)
    #   r4 drop_hang_up, no agent, DROPPED by the system                  (abandoned)
    #   r5 drop_hang_up on a call an agent dialled (agent on the start)   (not abandoned)
    #   r6 no_answer, NO_ANSWER by the system
    answered_call(d, "r1", utc(26, 8), "SALE", talk=300, wrap=60, revenue=Decimal(150))
    answered_call(d, "r2", utc(26, 9), "NO_INTEREST", talk=120, wrap=30)
    d.start_call("r3", "p1", "outbound", utc(26, 10), agent="bob")
    d.answer("r3", utc(26, 10, 0, 5))
    d.select("r3", "CALLBACK", utc(26, 10, 0, 55), agent="bob")
    d.end("r3", utc(26, 10, 1, 5))
    for call_id, agent, status, code in (
        ("r4", None, "drop_hang_up", "DROPPED"),
        ("r5", "anna", "drop_hang_up", "DROPPED"),
        ("r6", None, "no_answer", "NO_ANSWER"),
    ):
        d.start_call(call_id, "p1", "outbound", utc(26, 11), agent=agent)
        d.unanswered(call_id, utc(26, 11, 0, 20), status)
        d.end(call_id, utc(26, 11, 0, 21))
        d.select(call_id, code, utc(26, 11, 0, 22))
    # a p2 call the same day is another project's
    answered_call(d, "other", utc(26, 12), "SALE", project="p2", revenue=Decimal(999))
    # conversations in p2 for first-call resolution (FCR outcomes: SALE, RESOLVED_BOTH):
    #   f1 contact x1, SALE, closed 10-26  -> x1 starts f4 on 10-29, within 7 days: not resolved
    #   f2 contact x2, SALE, closed 10-26  -> resolved
    #   f3 contact x3, NO_INTEREST, closed 10-26 -> not an FCR outcome
    #   f4 contact x1, CALLBACK, 10-29
    #   f5 contact x2, SALE in p1 on 10-28 -> another project: does not undo f2
    for conversation_id, contact, code, when, project in (
        ("f1", "x1", "SALE", utc(26, 13), "p2"),
        ("f2", "x2", "SALE", utc(26, 13), "p2"),
        ("f3", "x3", "NO_INTEREST", utc(26, 13), "p2"),
        ("f4", "x1", "CALLBACK", utc(29, 13), "p2"),
        ("f5", "x2", "SALE", utc(28, 13), "p1"),
    ):
        d.start_conversation(conversation_id, project, when, contact_id=contact)
        d.select_conversation(conversation_id, code, when + timedelta(minutes=5), agent="anna")
    reports = read(d)

    monday = date(2026, 10, 26)
    r = reports.rates(project="p1", day=monday)
    # live-answered r1 r2 r3 = 3; contact r1 r2 r3 = 3 -> 3/3; presentation r1 r2 -> 2/3;
    # success r1 -> 1/3; abandoned r4 -> 1/3; revenue 150
    assert (r.calls, r.live_answered, r.contact_calls, r.presentation_calls, r.success_calls) == (6, 3, 3, 2, 1)
    assert r.contact_rate == 1.0
    assert r.presentation_rate == pytest.approx(2 / 3)
    assert r.success_rate == pytest.approx(1 / 3)
    assert r.abandoned_calls == 1 and r.abandoned_rate == pytest.approx(1 / 3)
    assert r.revenue == Decimal(150)
    # handle = talk + wrap-up: (300 + 60) + (120 + 30) + (60 + 0) = 570 over 3 = 190 s;
    # wrap-up (60 + 30 + 0) / 3 = 30 s
    assert r.average_handle_seconds == pytest.approx(190.0)
    assert r.average_wrap_up_seconds == pytest.approx(30.0)
    # p1 has no conversations on the 26th
    assert (r.closed_conversations, r.first_call_resolution) == (0, None)
    # p2 on the 26th: f1 f2 f3 closed; only f2 resolved -> 1/3
    p2 = reports.rates(project="p2", day=monday)
    assert (p2.closed_conversations, p2.fcr_conversations) == (3, 1)
    assert p2.revenue == Decimal(999)
    # 30 days ending 10-29: f4 joins (CALLBACK, no FCR) -> 1/4; calls of p2: 1
    rolling = reports.rates(project="p2", rolling_30_days_ending=date(2026, 10, 29))
    assert (rolling.closed_conversations, rolling.fcr_conversations, rolling.calls) == (4, 1, 1)
    # the 30 days ending 10-25 hold none of it; those ending 11-24 start on 10-26
    assert reports.rates(project="p1", rolling_30_days_ending=date(2026, 10, 25)).calls == 0
    assert reports.rates(project="p1", rolling_30_days_ending=date(2026, 11, 24)).calls == 6
    assert reports.rates(project="p1", rolling_30_days_ending=date(2026, 11, 25)).calls == 0


# -- invariants on random valid histories ------------------------------------------------------------------


def _interactions_in_log(events: list[DomainEvent], kind: str) -> set[str]:
    """Counted interactions, straight from the log: calls that ended or got an outcome,
    conversations that closed."""
    if kind == "call":
        started = {e.call_id for e in events if isinstance(e, CallStarted)}
        done = {e.call_id for e in events if isinstance(e, CallEnded)}
        done |= {e.interaction_id for e in events if isinstance(e, OutcomeSelected) and e.interaction == "call"}
        return started & done
    return {e.conversation_id for e in events if isinstance(e, ConversationClosed)}


GROUPS: tuple[GroupBy, ...] = ("outcome", "category", "agent", "team", "project", "day", "week")
KINDS: tuple[Kind, ...] = ("call", "conversation")
AS_DEFINED: tuple[Literal["then", "now"], ...] = ("then", "now")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=histories(max_calls=8, max_conversations=4))
def test_the_oracle_invariants_hold_on_random_valid_histories(redis_url: str, plan: HistoryPlan) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        events = tenant_events(d.runtime, d.tenant)
    finally:
        d.runtime.close()
    defined = {e.definition.code for e in events if isinstance(e, OutcomeDefined)}
    for kind in KINDS:
        expected = len(_interactions_in_log(events, kind))
        by_outcome = outcome_mix(events, tz=TZ, interaction=kind)
        # every defined outcome has a row, and "-"
        assert {r.key for r in by_outcome} >= defined | {NO_OUTCOME}
        for group_by in GROUPS:
            for as_defined in AS_DEFINED:
                found = outcome_mix(events, tz=TZ, interaction=kind, group_by=group_by, as_defined=as_defined)
                # each interaction in range counted exactly once, whatever the grouping
                assert sum(r.count for r in found) == expected, (kind, group_by)
                if expected:
                    assert sum(r.percentage for r in found) == pytest.approx(100.0)
                for r in found:
                    assert r.agent_selections + r.system_selections <= r.count
                    assert r.corrected <= r.count
        # the selections that stand: one per counted interaction with an outcome
        assert sum(r.agent_selections + r.system_selections for r in by_outcome) == expected - next(
            r.count for r in by_outcome if r.key == NO_OUTCOME
        )
        # filters partition the report
        per_project = [outcome_mix(events, tz=TZ, interaction=kind, project=p) for p in ("p1", "p2")]
        assert sum(r.count for found in per_project for r in found) == expected
        days = [date(2026, 10, 24) + timedelta(days=n) for n in range(6)]
        per_day = [
            sum(r.count for r in outcome_mix(events, tz=TZ, interaction=kind, date_from=x, date_to=x)) for x in days
        ]
        assert sum(per_day) == expected
        assert sum(r.revenue for r in by_outcome) == sum(
            r.revenue for r in outcome_mix(events, tz=TZ, interaction=kind, group_by="team")
        )
    # rates: the days of the history add up to the 30 days that hold them all
    for project in ("p1", "p2"):
        whole = rates(events, tz=TZ, project=project, rolling_30_days_ending=date(2026, 10, 31))
        daily = [rates(events, tz=TZ, project=project, day=date(2026, 10, 24) + timedelta(days=n)) for n in range(6)]
        for name in ("calls", "live_answered", "contact_calls", "success_calls", "abandoned_calls", "revenue"):
            assert getattr(whole, name) == sum(getattr(x, name) for x in daily), name
        assert whole.fcr_conversations <= whole.closed_conversations
        assert whole.abandoned_calls <= whole.calls and whole.live_answered <= whole.calls
        for x in (whole, *daily):
            for rate in (x.abandoned_rate, x.first_call_resolution):
                assert rate is None or rate >= 0.0
