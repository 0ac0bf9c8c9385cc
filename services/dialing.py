"""A contact's dialing record: what outcomes did to it in contact lists, folded from its
events (PRODUCT.md §3 "Contact lists").

One aggregate per tenant and contact (``aggregate_id(tenant, "dialing", contact_id)``) keeps
every effect on one contact in one order: a do-not-call and the correction that lifts it, a
move and a finalise, are applied in the order they were recorded. A company's record
(``"company-dialing"``) holds whole-company finals; a list's record (``"contact-list"``) its
reloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import singledispatch
from typing import Literal, TypeVar
from uuid import UUID

import msgspec

from events.codec import DomainEvent
from events.types import (
    AttemptsReset,
    AttemptsResetReverted,
    CallAttemptCounted,
    ContactFinalised,
    ContactListChangeReverted,
    ContactMovedToList,
    ContactRemovedFromList,
    DialingEvent,
    DialingUndo,
    DoNotCallAdded,
    DoNotCallLifted,
    FinalLifted,
    ListReloadRequested,
    RecallCalledBack,
    RecallCancelled,
    RecallHandedOver,
    RecallScheduled,
    RolledToProject,
    RollToProjectReverted,
    WaitingPeriodLifted,
    WaitingPeriodStarted,
)
from services.interactions import Contact, Projector, _projector


class Final(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    scope: Literal["project", "all"]
    at: datetime
    source: str


class DoNotCall(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    scope: Literal["project", "tenant"]
    number: str | None
    all_numbers: bool
    source: str

    def covers(self, project_id: str, number: str | None) -> bool:
        in_scope = self.scope == "tenant" or self.project_id == project_id
        return in_scope and (self.all_numbers or (number is not None and number == self.number))


class Recall(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    due_at: datetime
    max_attempts: int
    owner_agent: str | None
    handover_at: datetime | None
    agent_may_change_time: bool = False
    #: the calls linked to it, in order
    calls: tuple[str, ...] = ()
    called_back_by: str | None = None
    #: the hand-over was recorded (``RecallHandedOver``)
    handed_over: bool = False

    @property
    def open(self) -> bool:
        """Not yet called back, attempts left."""
        return self.called_back_by is None and len(self.calls) < self.max_attempts

    def owner_at(self, moment: datetime) -> str | None:
        """Who owns it at ``moment``: its agent until the hand-over, then anyone (None). By the
        clock, not only once ``RecallHandedOver`` is recorded: a late timer worker must not
        keep a recall from the dialer past its hand-over time."""
        if self.owner_agent is None or self.handed_over:
            return None
        if self.handover_at is not None and moment >= self.handover_at:
            return None
        return self.owner_agent


class WaitingPeriod(msgspec.Struct, frozen=True, kw_only=True):
    outcome_code: str
    until: datetime
    source: str


class DialingRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    #: set once a move or removal changed the contact's list: the list it is on now (None: none)
    list_changed: bool = False
    contact_list: str | None = None
    finals: tuple[Final, ...] = ()
    do_not_call: tuple[DoNotCall, ...] = ()
    #: project -> its latest recall
    recalls: dict[str, Recall] = {}
    #: project -> its latest waiting period
    waiting: dict[str, WaitingPeriod] = {}
    #: project -> outbound calls since the last reset
    attempts: dict[str, int] = {}
    #: project rolled out of -> project rolled to
    rolled: dict[str, str] = {}


class ContactListRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    contact_list: str
    reloaded_at: datetime | None = None


class DialingView(msgspec.Struct, frozen=True, kw_only=True):
    """What the dialability of a contact depends on, read together."""

    #: the contact was erased, or the number is an erased contact's (docs/erasure.md)
    erased: bool = False
    contact: Contact | None = None
    record: DialingRecord | None = None
    #: the contact's company's record (whole-company finals)
    company: DialingRecord | None = None
    #: when the project's contact list was last reloaded
    list_reloaded_at: datetime | None = None

    @property
    def time_zone(self) -> str:
        return self.contact.time_zone if self.contact else "UTC"

    def effective_list(self) -> str | None:
        return current_list(self.contact, self.record)


def current_list(contact: Contact | None, record: DialingRecord | None) -> str | None:
    """The list the contact is on: as moved or removed by outcomes, else as last saved."""
    if record is not None and record.list_changed:
        return record.contact_list
    return contact.contact_list if contact else None


def _new(event: DomainEvent, state: DialingRecord | None) -> DialingRecord:
    return state or DialingRecord(id=event.originator_id, version=0, tenant_id=event.tenant_id)


@singledispatch
def _dialing(event: DomainEvent, state: DialingRecord | None) -> DialingRecord:
    raise TypeError(f"a dialing record does not apply {type(event).__name__}")


@_dialing.register
def _(event: ContactRemovedFromList, state: DialingRecord | None) -> DialingRecord:
    return msgspec.structs.replace(_new(event, state), list_changed=True, contact_list=None)


@_dialing.register
def _(event: ContactMovedToList, state: DialingRecord | None) -> DialingRecord:
    return msgspec.structs.replace(_new(event, state), list_changed=True, contact_list=event.to_list)


@_dialing.register
def _(event: ContactFinalised, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    final = Final(project_id=event.project_id, scope=event.scope, at=event.occurred_at, source=event.source)
    return msgspec.structs.replace(base, finals=(*base.finals, final))


@_dialing.register
def _(event: DoNotCallAdded, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    entry = DoNotCall(
        project_id=event.project_id,
        scope=event.scope,
        number=event.number,
        all_numbers=event.all_numbers,
        source=event.source,
    )
    return msgspec.structs.replace(base, do_not_call=(*base.do_not_call, entry))


@_dialing.register
def _(event: RecallScheduled, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    recall = Recall(
        source=event.source,
        due_at=event.due_at,
        max_attempts=event.max_attempts,
        owner_agent=event.owner_agent,
        handover_at=event.handover_at,
        agent_may_change_time=event.agent_may_change_time,
    )
    return msgspec.structs.replace(base, recalls={**base.recalls, event.project_id: recall})


@_dialing.register
def _(event: RecallCalledBack, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    recall = msgspec.structs.replace(base.recalls[event.project_id], called_back_by=event.call_id)
    return msgspec.structs.replace(base, recalls={**base.recalls, event.project_id: recall})


@_dialing.register
def _(event: RolledToProject, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    # rolled back into a project it had left: it is that project's again
    rolled = {k: v for k, v in base.rolled.items() if k != event.to_project}
    return msgspec.structs.replace(base, rolled={**rolled, event.project_id: event.to_project})


@_dialing.register
def _(event: WaitingPeriodStarted, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    period = WaitingPeriod(outcome_code=event.outcome_code, until=event.until, source=event.source)
    return msgspec.structs.replace(base, waiting={**base.waiting, event.project_id: period})


@_dialing.register
def _(event: AttemptsReset, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    return msgspec.structs.replace(base, attempts={**base.attempts, event.project_id: 0})


@_dialing.register
def _(event: CallAttemptCounted, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    recalls = base.recalls
    if event.recall is not None:
        recall = recalls[event.project_id]
        recalls = {**recalls, event.project_id: msgspec.structs.replace(recall, calls=(*recall.calls, event.call_id))}
    return msgspec.structs.replace(base, attempts={**base.attempts, event.project_id: event.attempts}, recalls=recalls)


@_dialing.register
def _(event: RecallHandedOver, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    recall = base.recalls.get(event.project_id)
    if recall is None or recall.source != event.recall:
        return base
    recall = msgspec.structs.replace(recall, handed_over=True)
    return msgspec.structs.replace(base, recalls={**base.recalls, event.project_id: recall})


# -- undone by a correction: each takes away only the corrected selection's own entry ---------------


_Sourced = TypeVar("_Sourced", Recall, WaitingPeriod)


def _without(entries: dict[str, _Sourced], event: DialingUndo) -> dict[str, _Sourced]:
    """The project's entry taken away -- only while it is still the replaced selection's."""
    return {p: e for p, e in entries.items() if not (p == event.project_id and e.source == event.replaced)}


@_dialing.register
def _(event: RecallCancelled, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    return msgspec.structs.replace(base, recalls=_without(base.recalls, event))


@_dialing.register
def _(event: ContactListChangeReverted, state: DialingRecord | None) -> DialingRecord:
    return msgspec.structs.replace(
        _new(event, state), list_changed=not event.as_saved, contact_list=None if event.as_saved else event.contact_list
    )


@_dialing.register
def _(event: RollToProjectReverted, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    rolled = {k: v for k, v in base.rolled.items() if not (k == event.project_id and v == event.to_project)}
    return msgspec.structs.replace(base, rolled=rolled)


@_dialing.register
def _(event: WaitingPeriodLifted, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    return msgspec.structs.replace(base, waiting=_without(base.waiting, event))


@_dialing.register
def _(event: AttemptsResetReverted, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    return msgspec.structs.replace(base, attempts={**base.attempts, event.project_id: event.attempts})


@_dialing.register
def _(event: FinalLifted, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    return msgspec.structs.replace(base, finals=tuple(f for f in base.finals if f.source != event.replaced))


@_dialing.register
def _(event: DoNotCallLifted, state: DialingRecord | None) -> DialingRecord:
    base = _new(event, state)
    kept = tuple(d for d in base.do_not_call if d.source != event.replaced)
    return msgspec.structs.replace(base, do_not_call=kept)


@singledispatch
def _contact_list(event: DomainEvent, state: ContactListRecord | None) -> ContactListRecord:
    raise TypeError(f"a contact list does not apply {type(event).__name__}")


@_contact_list.register
def _(event: ListReloadRequested, state: ContactListRecord | None) -> ContactListRecord:
    base = state or ContactListRecord(
        id=event.originator_id, version=0, tenant_id=event.tenant_id, contact_list=event.contact_list
    )
    return msgspec.structs.replace(base, reloaded_at=event.occurred_at)


project_dialing: Projector[DialingRecord] = _projector(_dialing)
project_contact_list: Projector[ContactListRecord] = _projector(_contact_list)

#: every event that changes a contact's place in the lists: what dialers are told
CONTACT_LIST_CHANGES: tuple[type[DialingEvent], ...] = (
    ContactRemovedFromList,
    ContactMovedToList,
    ContactFinalised,
    ListReloadRequested,
    DoNotCallAdded,
    RecallScheduled,
    RecallCalledBack,
    RolledToProject,
    WaitingPeriodStarted,
    AttemptsReset,
    CallAttemptCounted,
    RecallHandedOver,
    RecallCancelled,
    ContactListChangeReverted,
    RollToProjectReverted,
    WaitingPeriodLifted,
    AttemptsResetReverted,
    FinalLifted,
    DoNotCallLifted,
)

#: the published stream of contact-list changes (docs/actions.md), one per tenant
STREAM = "contact-lists"


def published_changes(events: Sequence[object]) -> list[tuple[str, str, int, dict[str, str]]]:
    """(stream, tenant, index of the event in the save, entry fields) for each change a save
    records: written by the same script as the events, so a change is published exactly when
    it is recorded -- once."""
    return [
        (
            STREAM,
            event.tenant_id,
            index,
            {
                "id": f"{event.originator_id}/{event.originator_version}",
                "type": event.type_name,
                "contact_id": event.contact_id,
                "project_id": event.project_id,
                "source": event.source,
                "data": msgspec.json.encode(event).decode(),
            },
        )
        for index, event in enumerate(events)
        if isinstance(event, CONTACT_LIST_CHANGES)
    ]
