"""Call and conversation states, rebuilt from their events by one mutator each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache, singledispatch
from typing import TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

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
    QaVerdictRecorded,
    RecordingAttached,
    WrapUpTimerSet,
)

_NS = uuid5(NAMESPACE_URL, "https://outcome-ledger/ids")
S = TypeVar("S", bound=msgspec.Struct)


@lru_cache(maxsize=65536)  # uuid5 hashes with SHA-1: worth keeping for hot ids
def aggregate_id(tenant_id: str, kind: str, external_id: str = "") -> UUID:
    """Ids platforms supply live in the tenant's namespace: the same id in another tenant
    names another aggregate, and nothing reveals whether it exists."""
    return uuid5(_NS, f"{tenant_id}/{kind}/{external_id}")


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    definition: OutcomeDefinition
    actor: str
    automatic: str | None = None
    late: bool = False
    corrected_from: str | None = None
    #: the event that made it: "<aggregate id>/<version>"; what it caused is named after it
    source: str = ""


class Call(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    call_id: str
    project_id: str
    direction: str
    started_at: datetime
    conversation_id: str | None = None
    agent_id: str | None = None
    contact_id: str | None = None
    #: the number the call was made to or from (personal data, decrypted on load)
    contact_number: str | None = None
    answered_at: datetime | None = None
    agent_connected_at: datetime | None = None
    unanswered_status: str | None = None
    ended_at: datetime | None = None
    termination_reason: str = ""
    outcome: Selection | None = None
    #: business results attributed after the call had its outcome (selectable after the interaction)
    late_results: tuple[Selection, ...] = ()
    wrap_up_due_at: datetime | None = None
    references: tuple[str, ...] = ()

    @property
    def telephony_status(self) -> str | None:
        """From the call facts alone; the outcome's implied status only when none was reported."""
        if self.answered_at is not None:
            return "person"
        if self.unanswered_status is not None:
            return self.unanswered_status
        if self.outcome is not None:
            return self.outcome.definition.telephony_status
        return None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def seconds(self, until: datetime) -> float:
        """Call length for length gating: talk time when answered, else ring time."""
        start = self.answered_at or self.started_at
        end = self.ended_at or until
        return max(0.0, (end - start).total_seconds())


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    conversation_id: str
    project_id: str
    channel: str
    started_at: datetime
    contact_id: str | None = None
    closed_at: datetime | None = None
    close_cause: str | None = None
    #: every outcome selected, in order (a kept-active conversation collects several)
    outcomes: tuple[Selection, ...] = ()
    flow: str | None = None
    references: tuple[str, ...] = ()

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def closing_outcome(self) -> Selection | None:
        """The outcome that counts in the mix: the last one selected while it was open (late
        business results after close do not replace it)."""
        index = self._closing_index()
        return self.outcomes[index] if index is not None else None

    def _closing_index(self) -> int | None:
        for i in range(len(self.outcomes) - 1, -1, -1):
            if not self.outcomes[i].late:
                return i
        return None


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    contact_id: str
    name: str | None = None
    numbers: tuple[str, ...] = ()
    time_zone: str = "UTC"
    company_id: str | None = None
    contact_list: str | None = None
    #: channels the contact opted out of (a STOP reply: "sms")
    opted_out: tuple[str, ...] = ()
    #: erased (docs/erasure.md): never called or texted again, whatever is saved later
    erased: bool = False


def source_of(event: DomainEvent) -> str:
    """Names the event that caused follow-up actions, so each knows its source."""
    return f"{event.originator_id}/{event.originator_version}"


def _selection(event: OutcomeSelected) -> Selection:
    return Selection(
        code=event.outcome_code,
        definition=event.definition,
        actor=event.actor,
        automatic=event.automatic,
        late=event.late,
        source=source_of(event),
    )


def _correction(event: OutcomeCorrected) -> Selection:
    return Selection(
        code=event.outcome_code,
        definition=event.definition,
        actor=event.actor,
        corrected_from=event.previous_code,
        source=source_of(event),
    )


# -- calls ------------------------------------------------------------------------------------------


@singledispatch
def _call(event: DomainEvent, state: Call | None) -> Call:
    raise TypeError(f"a call does not apply {type(event).__name__}")


@_call.register
def _(event: CallStarted, state: Call | None) -> Call:
    return Call(
        id=event.originator_id,
        version=event.originator_version,
        tenant_id=event.tenant_id,
        call_id=event.call_id,
        project_id=event.project_id,
        direction=event.direction,
        started_at=event.occurred_at,
        conversation_id=event.conversation_id,
        agent_id=event.agent_id,
        contact_id=event.contact_id,
        contact_number=event.contact_number,
    )


@_call.register
def _(event: CallAnswered, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, answered_at=event.occurred_at, agent_id=event.agent_id or state.agent_id)


@_call.register
def _(event: AgentConnected, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, agent_connected_at=event.occurred_at, agent_id=event.agent_id)


@_call.register
def _(event: CallUnanswered, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, unanswered_status=event.telephony_status)


