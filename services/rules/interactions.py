"""Interaction rules (PRODUCT.md §2): facts, selections, corrections, closing.

Every function takes the current states and returns the events of one atomic save, or
raises the error named after the rule it enforces. Cascades (a call outcome closing its
conversation, an unanswered outbound call closing it, auto-close) are returned in the
same list, so they are written in the same atomic save.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from events.codec import DomainEvent
from events.types import (
    AgentConnected,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallUnanswered,
    ContactErased,
    ContactOptedOut,
    ContactSaved,
    ConversationClosed,
    ConversationStarted,
    FlowRedirected,
    FlowReturned,
    MessageRecorded,
    OutcomeCorrected,
    OutcomeDefinition,
    OutcomeSelected,
    QuotaReached,
    RecordingAttached,
    WrapUpTimerSet,
)
from services.catalogue import Catalogue, ProjectState, active_set, agent_outcomes
from services.errors import (
    CallAlreadyHasOutcome,
    CallTooShort,
    ConversationIsClosed,
    CorrectionNotAllowed,
    FactConflict,
    ImpossibleHistory,
    InteractionIsClosed,
    InvalidContact,
    NegativeRevenue,
    NotFound,
    NothingToCorrect,
    NotWithFlow,
    OutcomeNotApplicable,
    OutcomeNotInProject,
    OutcomeNotSelectable,
    OutcomeRequired,
    RevenueNotAllowed,
    RevenueRequired,
)
from services.interactions import Call, Contact, Conversation, aggregate_id
from services.rules import Context, make
from services.rules.config import check_time_zone

Interaction = Call | Conversation


def _project(catalogue: Catalogue, project_id: str) -> ProjectState:
    project = catalogue.projects.get(project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found")
    return project


def _before(a: datetime, b: datetime, what: str) -> None:
    if a < b:
        raise ImpossibleHistory(what)


# -- facts -------------------------------------------------------------------------------------------


def start_call(
    catalogue: Catalogue,
    ctx: Context,
    *,
    call_id: str,
    project_id: str,
    direction: str,
    occurred_at: datetime,
    conversation: Conversation | None = None,
    agent_id: str | None = None,
    contact_id: str | None = None,
    contact_number: str | None = None,
) -> list[DomainEvent]:
    _project(catalogue, project_id)
    if conversation is not None:
        if conversation.closed:
            raise ConversationIsClosed(f"conversation {conversation.conversation_id!r} is closed; start a new one")
        if conversation.project_id != project_id:
            raise ImpossibleHistory(
                f"conversation {conversation.conversation_id!r} belongs to project "
                f"{conversation.project_id!r}, not {project_id!r}"
            )
    return [
        make(
            CallStarted,
            aggregate_id(ctx.tenant_id, "call", call_id),
            1,
            ctx,
            call_id=call_id,
            project_id=project_id,
            direction=direction,
            occurred_at=occurred_at,
            conversation_id=conversation.conversation_id if conversation else None,
            agent_id=agent_id,
            contact_id=contact_id,
            contact_number=contact_number,
        )
    ]


def answer_call(call: Call, ctx: Context, *, occurred_at: datetime, agent_id: str | None) -> list[DomainEvent]:
    """Facts may arrive out of order (an end before its answer): any possible history is
    accepted, an impossible one refused."""
    if call.unanswered_status is not None:
        raise ImpossibleHistory(f"call {call.call_id!r} was reported unanswered ({call.unanswered_status})")
    if call.answered_at is not None:
        if call.answered_at == occurred_at:
            return []  # the same fact again
        raise FactConflict(f"call {call.call_id!r} was already answered at {call.answered_at.isoformat()}")
    _before(occurred_at, call.started_at, f"call {call.call_id!r} cannot be answered before it started")
    if call.ended_at is not None and occurred_at > call.ended_at:
        raise ImpossibleHistory(
            f"call {call.call_id!r} cannot be answered at {occurred_at.isoformat()}, "
            f"after it ended at {call.ended_at.isoformat()}"
        )
    return [
        make(
            CallAnswered,
            call.id,
            call.version + 1,
            ctx,
            call_id=call.call_id,
            occurred_at=occurred_at,
            agent_id=agent_id,
        )
    ]


def connect_agent(call: Call, ctx: Context, *, occurred_at: datetime, agent_id: str) -> list[DomainEvent]:
    _before(occurred_at, call.started_at, f"an agent cannot be connected to call {call.call_id!r} before it started")
    if call.ended_at is not None and occurred_at > call.ended_at:
        raise ImpossibleHistory(f"an agent cannot be connected to call {call.call_id!r} after it ended")
    return [
        make(
            AgentConnected,
            call.id,
            call.version + 1,
            ctx,
            call_id=call.call_id,
            occurred_at=occurred_at,
            agent_id=agent_id,
        )
    ]


def unanswered_outcome(catalogue: Catalogue, project_id: str, status: str) -> OutcomeDefinition | None:
    """The project's outcome for a telephony status (NO_ANSWER for no_answer, BUSY for busy…)."""
    for o in active_set(catalogue, project_id).values():
        d = o.definition
        if d.telephony_status == status and (d.unanswered or d.code == "BUSY"):
            return d
    return None


