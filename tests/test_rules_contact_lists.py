"""Contact-list rules and dialability with plain values, hand-computed (PRODUCT.md §1, §3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec

from events.types import (
    AttemptsResetReverted,
    CallAttemptCounted,
    CallingHours,
    ContactFinalised,
    ContactHandling,
    ContactListChangeReverted,
    ContactMovedToList,
    DialingEvent,
    DoNotCallAdded,
    DoNotCallLifted,
    DoNotCallSpec,
    FinalLifted,
    FinalSpec,
    OutcomeCorrected,
    OutcomeDefinition,
    OutcomeSelected,
    ProjectSettings,
    RecallCancelled,
    RecallHandedOver,
    RecallScheduled,
    RecallSpec,
    RollToProjectReverted,
    WaitingPeriodLifted,
    WaitingPeriodSpec,
    WaitingPeriodStarted,
)
from services.dialing import DialingView, project_dialing
from services.interactions import Contact
from services.rules import Context, make
from services.rules.contact_lists import Target, dialing_id, hand_over, list_id, plan, recall_due, redrive
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


# -- corrections: what the corrected selection caused, undone -----------------------------------

SELECTION = f"{UUID(int=1)}/3"  # source of selection(..., version=3)
LISTED = msgspec.structs.replace(CONTACT, contact_list="spring")


def correction(
    handling: ContactHandling, at: datetime, *, lift: bool = False, code: str = "Y", version: int = 5
) -> OutcomeCorrected:
    return OutcomeCorrected(
        originator_id=UUID(int=1),
        originator_version=version,
        recorded_at=at,
        tenant_id=T,
        actor="supervisor:sue",
        occurred_at=at,
        interaction="call",
        interaction_id="k",
        project_id="p",
        previous_code="X",
        outcome_code=code,
        outcome_set_version=1,
        definition=OutcomeDefinition(code=code, name=code, contact_handling=handling),
        reason="misheard",
        lift_suppressions=lift,
    )


def counted(attempts: int, version: int) -> CallAttemptCounted:
    """An earlier call to the contact, as the planner records it."""
    at = MONDAY_NOON - timedelta(days=1)
    fields = {"contact_id": "c1", "source": f"call/{version}", "project_id": "p", "occurred_at": at}
    return make(
        CallAttemptCounted, dialing_id(T, "c1"), version, CTX, call_id=f"k{version}", attempts=attempts, **fields
    )


EVERYTHING = ContactHandling(
    reset_attempts=True,
    move_to_list="autumn",
    roll_to_project="q",
    final=FinalSpec(scope="project"),
    do_not_call=DoNotCallSpec(numbers="all"),
    recall=RecallSpec(delay_seconds=3_600, owner="agent", handover_after_seconds=1_800),
    waiting_period=WaitingPeriodSpec(seconds=86_400),
)


def history_after(handling: ContactHandling, *earlier: DialingEvent) -> list[DialingEvent]:
    """Two calls counted, then the selection's effects."""
    record = project_dialing(None, earlier) if earlier else None
    effects = plan(selection(handling, MONDAY_NOON), target(contact=LISTED, record=record), CTX)
    return [*earlier, *effects]  # type: ignore[list-item]


