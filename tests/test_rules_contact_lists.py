"""Contact-list rules and dialability with plain values, hand-computed (PRODUCT.md §1, §3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec

from events.types import (
    CallingHours,
    ContactFinalised,
    ContactHandling,
    DoNotCallAdded,
    DoNotCallSpec,
    FinalSpec,
    OutcomeDefinition,
    OutcomeSelected,
    ProjectSettings,
    RecallScheduled,
    RecallSpec,
    WaitingPeriodSpec,
    WaitingPeriodStarted,
)
from services.dialing import DialingView, project_dialing
from services.interactions import Contact
from services.rules import Context
from services.rules.contact_lists import Target, dialing_id, list_id, plan, recall_due
from services.rules.dialability import dialability, next_callable

T = "t"
HELSINKI = "Europe/Helsinki"
# Sunday 2026-03-29: Helsinki goes from UTC+2 to UTC+3 at 03:00 local (01:00 UTC)
HOURS = CallingHours(start="09:00", end="17:00", weekdays=(0, 1, 2, 3, 4))
PROJECT = ProjectSettings(name="P", direction="outbound", calling_hours=HOURS)
CTX = Context(T, "system", datetime(2026, 1, 1, tzinfo=UTC))
CONTACT = Contact(id=UUID(int=9), version=1, tenant_id=T, contact_id="c1", numbers=("+3584011",), time_zone=HELSINKI)


def selection(handling: ContactHandling, at: datetime, code: str = "X", version: int = 3) -> OutcomeSelected:
    return OutcomeSelected(
        originator_id=UUID(int=1),
        originator_version=version,
        recorded_at=at,
        tenant_id=T,
        actor="agent:anna",
        occurred_at=at,
        interaction="call",
        interaction_id="k",
        project_id="p",
        outcome_code=code,
        outcome_set_version=1,
        definition=OutcomeDefinition(code=code, name=code, contact_handling=handling),
        agent_id="anna",
    )


def target(**kw: object) -> Target:
    fields: dict[str, object] = {"contact_id": "c1", "project": PROJECT, "contact": CONTACT, "agent_id": "anna"}
    return Target(**(fields | kw))  # type: ignore[arg-type]


def test_next_callable_across_the_dst_change_keeps_the_local_opening_hour() -> None:
    # Friday 2026-03-27 18:00 Helsinki (UTC+2) = 16:00 UTC: closed; the weekend is closed;
    # Monday 2026-03-30 09:00 local is now UTC+3 = 06:00 UTC (07:00 UTC before the change)
    friday_evening = datetime(2026, 3, 27, 16, 0, tzinfo=UTC)
    assert next_callable(friday_evening, HOURS, HELSINKI) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    # inside the window: now
    monday_noon = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)  # 12:00 local
    assert next_callable(monday_noon, HOURS, HELSINKI) == monday_noon
    assert next_callable(monday_noon, None, HELSINKI) == monday_noon


def test_a_window_past_midnight() -> None:
    night = CallingHours(start="22:00", end="02:00", weekdays=(0,))
    # Monday 23:30 UTC and Tuesday 01:00 UTC are inside Monday's window; Tuesday 03:00 is not
    assert next_callable(datetime(2026, 3, 30, 23, 30, tzinfo=UTC), night, "UTC") == datetime(
        2026, 3, 30, 23, 30, tzinfo=UTC
    )
    assert next_callable(datetime(2026, 3, 31, 1, 0, tzinfo=UTC), night, "UTC") == datetime(
        2026, 3, 31, 1, 0, tzinfo=UTC
    )
    assert next_callable(datetime(2026, 3, 31, 3, 0, tzinfo=UTC), night, "UTC") == datetime(
        2026, 4, 6, 22, 0, tzinfo=UTC
    )


def test_a_recall_a_day_later_across_dst_keeps_the_local_time_of_day() -> None:
    # Saturday 2026-03-28 08:00 UTC = 10:00 local (UTC+2); +2 days -> Monday 10:00 local = 07:00 UTC
    spec = RecallSpec(delay_seconds=2 * 86_400)
    saturday = datetime(2026, 3, 28, 8, 0, tzinfo=UTC)
    assert recall_due(saturday, spec, PROJECT, HELSINKI) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    # +1 day = Sunday: closed, so the next window, Monday 09:00 local = 06:00 UTC
    assert recall_due(saturday, RecallSpec(delay_seconds=86_400), PROJECT, HELSINKI) == datetime(
        2026, 3, 30, 6, 0, tzinfo=UTC
    )
    # hours are elapsed time: Monday 12:00 local (09:00 UTC) + 2 h = 11:00 UTC, inside the window
    monday = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    assert recall_due(monday, RecallSpec(delay_seconds=7_200), PROJECT, HELSINKI) == datetime(
        2026, 3, 30, 11, 0, tzinfo=UTC
    )


def test_plan_names_the_selection_and_numbers_versions_per_aggregate() -> None:
    at = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)  # Monday 12:00 local
    handling = ContactHandling(
        final=FinalSpec(scope="all", whole_company=True),
        do_not_call=DoNotCallSpec(numbers="this", scope="tenant"),
        recall=RecallSpec(delay_seconds=3_600, owner="agent", handover_after_seconds=1_800, max_attempts=2),
        waiting_period=WaitingPeriodSpec(seconds=600, repeat_seconds=6_000),
    )
    contact = Contact(id=UUID(int=9), version=1, tenant_id=T, contact_id="c1", time_zone=HELSINKI, company_id="acme")
    events = plan(selection(handling, at), target(contact=contact, number="+3584099"), CTX)
    assert [type(e).__name__ for e in events] == [
        "ContactFinalised",
        "ContactFinalised",
        "DoNotCallAdded",
        "RecallScheduled",
        "WaitingPeriodStarted",
    ]
    assert {e.source for e in events} == {f"{UUID(int=1)}/3"}  # type: ignore[attr-defined]
    record = dialing_id(T, "c1")
    own = [e for e in events if e.originator_id == record]
    assert [e.originator_version for e in own] == [1, 2, 3, 4]
    company = events[1]
    assert isinstance(company, ContactFinalised) and company.originator_id != record and company.company_id == "acme"
    dnc = events[2]
    assert isinstance(dnc, DoNotCallAdded) and (dnc.number, dnc.all_numbers, dnc.scope) == ("+3584099", False, "tenant")
    recall = events[3]
    assert isinstance(recall, RecallScheduled)
    assert recall.due_at == at + timedelta(hours=1) and recall.handover_at == at + timedelta(hours=1, minutes=30)
    assert (recall.owner_agent, recall.max_attempts, recall.time_zone) == ("anna", 2, HELSINKI)
    waiting = events[4]
    assert isinstance(waiting, WaitingPeriodStarted) and waiting.until == at + timedelta(minutes=10)


def test_the_same_outcome_again_starts_the_longer_waiting_period() -> None:
    at = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    handling = ContactHandling(waiting_period=WaitingPeriodSpec(seconds=600, repeat_seconds=6_000))
    first = plan(selection(handling, at), target(), CTX)
    record = project_dialing(None, first)
    again = plan(selection(handling, at + timedelta(hours=1), version=5), target(record=record), CTX)
    assert isinstance(again[0], WaitingPeriodStarted)
    assert again[0].repeated and again[0].until == at + timedelta(hours=1, seconds=6_000)
    assert again[0].originator_version == 2
    other = plan(selection(handling, at, code="Y"), target(record=record), CTX)[0]
    assert isinstance(other, WaitingPeriodStarted) and not other.repeated


def test_do_not_call_without_a_known_number_covers_all_numbers() -> None:
    at = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    bare = Contact(id=UUID(int=9), version=1, tenant_id=T, contact_id="c1")
    (event,) = plan(selection(ContactHandling(do_not_call=DoNotCallSpec()), at), target(contact=bare), CTX)
    assert isinstance(event, DoNotCallAdded) and event.all_numbers and event.number is None


def view_after(handling: ContactHandling, at: datetime, **kw: object) -> DialingView:
    record = project_dialing(None, plan(selection(handling, at), target(), CTX))
    return DialingView(contact=CONTACT, record=record, **kw)  # type: ignore[arg-type]


MONDAY_NOON = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)


def test_dialability_reasons() -> None:
    at = MONDAY_NOON
    number = "+3584011"
    dnc = view_after(ContactHandling(do_not_call=DoNotCallSpec(numbers="this", scope="project")), at)
    assert dialability(dnc, "p", PROJECT, number, at).reason == "do_not_call"
    assert dialability(dnc, "p", PROJECT, "+3584022", at).allowed  # another number
    assert dialability(dnc, "q", PROJECT, number, at).allowed  # another project
    final = view_after(ContactHandling(final=FinalSpec(scope="project")), at)
    assert dialability(final, "p", PROJECT, number, at, "manual").reason == "final"
    assert dialability(final, "q", PROJECT, number, at).allowed
    reloaded = DialingView(contact=CONTACT, record=final.record, list_reloaded_at=at + timedelta(seconds=1))
    assert dialability(reloaded, "p", PROJECT, number, at).allowed  # the list was reloaded since
    opted = DialingView(contact=msgspec.structs.replace(CONTACT, opted_out=("voice",)))
    assert dialability(opted, "p", PROJECT, number, at).reason == "opted_out"
    texting = DialingView(contact=msgspec.structs.replace(CONTACT, opted_out=("sms",)))
    assert dialability(texting, "p", PROJECT, number, at).allowed


def test_a_waiting_period_stops_the_dialer_only_and_ends_in_calling_hours() -> None:
    at = datetime(2026, 3, 30, 13, 0, tzinfo=UTC)  # Monday 16:00 local
    view = view_after(ContactHandling(waiting_period=WaitingPeriodSpec(seconds=7_200)), at)
    answer = dialability(view, "p", PROJECT, None, at)
    # ends 18:00 local, after hours: Tuesday 09:00 local = 06:00 UTC
    tuesday_opening = datetime(2026, 3, 31, 6, 0, tzinfo=UTC)
    assert (answer.allowed, answer.reason, answer.until) == (False, "waiting_period", tuesday_opening)
    assert dialability(view, "p", PROJECT, None, at, "manual").allowed


def test_recall_owner_and_hand_over() -> None:
    at = MONDAY_NOON
    spec = RecallSpec(delay_seconds=3_600, owner="agent", handover_after_seconds=1_800)
    view = view_after(ContactHandling(recall=spec), at)
    due, handover = at + timedelta(hours=1), at + timedelta(hours=1, minutes=30)
    before = dialability(view, "p", PROJECT, None, at)
    assert (before.reason, before.until) == ("recall_owned", handover)
    assert dialability(view, "p", PROJECT, None, at, "manual", agent_id="anna").allowed
    other = dialability(view, "p", PROJECT, None, due, "manual", agent_id="ben")
    assert (other.allowed, other.reason, other.until) == (False, "recall_owned", handover)
    assert dialability(view, "p", PROJECT, None, handover).allowed  # handed to anyone
    anyone = view_after(ContactHandling(recall=RecallSpec(delay_seconds=3_600)), at)
    pending = dialability(anyone, "p", PROJECT, None, at)
    assert (pending.reason, pending.until) == ("recall_pending", due)
    assert dialability(anyone, "p", PROJECT, None, due).allowed


def test_outside_calling_hours_in_the_contacts_time_zone() -> None:
    sunday = datetime(2026, 3, 29, 9, 0, tzinfo=UTC)
    answer = dialability(DialingView(contact=CONTACT), "p", PROJECT, None, sunday, "manual")
    assert (answer.reason, answer.until) == ("outside_calling_hours", datetime(2026, 3, 30, 6, 0, tzinfo=UTC))


def test_lists_and_rolls_restrict_the_dialer() -> None:
    at = MONDAY_NOON
    listed = ProjectSettings(name="P", direction="outbound", contact_list="spring")
    moved = view_after(ContactHandling(move_to_list="autumn"), at)
    assert dialability(moved, "p", listed, None, at).reason == "not_on_list"
    assert dialability(moved, "p", listed, None, at, "manual").allowed
    rolled = view_after(ContactHandling(roll_to_project="q"), at)
    assert dialability(rolled, "p", PROJECT, None, at).reason == "rolled_to_project"
    assert dialability(rolled, "q", PROJECT, None, at).allowed


def test_a_list_reload_is_recorded_on_the_projects_list_and_a_company_final_on_the_company() -> None:
    at = MONDAY_NOON
    listed = ProjectSettings(name="P", direction="outbound", contact_list="spring")
    (reload,) = plan(selection(ContactHandling(list_reload=True), at), target(project=listed), CTX)
    assert reload.originator_id == list_id(T, "spring") and reload.originator_version == 1
    contact = msgspec.structs.replace(CONTACT, company_id="acme")
    handling = ContactHandling(final=FinalSpec(scope="project", whole_company=True))
    own, company = plan(selection(handling, at), target(contact=contact), CTX)
    view = DialingView(contact=contact, company=project_dialing(None, [company]))
    assert dialability(view, "p", PROJECT, None, at).reason == "company_final"
    assert own.originator_id == dialing_id(T, "c1")