def call_unanswered(
    catalogue: Catalogue,
    call: Call,
    ctx: Context,
    *,
    occurred_at: datetime,
    status: str,
    conversation: Conversation | None,
) -> list[DomainEvent]:
    """An unanswered outbound call closes its conversation (unless the project keeps it
    active), applying the call's unanswered-call outcome to it as a system selection."""
    if status == "person":
        raise ImpossibleHistory("an unanswered call cannot have telephony status 'person'")
    if call.answered_at is not None:
        raise ImpossibleHistory(f"call {call.call_id!r} was answered at {call.answered_at.isoformat()}")
    if call.unanswered_status is not None:
        if call.unanswered_status == status:
            return []
        raise FactConflict(f"call {call.call_id!r} was already reported {call.unanswered_status}")
    _before(occurred_at, call.started_at, f"call {call.call_id!r} cannot be unanswered before it started")
    if call.ended_at is not None and occurred_at > call.ended_at:
        raise ImpossibleHistory(
            f"call {call.call_id!r} cannot be reported unanswered at {occurred_at.isoformat()}, "
            f"after it ended at {call.ended_at.isoformat()}"
        )
    events: list[DomainEvent] = [
        make(
            CallUnanswered,
            call.id,
            call.version + 1,
            ctx,
            call_id=call.call_id,
            occurred_at=occurred_at,
            telephony_status=status,
        )
    ]
    project = _project(catalogue, call.project_id)
    if (
        call.direction == "outbound"
        and conversation is not None
        and not conversation.closed
        and not project.settings.keep_conversation_active_when_outbound_unanswered
    ):
        system = Context(ctx.tenant_id, "system", ctx.recorded_at, ctx.key_id)
        outcome = unanswered_outcome(catalogue, call.project_id, status)
        version = conversation.version
        if outcome is not None:
            version += 1
            events.append(
                _selected(conversation, version, system, catalogue, outcome, occurred_at, automatic="unanswered")
            )
        events.append(
            make(
                ConversationClosed,
                conversation.id,
                version + 1,
                system,
                conversation_id=conversation.conversation_id,
                occurred_at=occurred_at,
                cause="unanswered",
                outcome_code=outcome.code if outcome else None,
            )
        )
    return events


def end_call(
    catalogue: Catalogue,
    call: Call,
    ctx: Context,
    *,
    occurred_at: datetime,
    termination_reason: str,
    conversation: Conversation | None,
) -> list[DomainEvent]:
    if call.ended_at is not None:
        if call.ended_at == occurred_at:
            return []
        raise FactConflict(f"call {call.call_id!r} already ended at {call.ended_at.isoformat()}")
    _before(occurred_at, call.started_at, f"call {call.call_id!r} cannot end before it started")
    if call.answered_at is not None:
        _before(occurred_at, call.answered_at, f"call {call.call_id!r} cannot end before it was answered")
    events: list[DomainEvent] = [
        make(
            CallEnded,
            call.id,
            call.version + 1,
            ctx,
            call_id=call.call_id,
            occurred_at=occurred_at,
            termination_reason=termination_reason,
        )
    ]
    if call.outcome is not None or call.unanswered_status is not None:
        return events
    project = _project(catalogue, call.project_id)
    system = Context(ctx.tenant_id, "system", ctx.recorded_at, ctx.key_id)
    if project.settings.auto_close_without_outcome:
        # the agent is not prompted: zero outcomes -> no outcome ("-"), one -> assigned
        agent = agent_outcomes(catalogue, call.project_id)
        if agent:
            events += _select(
                catalogue,
                call,
                call.version + 2,
                system,
                agent[0].definition,
                occurred_at,
                conversation,
                automatic="auto_close",
            )
        return events
    wrap_up = project.settings.wrap_up
    if wrap_up.mode == "mandatory_with_timeout" and wrap_up.timeout_seconds and wrap_up.timeout_outcome:
        due = occurred_at + timedelta(seconds=wrap_up.timeout_seconds)
        events.append(
            make(
                WrapUpTimerSet,
                call.id,
                call.version + 2,
                system,
                call_id=call.call_id,
                occurred_at=occurred_at,
                due_at=due,
                outcome_code=wrap_up.timeout_outcome,
            )
        )
    return events