def test_a_correction_to_an_outcome_without_handling_undoes_all_but_the_suppressions() -> None:
    history = history_after(EVERYTHING, counted(1, 1), counted(2, 2))
    record = project_dialing(None, history)
    assert record is not None and record.version == 9 and record.attempts == {"p": 0}
    fix = correction(ContactHandling(), MONDAY_NOON + timedelta(minutes=5))
    undone = redrive(fix, SELECTION, target(contact=LISTED, record=record), history, [], CTX)
    assert [type(e).__name__ for e in undone] == [
        "ContactListChangeReverted",
        "AttemptsResetReverted",
        "RollToProjectReverted",
        "RecallCancelled",
        "WaitingPeriodLifted",
    ]
    assert {e.source for e in undone} == {f"{UUID(int=1)}/5"}  # type: ignore[attr-defined]
    assert {e.replaced for e in undone} == {SELECTION}  # type: ignore[attr-defined]
    record_id = dialing_id(T, "c1")
    # each names the event it undoes: the move was version 4, the reset 3, the roll 5, ...
    assert [e.undoes for e in undone] == [f"{record_id}/{v}" for v in (4, 3, 5, 8, 9)]  # type: ignore[attr-defined]
    assert [e.originator_version for e in undone] == [10, 11, 12, 13, 14]
    reverted = undone[0]
    assert isinstance(reverted, ContactListChangeReverted) and reverted.as_saved  # back on the saved list
    assert isinstance(undone[1], AttemptsResetReverted) and undone[1].attempts == 2  # 2 before, 0 since
    after = project_dialing(record, undone)
    assert after is not None
    assert (after.recalls, after.waiting, after.rolled, after.attempts) == ({}, {}, {}, {"p": 2})
    view = DialingView(contact=LISTED, record=after)
    assert view.effective_list() == "spring"
    # the final and the do-not-call stand: nobody said to lift them
    assert dialability(view, "p", PROJECT, None, MONDAY_NOON).reason == "do_not_call"
    assert len(after.finals) == 1 and len(after.do_not_call) == 1


def test_lift_suppressions_lifts_only_the_entries_the_corrected_selection_created() -> None:
    history = history_after(EVERYTHING)
    # a later selection (version 7) adds its own do-not-call for one number
    record = project_dialing(None, history)
    later = plan(
        selection(ContactHandling(do_not_call=DoNotCallSpec(numbers="this")), MONDAY_NOON, version=7),
        target(number="+3584011", record=record),
        CTX,
    )
    history = [*history, *later]  # type: ignore[list-item]
    record = project_dialing(record, later)
    assert record is not None
    before = DialingView(contact=CONTACT, record=record)
    assert dialability(before, "p", PROJECT, "+3584022", MONDAY_NOON, "manual").reason == "do_not_call"
    fix = correction(ContactHandling(), MONDAY_NOON, lift=True)
    undone = redrive(fix, SELECTION, target(record=record), history, [], CTX)
    assert [type(e) for e in undone] == [
        ContactListChangeReverted,
        AttemptsResetReverted,
        RollToProjectReverted,
        FinalLifted,
        DoNotCallLifted,
        RecallCancelled,
        WaitingPeriodLifted,
    ]
    after = project_dialing(record, undone)
    assert after is not None and after.finals == ()
    assert [d.source for d in after.do_not_call] == [f"{UUID(int=1)}/7"]  # the later one stands
    view = DialingView(contact=CONTACT, record=after)
    assert dialability(view, "p", PROJECT, "+3584022", MONDAY_NOON, "manual").allowed
    assert dialability(view, "p", PROJECT, "+3584011", MONDAY_NOON, "manual").reason == "do_not_call"


def test_what_the_new_outcome_asks_for_again_is_not_undone_and_applies_after_the_undo() -> None:
    handling = ContactHandling(move_to_list="autumn", recall=RecallSpec(delay_seconds=3_600))
    history = history_after(handling)
    record = project_dialing(None, history)
    later = MONDAY_NOON + timedelta(minutes=10)
    # the new outcome also recalls, and moves to another list
    fix = correction(ContactHandling(move_to_list="winter", recall=RecallSpec(delay_seconds=7_200)), later)
    events = redrive(fix, SELECTION, target(contact=LISTED, record=record), history, [], CTX)
    assert [type(e) for e in events] == [ContactListChangeReverted, ContactMovedToList, RecallScheduled]
    move = events[1]
    assert isinstance(move, ContactMovedToList) and (move.from_list, move.to_list) == ("spring", "winter")
    after = project_dialing(record, events)
    assert after is not None and after.recalls["p"].due_at == later + timedelta(hours=2)
    # the same list again: the move is not reverted (the new outcome asks for it, and records it)
    same = correction(ContactHandling(move_to_list="autumn"), later)
    events = redrive(same, SELECTION, target(contact=LISTED, record=record), history, [], CTX)
    assert [type(e) for e in events] == [RecallCancelled, ContactMovedToList]