@_call.register
def _(event: CallEnded, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, ended_at=event.occurred_at, termination_reason=event.termination_reason)


@_call.register
def _(event: OutcomeSelected, state: Call | None) -> Call:
    assert state is not None
    if event.late:
        return msgspec.structs.replace(state, late_results=(*state.late_results, _selection(event)))
    return msgspec.structs.replace(state, outcome=_selection(event), wrap_up_due_at=None)


@_call.register
def _(event: OutcomeCorrected, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, outcome=_correction(event))


@_call.register
def _(event: WrapUpTimerSet, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, wrap_up_due_at=event.due_at)


@_call.register
def _(event: RecordingAttached, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, references=(*state.references, event.reference))


@_call.register
def _(event: QaVerdictRecorded, state: Call | None) -> Call:
    assert state is not None
    return state  # reports read verdicts (projections/interactions.py); no rule does


# -- conversations -------------------------------------------------------------------------------------


@singledispatch
def _conversation(event: DomainEvent, state: Conversation | None) -> Conversation:
    raise TypeError(f"a conversation does not apply {type(event).__name__}")


@_conversation.register
def _(event: ConversationStarted, state: Conversation | None) -> Conversation:
    return Conversation(
        id=event.originator_id,
        version=event.originator_version,
        tenant_id=event.tenant_id,
        conversation_id=event.conversation_id,
        project_id=event.project_id,
        channel=event.channel,
        started_at=event.occurred_at,
        contact_id=event.contact_id,
    )


@_conversation.register
def _(event: MessageRecorded, state: Conversation | None) -> Conversation:
    assert state is not None
    return state


@_conversation.register
def _(event: OutcomeSelected, state: Conversation | None) -> Conversation:
    assert state is not None
    return msgspec.structs.replace(state, outcomes=(*state.outcomes, _selection(event)))


@_conversation.register
def _(event: OutcomeCorrected, state: Conversation | None) -> Conversation:
    assert state is not None
    index = state._closing_index()
    assert index is not None  # the rules correct only a conversation that has its outcome
    outcomes = (*state.outcomes[:index], _correction(event), *state.outcomes[index + 1 :])
    return msgspec.structs.replace(state, outcomes=outcomes)


@_conversation.register
def _(event: ConversationClosed, state: Conversation | None) -> Conversation:
    assert state is not None
    return msgspec.structs.replace(state, closed_at=event.occurred_at, close_cause=event.cause, flow=None)


@_conversation.register
def _(event: FlowReturned, state: Conversation | None) -> Conversation:
    assert state is not None
    return msgspec.structs.replace(state, flow=None)


@_conversation.register
def _(event: FlowRedirected, state: Conversation | None) -> Conversation:
    assert state is not None
    return msgspec.structs.replace(state, flow=event.flow)


@_conversation.register
def _(event: RecordingAttached, state: Conversation | None) -> Conversation:
    assert state is not None
    return msgspec.structs.replace(state, references=(*state.references, event.reference))


@_conversation.register
def _(event: QaVerdictRecorded, state: Conversation | None) -> Conversation:
    assert state is not None
    return state  # reports read verdicts (projections/interactions.py); no rule does


@singledispatch
def _contact(event: DomainEvent, state: Contact | None) -> Contact:
    raise TypeError(f"a contact does not apply {type(event).__name__}")


@_contact.register
def _(event: ContactSaved, state: Contact | None) -> Contact:
    base = state or Contact(id=event.originator_id, version=0, tenant_id=event.tenant_id, contact_id=event.contact_id)
    return msgspec.structs.replace(
        base,
        name=event.name,
        numbers=event.numbers,
        time_zone=event.time_zone,
        company_id=event.company_id,
        contact_list=event.contact_list,
    )


@_contact.register
def _(event: ContactOptedOut, state: Contact | None) -> Contact:
    base = state or Contact(id=event.originator_id, version=0, tenant_id=event.tenant_id, contact_id=event.contact_id)
    return msgspec.structs.replace(base, opted_out=tuple(sorted({*base.opted_out, event.channel})))


@_contact.register
def _(event: ContactErased, state: Contact | None) -> Contact:
    base = state or Contact(id=event.originator_id, version=0, tenant_id=event.tenant_id, contact_id=event.contact_id)
    return msgspec.structs.replace(base, name=None, numbers=(), erased=True)


def _projector(mutate: Callable[[DomainEvent, S | None], S]) -> Callable[[S | None, Iterable[DomainEvent]], S | None]:
    """eventsourcing's projector function for a state: fold events with its mutator, each
    event's version becoming the state's."""

    def project(state: S | None, events: Iterable[DomainEvent]) -> S | None:
        for event in events:
            state = msgspec.structs.replace(mutate(event, state), version=event.originator_version)
        return state

    return project


Projector = Callable[[S | None, Iterable[DomainEvent]], S | None]
project_call: Projector[Call] = _projector(_call)
project_conversation: Projector[Conversation] = _projector(_conversation)
project_contact: Projector[Contact] = _projector(_contact)