def start_conversation(
    catalogue: Catalogue,
    ctx: Context,
    *,
    conversation_id: str,
    project_id: str,
    channel: str,
    occurred_at: datetime,
    contact_id: str | None,
) -> list[DomainEvent]:
    _project(catalogue, project_id)
    return [
        make(
            ConversationStarted,
            aggregate_id(ctx.tenant_id, "conversation", conversation_id),
            1,
            ctx,
            conversation_id=conversation_id,
            project_id=project_id,
            channel=channel,
            occurred_at=occurred_at,
            contact_id=contact_id,
        )
    ]


def flow_returned(conversation: Conversation, ctx: Context, *, flow: str, occurred_at: datetime) -> list[DomainEvent]:
    """The flow the conversation was redirected to hands it back (PRODUCT.md §3)."""
    if conversation.flow != flow:
        where = f"with flow {conversation.flow!r}" if conversation.flow else "with no flow"
        raise NotWithFlow(f"conversation {conversation.conversation_id!r} is {where}, not with {flow!r}")
    return [
        make(
            FlowReturned,
            conversation.id,
            conversation.version + 1,
            ctx,
            conversation_id=conversation.conversation_id,
            occurred_at=occurred_at,
            flow=flow,
        )
    ]


def record_message(
    conversation: Conversation,
    ctx: Context,
    *,
    direction: str,
    channel: str,
    occurred_at: datetime,
    body: str | None,
) -> list[DomainEvent]:
    """A message on a closed conversation is refused: a new message from the customer
    opens a new conversation (the platform starts it), unless it was kept active."""
    if conversation.closed:
        raise ConversationIsClosed(
            f"conversation {conversation.conversation_id!r} is closed; a new message opens a new conversation"
        )
    _before(
        occurred_at,
        conversation.started_at,
        f"a message cannot precede the start of conversation {conversation.conversation_id!r}",
    )
    return [
        make(
            MessageRecorded,
            conversation.id,
            conversation.version + 1,
            ctx,
            conversation_id=conversation.conversation_id,
            direction=direction,
            channel=channel,
            occurred_at=occurred_at,
            body=body,
            contact_id=conversation.contact_id,
        )
    ]


def attach_reference(
    interaction: Interaction, ctx: Context, *, kind: str, reference: str, occurred_at: datetime
) -> list[DomainEvent]:
    """Recordings and transcripts may arrive late, even after close."""
    interaction_id = interaction.call_id if isinstance(interaction, Call) else interaction.conversation_id
    return [
        make(
            RecordingAttached,
            interaction.id,
            interaction.version + 1,
            ctx,
            interaction_id=interaction_id,
            kind=kind,
            reference=reference,
            occurred_at=occurred_at,
        )
    ]


def save_contact(
    contact: Contact | None,
    ctx: Context,
    *,
    contact_id: str,
    name: str | None,
    numbers: tuple[str, ...],
    time_zone: str,
    company_id: str | None,
    contact_list: str | None,
) -> list[DomainEvent]:
    check_time_zone(time_zone, InvalidContact)
    version = contact.version + 1 if contact else 1
    return [
        make(
            ContactSaved,
            aggregate_id(ctx.tenant_id, "contact", contact_id),
            version,
            ctx,
            contact_id=contact_id,
            name=name,
            numbers=numbers,
            time_zone=time_zone,
            company_id=company_id,
            contact_list=contact_list,
        )
    ]


def opt_out(
    contact: Contact | None, ctx: Context, *, contact_id: str, channel: str, occurred_at: datetime
) -> list[DomainEvent]:
    version = contact.version + 1 if contact else 1
    return [
        make(
            ContactOptedOut,
            aggregate_id(ctx.tenant_id, "contact", contact_id),
            version,
            ctx,
            contact_id=contact_id,
            channel=channel,
            occurred_at=occurred_at,
        )
    ]


