"""Interaction rules (PRODUCT.md §2), tested with plain values."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from events.codec import DomainEvent
from events.types import (
    ConversationClosed,
    FlowRedirected,
    OutcomeCorrected,
    OutcomeDefinition,
    OutcomeFlags,
    OutcomeSelected,
    ProjectSettings,
    WrapUp,
    WrapUpTimerSet,
)
from services.catalogue import Catalogue, apply
from services.errors import (
    CallAlreadyHasOutcome,
    CallTooShort,
    ConversationIsClosed,
    CorrectionNotAllowed,
    FactConflict,
    ImpossibleHistory,
    InteractionIsClosed,
    NothingToCorrect,
    OutcomeNotApplicable,
    OutcomeNotInProject,
    OutcomeNotSelectable,
    OutcomeRequired,
    RevenueNotAllowed,
    RevenueRequired,
)
from services.interactions import Call, Conversation, project_call, project_conversation
from services.rules import Context
from services.rules import config as config_rules
from services.rules import interactions as rules
from services.rules.interactions import Choice

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ADMIN = Context("acme", "admin:k1", T0)
PLATFORM = Context("acme", "system", T0)
AGENT = Context("acme", "agent:anna", T0)
SUPERVISOR = Context("acme", "supervisor:sam", T0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def build(catalogue: Catalogue | None, events: Sequence[DomainEvent]) -> Catalogue:
    for e in events:
        catalogue = apply(e, catalogue)
    assert catalogue is not None
    return catalogue


def world(
    settings: ProjectSettings | None = None,
    *outcomes: OutcomeDefinition,
    project_outcomes: Sequence[OutcomeDefinition] = (),
    hidden: Sequence[str] = (),
) -> Catalogue:
    c = build(None, config_rules.create_tenant(uuid.uuid4(), ADMIN, "Acme", "UTC"))
    for d in outcomes:
        c = build(c, config_rules.define_outcome(c, ADMIN, d))
    c = build(
        c,
        config_rules.create_project(
            c, ADMIN, "p1", settings or ProjectSettings(name="P", direction="outbound"), hidden
        ),
    )
    for d in project_outcomes:
        c = build(c, config_rules.define_outcome(c, ADMIN, d, project_id="p1"))
    return c


SALE = OutcomeDefinition(
    code="SALE", name="Sale", flags=OutcomeFlags(contact=True, success=True, revenue="optional"), min_call_seconds=30
)
PAID = OutcomeDefinition(code="PAID", name="Paid", flags=OutcomeFlags(revenue="required"))
CLOSER = OutcomeDefinition(code="RESOLVED", name="Resolved", close_conversation_with_call=True)
KEEP = OutcomeDefinition(code="INFO", name="Info given", keeps_conversation_active=True)
LATE = OutcomeDefinition(code="ACCEPTED", name="Client accepted", selectable_after_interaction=True)
CALL_ONLY = OutcomeDefinition(code="VOICEMAIL", name="Left voicemail", applies_to=("call",))


def fold(
    events: Sequence[DomainEvent], call: Call | None = None, conv: Conversation | None = None
) -> tuple[Call | None, Conversation | None]:
    call_events = [e for e in events if call is None or e.originator_id == call.id]
    if call is not None:
        call = project_call(call, call_events)
    if conv is not None:
        conv = project_conversation(conv, [e for e in events if e.originator_id == conv.id])
    return call, conv


def new_call(
    c: Catalogue,
    *,
    answered: bool = True,
    ended: float | None = 120,
    conv: Conversation | None = None,
    call_id: str = "c1",
) -> Call:
    call = project_call(
        None,
        rules.start_call(
            c, PLATFORM, call_id=call_id, project_id="p1", direction="outbound", occurred_at=T0, conversation=conv
        ),
    )
    assert call is not None
    if answered:
        call = project_call(call, rules.answer_call(call, PLATFORM, occurred_at=at(5), agent_id="anna"))
    if ended is not None:
        events = rules.end_call(
            c, call, PLATFORM, occurred_at=at(ended), termination_reason="agent_hangup", conversation=conv
        )
        call = project_call(call, [e for e in events if e.originator_id == call.id])
    assert call is not None
    return call


def new_conversation(c: Catalogue) -> Conversation:
    conv = project_conversation(
        None,
        rules.start_conversation(
            c, PLATFORM, conversation_id="v1", project_id="p1", channel="sms", occurred_at=T0, contact_id="k1"
        ),
    )
    assert conv is not None
    return conv


# -- facts ---------------------------------------------------------------------------------------------


def test_facts_may_arrive_out_of_order_but_not_impossibly() -> None:
    c = world()
    call = new_call(c, answered=False, ended=120)  # the end arrived before the answer
    answered = project_call(call, rules.answer_call(call, PLATFORM, occurred_at=at(10), agent_id="anna"))
    assert answered is not None and answered.answered_at == at(10)
    with pytest.raises(ImpossibleHistory, match="after it ended"):
        rules.answer_call(call, PLATFORM, occurred_at=at(200), agent_id="anna")
    with pytest.raises(ImpossibleHistory, match="before it started"):
        rules.answer_call(call, PLATFORM, occurred_at=at(-1), agent_id="anna")


def test_a_repeated_fact_is_a_no_op_a_contradicting_one_a_conflict() -> None:
    c = world()
    call = new_call(c)
    assert rules.end_call(c, call, PLATFORM, occurred_at=at(120), termination_reason="", conversation=None) == []
    with pytest.raises(FactConflict):
        rules.end_call(c, call, PLATFORM, occurred_at=at(130), termination_reason="", conversation=None)


def test_an_answered_call_cannot_be_unanswered() -> None:
    c = world()
    with pytest.raises(ImpossibleHistory):
        rules.call_unanswered(c, new_call(c), PLATFORM, occurred_at=at(3), status="no_answer", conversation=None)


# -- selection rules -----------------------------------------------------------------------------------------


def test_the_outcome_must_be_in_the_active_set_and_apply_to_the_interaction() -> None:
    c = world(None, SALE, CALL_ONLY)
    call = new_call(c)
    with pytest.raises(OutcomeNotInProject):
        rules.select_outcome(c, call, AGENT, Choice("NOPE", at(130)))
    with pytest.raises(OutcomeNotApplicable, match="conversations"):
        rules.select_outcome(c, new_conversation(c), AGENT, Choice("VOICEMAIL", at(130)))


def test_agents_cannot_pick_system_outcomes_or_unanswered_outcomes_on_answered_calls() -> None:
    c = world()
    call = new_call(c)
    with pytest.raises(OutcomeNotSelectable, match="system-only"):
        rules.select_outcome(c, call, AGENT, Choice("WRAP_UP_TIMEOUT", at(130)))
    with pytest.raises(OutcomeNotSelectable, match="no person answered"):
        rules.select_outcome(c, call, AGENT, Choice("NO_ANSWER", at(130)))
    # a preview call nobody answered: the agent may pick it; the platform's dialer as system too
    unanswered = new_call(c, answered=False, call_id="c2")
    assert rules.select_outcome(c, unanswered, AGENT, Choice("NO_ANSWER", at(130)))
    assert rules.select_outcome(c, new_call(c, call_id="c3"), PLATFORM, Choice("WRAP_UP_TIMEOUT", at(130)))


def test_revenue_rules() -> None:
    c = world(None, SALE, PAID)
    with pytest.raises(RevenueRequired):
        rules.select_outcome(c, new_call(c), AGENT, Choice("PAID", at(130)))
    with pytest.raises(RevenueRequired):
        rules.select_outcome(c, new_call(c), AGENT, Choice("PAID", at(130), revenue=Decimal(0)))
    assert rules.select_outcome(c, new_call(c), AGENT, Choice("PAID", at(130), revenue=Decimal("9.90")))
    with pytest.raises(RevenueNotAllowed):
        rules.select_outcome(c, new_call(c), AGENT, Choice("BUSY", at(130), revenue=Decimal(1)))


def test_call_length_gating() -> None:
    c = world(None, SALE)
    short = new_call(c, ended=20)  # answered at 5s: 15 seconds of talk
    with pytest.raises(CallTooShort, match="at least 30s"):
        rules.select_outcome(c, short, AGENT, Choice("SALE", at(25)))
    assert rules.select_outcome(c, new_call(c, ended=60), AGENT, Choice("SALE", at(65)))


def test_a_call_gets_one_outcome() -> None:
    c = world(None, SALE)
    call = new_call(c)
    call, _ = fold(rules.select_outcome(c, call, AGENT, Choice("SALE", at(130))), call)
    assert call is not None
    with pytest.raises(CallAlreadyHasOutcome):
        rules.select_outcome(c, call, AGENT, Choice("BUSY", at(131)))


def test_the_selection_carries_the_outcome_set_version_and_the_definition_then() -> None:
    c = world(None, SALE)
    [event] = rules.select_outcome(c, new_call(c), AGENT, Choice("SALE", at(130), agent_id="anna"))
    assert isinstance(event, OutcomeSelected)
    assert event.outcome_set_version == c.projects["p1"].set_version
    assert event.definition == SALE and event.occurred_at == at(130)


# -- conversations -------------------------------------------------------------------------------------------


def test_a_conversation_outcome_closes_it_unless_it_keeps_it_active() -> None:
    c = world(None, KEEP, SALE)
    conv = new_conversation(c)
    events = rules.select_outcome(c, conv, AGENT, Choice("INFO", at(10)))
    _, conv = fold(events, conv=conv)
    assert conv is not None and not conv.closed
    events = rules.select_outcome(c, conv, AGENT, Choice("SALE", at(20)))
    assert isinstance(events[-1], ConversationClosed)
    _, conv = fold(events, conv=conv)
    assert conv is not None and conv.closed and conv.closing_outcome is not None
    assert [s.code for s in conv.outcomes] == ["INFO", "SALE"] and conv.closing_outcome.code == "SALE"


def test_redirect_to_flow_keeps_the_conversation_active() -> None:
    bot = OutcomeDefinition(code="SURVEY", name="Survey", redirect_to_flow="nps", applies_to=("conversation",))
    c = world(None, project_outcomes=[bot])
    events = rules.select_outcome(c, new_conversation(c), AGENT, Choice("SURVEY", at(10)))
    assert isinstance(events[-1], FlowRedirected) and events[-1].flow == "nps"


def test_a_closed_conversation_takes_only_late_business_results() -> None:
    c = world(ProjectSettings(name="P", direction="outbound", wrap_up=WrapUp(mode="optional")), LATE, SALE)
    conv = new_conversation(c)
    _, conv = fold(rules.close_conversation(c, conv, AGENT, occurred_at=at(30)), conv=conv)
    assert conv is not None and conv.closed
    with pytest.raises(InteractionIsClosed):
        rules.select_outcome(c, conv, AGENT, Choice("SALE", at(40)))
    [late] = rules.select_outcome(c, conv, AGENT, Choice("ACCEPTED", at(86400)))
    assert isinstance(late, OutcomeSelected) and late.late
    with pytest.raises(ConversationIsClosed):
        rules.record_message(conv, PLATFORM, direction="received", channel="sms", occurred_at=at(50), body="hi")


def test_closing_needs_an_outcome_when_wrap_up_is_mandatory() -> None:
    c = world(ProjectSettings(name="P", direction="inbound", wrap_up=WrapUp(mode="mandatory")))
    with pytest.raises(OutcomeRequired):
        rules.close_conversation(c, new_conversation(c), AGENT, occurred_at=at(30))


def test_a_call_outcome_can_close_the_conversation_in_the_same_write() -> None:
    c = world(None, CLOSER)
    conv = new_conversation(c)
    call = new_call(c, conv=conv)
    events = rules.select_outcome(c, call, AGENT, Choice("RESOLVED", at(130)), conversation=conv)
    assert [type(e).__name__ for e in events] == ["OutcomeSelected", "OutcomeSelected", "ConversationClosed"]
    assert {e.originator_id for e in events} == {call.id, conv.id}
    assert events[1].automatic == "close_with_call"  # type: ignore[attr-defined]


def test_an_unanswered_outbound_call_closes_its_conversation_with_its_outcome() -> None:
    c = world()
    conv = new_conversation(c)
    call = new_call(c, answered=False, ended=None, conv=conv)
    events = rules.call_unanswered(c, call, PLATFORM, occurred_at=at(30), status="no_answer", conversation=conv)
    selected = [e for e in events if isinstance(e, OutcomeSelected)]
    assert selected[0].outcome_code == "NO_ANSWER" and selected[0].actor == "system"
    assert isinstance(events[-1], ConversationClosed) and events[-1].cause == "unanswered"
    kept = world(
        ProjectSettings(name="P", direction="outbound", keep_conversation_active_when_outbound_unanswered=True)
    )
    conv2 = new_conversation(kept)
    call2 = new_call(kept, answered=False, ended=None, conv=conv2)
    assert (
        len(rules.call_unanswered(kept, call2, PLATFORM, occurred_at=at(30), status="no_answer", conversation=conv2))
        == 1
    )


# -- auto-close and wrap-up -----------------------------------------------------------------------------------


def test_auto_close_with_one_outcome_assigns_it_as_a_system_selection() -> None:
    done = OutcomeDefinition(code="DONE", name="Done")
    c = world(ProjectSettings(name="P", direction="inbound", auto_close_without_outcome=True, hide_busy=True), done)
    call = new_call(c, ended=None)
    events = rules.end_call(c, call, PLATFORM, occurred_at=at(60), termination_reason="", conversation=None)
    assert isinstance(events[-1], OutcomeSelected)
    assert events[-1].outcome_code == "DONE" and events[-1].actor == "system" and events[-1].automatic == "auto_close"
    closed = rules.close_conversation(c, new_conversation(c), AGENT, occurred_at=at(60))
    assert [type(e).__name__ for e in closed] == ["OutcomeSelected", "ConversationClosed"]


def test_auto_close_with_zero_outcomes_closes_without_one() -> None:
    c = world(ProjectSettings(name="P", direction="inbound", auto_close_without_outcome=True, hide_busy=True))
    events = rules.end_call(
        c, new_call(c, ended=None), PLATFORM, occurred_at=at(60), termination_reason="", conversation=None
    )
    assert [type(e).__name__ for e in events] == ["CallEnded"]
    [closed] = rules.close_conversation(c, new_conversation(c), AGENT, occurred_at=at(60))
    assert isinstance(closed, ConversationClosed) and closed.outcome_code is None


def test_mandatory_wrap_up_with_timeout_sets_a_timer_that_selects_the_timeout_outcome() -> None:
    wrap = WrapUp(mode="mandatory_with_timeout", timeout_seconds=30, timeout_outcome="WRAP_UP_TIMEOUT")
    c = world(ProjectSettings(name="P", direction="outbound", wrap_up=wrap))
    call = new_call(c, ended=None)
    events = rules.end_call(c, call, PLATFORM, occurred_at=at(60), termination_reason="", conversation=None)
    timer = events[-1]
    assert isinstance(timer, WrapUpTimerSet) and timer.due_at == at(90)
    call = project_call(call, events)
    assert call is not None
    [selected] = rules.wrap_up_timed_out(
        c, call, PLATFORM, due_at=at(90), outcome_code="WRAP_UP_TIMEOUT", conversation=None
    )
    assert isinstance(selected, OutcomeSelected) and selected.automatic == "wrap_up_timeout"
    call = project_call(call, [selected])
    assert call is not None
    # fired twice: nothing more
    assert (
        rules.wrap_up_timed_out(c, call, PLATFORM, due_at=at(90), outcome_code="WRAP_UP_TIMEOUT", conversation=None)
        == []
    )


# -- corrections ---------------------------------------------------------------------------------------------


def test_corrections_are_for_supervisors_with_a_reason_and_keep_the_previous_value() -> None:
    c = world(None, SALE, CLOSER)
    call = new_call(c)
    with pytest.raises(NothingToCorrect):
        rules.correct_outcome(c, call, SUPERVISOR, Choice("SALE", at(200)), reason="wrong")
    call, _ = fold(rules.select_outcome(c, call, AGENT, Choice("BUSY", at(130))), call)
    assert call is not None
    with pytest.raises(CorrectionNotAllowed, match="supervisor"):
        rules.correct_outcome(c, call, AGENT, Choice("SALE", at(200)), reason="wrong")
    with pytest.raises(CorrectionNotAllowed, match="reason"):
        rules.correct_outcome(c, call, SUPERVISOR, Choice("SALE", at(200)), reason=" ")
    [corrected] = rules.correct_outcome(c, call, SUPERVISOR, Choice("SALE", at(200)), reason="heard the recording")
    assert isinstance(corrected, OutcomeCorrected) and corrected.previous_code == "BUSY"
    call = project_call(call, [corrected])
    assert call is not None and call.outcome is not None and call.outcome.code == "SALE"


def test_correcting_a_call_outcome_that_closed_the_conversation_corrects_the_conversation_too() -> None:
    c = world(None, CLOSER, SALE)
    conv = new_conversation(c)
    call = new_call(c, conv=conv)
    events = rules.select_outcome(c, call, AGENT, Choice("RESOLVED", at(130)), conversation=conv)
    call, conv = fold(events, call, conv)
    assert call is not None and conv is not None and conv.closed
    events = rules.correct_outcome(c, call, SUPERVISOR, Choice("SALE", at(300)), reason="was a sale", conversation=conv)
    assert {e.originator_id for e in events} == {call.id, conv.id}
    assert all(isinstance(e, OutcomeCorrected) for e in events)