def test_an_effect_someone_else_changed_since_is_left_alone() -> None:
    history = history_after(ContactHandling(move_to_list="autumn", waiting_period=WaitingPeriodSpec(seconds=600)))
    record = project_dialing(None, history)
    other = plan(
        selection(
            ContactHandling(move_to_list="winter", waiting_period=WaitingPeriodSpec(seconds=60)),
            MONDAY_NOON,
            code="Z",
            version=7,
        ),
        target(contact=LISTED, record=record),
        CTX,
    )
    history = [*history, *other]  # type: ignore[list-item]
    record = project_dialing(record, other)
    assert redrive(correction(ContactHandling(), MONDAY_NOON), SELECTION, target(record=record), history, [], CTX) == []
    # and correcting a correction does not undo the first correction's undo
    first = redrive(correction(ContactHandling(), MONDAY_NOON, version=9), f"{UUID(int=1)}/7",
                    target(contact=LISTED, record=record), history, [], CTX)  # fmt: skip
    assert [type(e) for e in first] == [ContactListChangeReverted, WaitingPeriodLifted]
    history = [*history, *first]  # type: ignore[list-item]
    record = project_dialing(record, first)
    again = correction(ContactHandling(), MONDAY_NOON, version=11)
    assert redrive(again, f"{UUID(int=1)}/9", target(record=record), history, [], CTX) == []


def test_a_whole_company_final_is_lifted_on_the_company_too() -> None:
    contact = msgspec.structs.replace(CONTACT, company_id="acme")
    handling = ContactHandling(final=FinalSpec(scope="all", whole_company=True))
    own, company = plan(selection(handling, MONDAY_NOON), target(contact=contact), CTX)
    record, company_record = project_dialing(None, [own]), project_dialing(None, [company])
    at = target(contact=contact, record=record, company=company_record)
    fix = correction(ContactHandling(), MONDAY_NOON, lift=True)
    assert redrive(correction(ContactHandling(), MONDAY_NOON), SELECTION, at, [own], [company], CTX) == []  # type: ignore[list-item]
    lifted = redrive(fix, SELECTION, at, [own], [company], CTX)  # type: ignore[list-item]
    assert [(type(e), e.originator_id) for e in lifted] == [
        (FinalLifted, dialing_id(T, "c1")),
        (FinalLifted, company.originator_id),
    ]
    view = DialingView(contact=contact, record=project_dialing(record, lifted[:1]),
                       company=project_dialing(company_record, lifted[1:]))  # fmt: skip
    assert dialability(view, "p", PROJECT, None, MONDAY_NOON).allowed


def test_the_recall_hand_over_is_recorded_once_and_only_for_the_open_agent_recall() -> None:
    spec = RecallSpec(delay_seconds=3_600, owner="agent", handover_after_seconds=1_800)
    record = project_dialing(None, plan(selection(ContactHandling(recall=spec), MONDAY_NOON), target(), CTX))
    assert record is not None
    (handed,) = hand_over(record, "c1", SELECTION, CTX)
    assert isinstance(handed, RecallHandedOver)
    assert (handed.from_agent, handed.recall, handed.occurred_at) == (
        "anna",
        SELECTION,
        MONDAY_NOON + timedelta(hours=1.5),
    )
    after = project_dialing(record, [handed])
    assert after is not None and after.recalls["p"].handed_over
    # anyone's now, even before the hand-over time it was set for (recorded is recorded)
    assert dialability(
        DialingView(contact=CONTACT, record=after), "p", PROJECT, None, MONDAY_NOON + timedelta(hours=1)
    ).allowed
    assert hand_over(after, "c1", SELECTION, CTX) == []  # once
    assert hand_over(record, "c1", "another/1", CTX) == []  # replaced or cancelled meanwhile
    anyone = project_dialing(
        None, plan(selection(ContactHandling(recall=RecallSpec(delay_seconds=60)), MONDAY_NOON), target(), CTX)
    )
    assert hand_over(anyone, "c1", SELECTION, CTX) == []  # nobody owned it