def erase_contact(
    contact: Contact | None, ctx: Context, *, contact_id: str, suppressed: tuple[str, ...]
) -> list[DomainEvent]:
    """The erasure, once: an already erased contact records nothing again."""
    if contact is not None and contact.erased:
        return []
    version = contact.version + 1 if contact else 1
    aggregate = aggregate_id(ctx.tenant_id, "contact", contact_id)
    return [make(ContactErased, aggregate, version, ctx, contact_id=contact_id, suppressed=suppressed)]


# -- selections -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """What the actor asks for."""

    code: str
    occurred_at: datetime
    revenue: Decimal | None = None
    agent_id: str | None = None


def _kind(interaction: Interaction) -> str:
    return "call" if isinstance(interaction, Call) else "conversation"


def _ext_id(interaction: Interaction) -> str:
    return interaction.call_id if isinstance(interaction, Call) else interaction.conversation_id


def check_choice(catalogue: Catalogue, interaction: Interaction, ctx: Context, choice: Choice) -> OutcomeDefinition:
    """The selection rules every selection and correction obeys; returns the definition."""
    kind = _kind(interaction)
    _before(
        choice.occurred_at,
        interaction.started_at,
        f"an outcome cannot be selected before {kind} {_ext_id(interaction)!r} started",
    )
    outcome = active_set(catalogue, interaction.project_id).get(choice.code)
    if outcome is None:
        raise OutcomeNotInProject(
            f"outcome {choice.code!r} is not in the active outcome set of project {interaction.project_id!r}"
        )
    d = outcome.definition
    if kind not in d.applies_to:
        raise OutcomeNotApplicable(f"outcome {choice.code!r} does not apply to {kind}s")
    if not d.selectable and not ctx.is_system:
        raise OutcomeNotSelectable(f"outcome {choice.code!r} is system-only; only the system selects it")
    if ctx.is_agent and d.unanswered and isinstance(interaction, Call) and interaction.answered:
        raise OutcomeNotSelectable(
            f"outcome {choice.code!r} is for calls no person answered; call {interaction.call_id!r} was answered"
        )
    if choice.revenue is not None and choice.revenue < 0:
        raise NegativeRevenue(f"revenue cannot be negative (got {choice.revenue})")
    if d.flags.revenue == "required" and not (choice.revenue is not None and choice.revenue > 0):
        raise RevenueRequired(f"outcome {choice.code!r} requires a revenue amount greater than 0")
    if d.flags.revenue == "none" and choice.revenue is not None:
        raise RevenueNotAllowed(f"outcome {choice.code!r} takes no revenue")
    if isinstance(interaction, Call) and d.length_gated:
        seconds = interaction.seconds(choice.occurred_at)
        if d.min_call_seconds is not None and seconds < d.min_call_seconds:
            raise CallTooShort(
                f"outcome {choice.code!r} needs a call of at least {d.min_call_seconds}s; "
                f"call {interaction.call_id!r} lasted {seconds:.0f}s"
            )
        if d.max_call_seconds is not None and seconds > d.max_call_seconds:
            raise CallTooShort(
                f"outcome {choice.code!r} allows a call of at most {d.max_call_seconds}s; "
                f"call {interaction.call_id!r} lasted {seconds:.0f}s"
            )
    return d


def _selected(
    interaction: Interaction,
    version: int,
    ctx: Context,
    catalogue: Catalogue,
    d: OutcomeDefinition,
    occurred_at: datetime,
    *,
    revenue: Decimal | None = None,
    agent_id: str | None = None,
    automatic: str | None = None,
    late: bool = False,
) -> OutcomeSelected:
    return make(
        OutcomeSelected,
        interaction.id,
        version,
        ctx,
        interaction=_kind(interaction),
        interaction_id=_ext_id(interaction),
        project_id=interaction.project_id,
        outcome_code=d.code,
        outcome_set_version=catalogue.projects[interaction.project_id].set_version,
        definition=d,
        occurred_at=occurred_at,
        revenue=revenue,
        agent_id=agent_id,
        automatic=automatic,
        late=late,
    )


