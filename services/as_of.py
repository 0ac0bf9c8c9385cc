"""State "as of" a past moment (PRODUCT.md §5): a project's outcome set, a call, a conversation.

An aggregate's state at a moment is its mutator applied to the prefix of its events (by
version) that the moment includes. A moment is a time -- compared with each event's
``recorded_at``, when Outcome Ledger stored it (configuration events have no other time;
for facts, ``occurred_at`` is the platform's claim and may arrive late or out of order) --
and/or a log position (notification id): an event is included when it was recorded at or
before the time and written at or before the position. The prefix stops at the first
event left out, so the state is always one the aggregate really had.

Reading writes nothing: the events come from the aggregate's index and the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from events.codec import DomainEvent, StructMapper
from events.compact import aggregate_index
from events.keys import encode_originator_id
from events.store import RedisApplicationRecorder
from services.catalogue import Catalogue, project_catalogue
from services.errors import BadRequest, NotFound
from services.interactions import Call, Conversation, aggregate_id, project_call, project_conversation
from services.ledger import Ledger, OutcomeSet, outcome_set_of

S = TypeVar("S")


class Moment(msgspec.Struct, frozen=True, kw_only=True):
    """A past moment: a time (events recorded at or before it), a log position, or both."""

    at: datetime | None = None
    position: int | None = None

    def check(self) -> Moment:
        if self.at is None and self.position is None:
            raise BadRequest("give the moment: 'at' (an ISO 8601 time with a time zone) and/or 'position'")
        if self.at is not None and self.at.tzinfo is None:
            raise BadRequest("'at' needs a time zone (e.g. 2026-11-22T09:00:00Z)")
        if self.position is not None and self.position < 1:
            raise BadRequest("'position' is a log position: 1 or more")
        return self

    def includes(self, position: int, event: DomainEvent) -> bool:
        return (self.at is None or event.recorded_at <= self.at) and (
            self.position is None or position <= self.position
        )


class AsOf(msgspec.Struct, frozen=True, kw_only=True):
    """What a state "as of" is made of: the aggregate's version then, and its last event."""

    at: datetime | None
    position: int | None
    #: the aggregate's version at the moment (its events included)
    version: int
    #: the log position and recorded time of the last event included
    last_position: int
    last_recorded_at: datetime


class OutcomeSetAsOf(msgspec.Struct, frozen=True, kw_only=True):
    as_of: AsOf
    outcome_set: OutcomeSet
    #: global outcomes hidden in the project then
    hidden: list[str]


class CallAsOf(msgspec.Struct, frozen=True, kw_only=True):
    as_of: AsOf
    call: Call
    telephony_status: str | None


class ConversationAsOf(msgspec.Struct, frozen=True, kw_only=True):
    as_of: AsOf
    conversation: Conversation


# -- pure --------------------------------------------------------------------------------------------


def included(history: Iterable[tuple[int, DomainEvent]], moment: Moment) -> list[tuple[int, DomainEvent]]:
    """The events (with their log positions) the moment includes: a prefix by version."""
    out = []
    for position, event in history:
        if not moment.includes(position, event):
            break
        out.append((position, event))
    return out


def state_as_of(
    history: Iterable[tuple[int, DomainEvent]],
    moment: Moment,
    projector: Callable[[Any, Iterable[DomainEvent]], S | None],
) -> tuple[S, AsOf] | None:
    """The state the events give at the moment, or None when the aggregate did not exist yet."""
    found = included(history, moment)
    state = projector(None, (event for _, event in found))
    if state is None or not found:
        return None
    position, last = found[-1]
    as_of = AsOf(
        at=moment.at,
        position=moment.position,
        version=last.originator_version,
        last_position=position,
        last_recorded_at=last.recorded_at,
    )
    return state, as_of


# -- reading -----------------------------------------------------------------------------------------


def history(ledger: Ledger, originator_id: UUID) -> list[tuple[int, DomainEvent]]:
    """Every event of an aggregate with its log position, in version order."""
    recorder = ledger.recorder
    assert isinstance(recorder, RedisApplicationRecorder)
    stored = recorder.select_events(originator_id)
    # the index after the events: it names every event read (and perhaps newer ones)
    index = aggregate_index(recorder.conn.client, recorder.keys, encode_originator_id(originator_id))
    positions = dict(index)
    mapper = ledger.mapper
    assert isinstance(mapper, StructMapper)
    return [(positions[s.originator_version], mapper.decode(s.topic, s.state)) for s in stored]


def _as_of(
    ledger: Ledger,
    originator_id: UUID,
    moment: Moment,
    projector: Callable[[Any, Iterable[DomainEvent]], S | None],
    what: str,
) -> tuple[S, AsOf]:
    found = state_as_of(history(ledger, originator_id), moment.check(), projector)
    if found is None:
        raise NotFound(f"{what} not found at that moment")
    return found


def catalogue_as_of(ledger: Ledger, tenant_id: str, moment: Moment) -> tuple[Catalogue, AsOf]:
    return _as_of(ledger, aggregate_id(tenant_id, "catalogue"), moment, project_catalogue, "tenant")


def outcome_set_as_of(ledger: Ledger, tenant_id: str, project_id: str, moment: Moment) -> OutcomeSetAsOf:
    catalogue, as_of = catalogue_as_of(ledger, tenant_id, moment)
    picker = outcome_set_of(catalogue, project_id)  # 404 for a project that did not exist then
    return OutcomeSetAsOf(as_of=as_of, outcome_set=picker, hidden=sorted(catalogue.projects[project_id].hidden))


def call_as_of(ledger: Ledger, tenant_id: str, call_id: str, moment: Moment) -> CallAsOf:
    call, as_of = _as_of(ledger, aggregate_id(tenant_id, "call", call_id), moment, project_call, f"call {call_id!r}")
    return CallAsOf(as_of=as_of, call=call, telephony_status=call.telephony_status)


def conversation_as_of(ledger: Ledger, tenant_id: str, conversation_id: str, moment: Moment) -> ConversationAsOf:
    conversation, as_of = _as_of(
        ledger,
        aggregate_id(tenant_id, "conversation", conversation_id),
        moment,
        project_conversation,
        f"conversation {conversation_id!r}",
    )
    return ConversationAsOf(as_of=as_of, conversation=conversation)