def _select(
    catalogue: Catalogue,
    interaction: Interaction,
    version: int,
    ctx: Context,
    d: OutcomeDefinition,
    occurred_at: datetime,
    conversation: Conversation | None,
    *,
    revenue: Decimal | None = None,
    agent_id: str | None = None,
    automatic: str | None = None,
    late: bool = False,
) -> list[DomainEvent]:
    """The selection event and its effects on the conversation, for one atomic save."""
    events: list[DomainEvent] = [
        _selected(
            interaction,
            version,
            ctx,
            catalogue,
            d,
            occurred_at,
            revenue=revenue,
            agent_id=agent_id,
            automatic=automatic,
            late=late,
        )
    ]
    if late:
        return events  # a late business result has no effect on the interaction
    if isinstance(interaction, Conversation):
        if d.redirect_to_flow is not None:
            events.append(
                make(
                    FlowRedirected,
                    interaction.id,
                    version + 1,
                    ctx,
                    conversation_id=interaction.conversation_id,
                    occurred_at=occurred_at,
                    flow=d.redirect_to_flow,
                )
            )
        elif not d.keeps_conversation_active:
            events.append(
                make(
                    ConversationClosed,
                    interaction.id,
                    version + 1,
                    ctx,
                    conversation_id=interaction.conversation_id,
                    occurred_at=occurred_at,
                    cause="outcome",
                    outcome_code=d.code,
                )
            )
        return events
    if d.close_conversation_with_call and conversation is not None and not conversation.closed:
        # the same outcome applies to the conversation, which closes -- in the same write
        cv = conversation.version
        events.append(
            _selected(
                conversation,
                cv + 1,
                ctx,
                catalogue,
                d,
                occurred_at,
                revenue=revenue,
                agent_id=agent_id,
                automatic="close_with_call",
            )
        )
        events.append(
            make(
                ConversationClosed,
                conversation.id,
                cv + 2,
                ctx,
                conversation_id=conversation.conversation_id,
                occurred_at=occurred_at,
                cause="call",
                outcome_code=d.code,
            )
        )
    return events


def select_outcome(
    catalogue: Catalogue,
    interaction: Interaction,
    ctx: Context,
    choice: Choice,
    conversation: Conversation | None = None,
) -> list[DomainEvent]:
    """A call gets one outcome; a closed interaction only a late business result."""
    d = check_choice(catalogue, interaction, ctx, choice)
    late = False
    if isinstance(interaction, Call):
        if interaction.outcome is not None and d.selectable_after_interaction:
            late = True  # a business result attributed after the call had its outcome
        elif interaction.outcome is not None:
            raise CallAlreadyHasOutcome(
                f"call {interaction.call_id!r} already has outcome "
                f"{interaction.outcome.code!r}; a supervisor may correct it"
            )
    elif interaction.closed:
        if not d.selectable_after_interaction:
            raise InteractionIsClosed(
                f"conversation {interaction.conversation_id!r} is closed; only corrections and "
                "outcomes selectable after the interaction are accepted"
            )
        late = True
    return _select(
        catalogue,
        interaction,
        interaction.version + 1,
        ctx,
        d,
        choice.occurred_at,
        conversation,
        revenue=choice.revenue,
        agent_id=choice.agent_id,
        late=late,
    )


def correct_outcome(
    catalogue: Catalogue,
    interaction: Interaction,
    ctx: Context,
    choice: Choice,
    *,
    reason: str,
    lift_suppressions: bool = False,
    conversation: Conversation | None = None,
) -> list[DomainEvent]:
    """A supervisor's correction, allowed after close; keeps the previous value. A call
    outcome that closed its conversation corrects the conversation's outcome too."""
    if not (ctx.is_supervisor or ctx.actor.startswith("supervisor")):
        raise CorrectionNotAllowed("only a supervisor may correct an outcome")
    if not reason.strip():
        raise CorrectionNotAllowed("a correction needs a reason")
    previous = interaction.outcome if isinstance(interaction, Call) else interaction.closing_outcome
    if previous is None:
        raise NothingToCorrect(f"{_kind(interaction)} {_ext_id(interaction)!r} has no outcome to correct")
    d = check_choice(catalogue, interaction, ctx, choice)
    events: list[DomainEvent] = [
        _corrected(
            catalogue, interaction, interaction.version + 1, ctx, previous.code, d, choice, reason, lift_suppressions
        )
    ]
    if (
        isinstance(interaction, Call)
        and previous.definition.close_conversation_with_call
        and conversation is not None
        and conversation.closing_outcome is not None
        and conversation.closing_outcome.code == previous.code
    ):
        events.append(
            _corrected(
                catalogue,
                conversation,
                conversation.version + 1,
                ctx,
                previous.code,
                d,
                choice,
                reason,
                lift_suppressions,
            )
        )
    return events


def _corrected(
    catalogue: Catalogue,
    interaction: Interaction,
    version: int,
    ctx: Context,
    previous: str,
    d: OutcomeDefinition,
    choice: Choice,
    reason: str,
    lift: bool,
) -> OutcomeCorrected:
    return make(
        OutcomeCorrected,
        interaction.id,
        version,
        ctx,
        interaction=_kind(interaction),
        interaction_id=_ext_id(interaction),
        project_id=interaction.project_id,
        previous_code=previous,
        outcome_code=d.code,
        outcome_set_version=catalogue.projects[interaction.project_id].set_version,
        definition=d,
        reason=reason,
        lift_suppressions=lift,
        revenue=choice.revenue,
        occurred_at=choice.occurred_at,
    )


def close_conversation(
    catalogue: Catalogue, conversation: Conversation, ctx: Context, *, occurred_at: datetime
) -> list[DomainEvent]:
    """The agent's Close button: needs an outcome unless auto-close applies or wrap-up is
    optional."""
    if conversation.closed:
        raise ConversationIsClosed(f"conversation {conversation.conversation_id!r} is already closed")
    _before(
        occurred_at,
        conversation.started_at,
        f"conversation {conversation.conversation_id!r} cannot close before it started",
    )
    project = _project(catalogue, conversation.project_id)
    events: list[DomainEvent] = []
    version = conversation.version
    closing = conversation.closing_outcome.code if conversation.closing_outcome else None
    if closing is None:
        if project.settings.auto_close_without_outcome:
            agent = agent_outcomes(catalogue, conversation.project_id)
            if agent:  # one agent outcome: assigned automatically; zero: closes with none ("-")
                version += 1
                closing = agent[0].definition.code
                system = Context(ctx.tenant_id, "system", ctx.recorded_at, ctx.key_id)
                events.append(
                    _selected(
                        conversation,
                        version,
                        system,
                        catalogue,
                        agent[0].definition,
                        occurred_at,
                        automatic="auto_close",
                    )
                )
        elif project.settings.wrap_up.mode != "optional":
            raise OutcomeRequired(
                f"conversation {conversation.conversation_id!r} needs an outcome before it closes "
                f"(wrap-up is {project.settings.wrap_up.mode})"
            )
    events.append(
        make(
            ConversationClosed,
            conversation.id,
            version + 1,
            ctx,
            conversation_id=conversation.conversation_id,
            occurred_at=occurred_at,
            cause="agent",
            outcome_code=closing,
        )
    )
    return events


def quota_reached(
    catalogue: Catalogue, ctx: Context, *, project_id: str, outcome_code: str, selections: int
) -> list[DomainEvent]:
    """Once an outcome has its quota of selections in a project: one ``QuotaReached``,
    on an aggregate of its own at version 1, so it can be written only once."""
    quota = _project(catalogue, project_id).settings.quotas.get(outcome_code)
    if quota is None or selections < quota:
        return []
    return [
        make(
            QuotaReached,
            aggregate_id(ctx.tenant_id, "quota", f"{project_id}/{outcome_code}"),
            1,
            ctx,
            project_id=project_id,
            outcome_code=outcome_code,
            quota=quota,
            occurred_at=ctx.recorded_at,
        )
    ]


def wrap_up_timed_out(
    catalogue: Catalogue,
    call: Call,
    ctx: Context,
    *,
    due_at: datetime,
    outcome_code: str,
    conversation: Conversation | None,
) -> list[DomainEvent]:
    """The wrap-up timer ran out: the system selects the timeout outcome -- unless an
    outcome was selected meanwhile (then nothing: the timer fired for nothing)."""
    if call.outcome is not None or call.wrap_up_due_at is None:
        return []
    if int(call.wrap_up_due_at.timestamp() * 1000) != int(due_at.timestamp() * 1000):
        return []  # an older timer of this call
    outcome = active_set(catalogue, call.project_id).get(outcome_code)
    if outcome is None:
        return []  # the outcome left the set since: the call stays without one ("-")
    system = Context(ctx.tenant_id, "system", ctx.recorded_at, ctx.key_id)
    return _select(
        catalogue, call, call.version + 1, system, outcome.definition, due_at, conversation, automatic="wrap_up_timeout"
    )
