"""The interactions view: one record per call and conversation, and the indexes the rates,
the history table and sampling read (PRODUCT.md §4; docs/reports.md).

Unlike the outcome mix (pre-aggregated counters), this view keeps each interaction whole --
its facts, every selection (kept-active, late, as corrected), its corrections with both
values, the recording/transcript references and its QA verdicts -- because the history table shows rows,
sampling draws rows, and the rates need per-call times and the contact's later
conversations (first-call resolution), which do not fold into counters exactly.

Keys (prefix ``ShardKeys.view("interactions")``, in the shard's slot):

* ``i:<tenant>`` hash: "<kind>:<id>" -> json(Record)
* ``z:<tenant>`` sorted set: "<kind>:<id>" by start (epoch microseconds): the history order
* ``s:<tenant>:<code>`` sorted set: the interactions showing outcome ``code`` (any of their
  selections, as corrected), by start: the history's outcome filter and sampling
* ``p:<tenant>:<project>:<day>`` hash: "<kind>:<id>" -> "1": a project's interactions of one
  tenant-local day (the rates' period)
* ``k:<tenant>:<project>:<contact>`` sorted set: conversation id by start (first-call
  resolution: "no further conversation within 7 days")
* ``o:<tenant>`` hash: json([project or null, code]) -> json(Flags) as defined now
* ``tz`` hash: tenant -> time zone

State and indexes are written with the position in one script (projections.base.View),
so a rebuild from 0 gives the same keys. The view keeps the records it wrote in memory
while the position stays the one its own last commit set (a catch-up from 0 then reads no
record back); otherwise a batch loads only the records its events touch that memory lacks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import redis

from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.types import (
    AgentConnected,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallUnanswered,
    ConversationClosed,
    ConversationStarted,
    OutcomeChanged,
    OutcomeCorrected,
    OutcomeDefined,
    OutcomeDefinition,
    OutcomeSelected,
    QaVerdictRecorded,
    RecordingAttached,
    TenantCreated,
)
from projections import cold
from projections.base import Changes, Score, View

NAME = "interactions"
NO_OUTCOME = "-"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Flags(msgspec.Struct, frozen=True, array_like=True):
    """The definition flags the rates read."""

    contact: bool = False
    presentation: bool = False
    success: bool = False
    first_call_resolution: bool = False


class Selection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One outcome selection as it stands (a correction replaces code, flags, revenue)."""

    code: str
    at: datetime
    actor: str
    agent: str | None = None
    by_system: bool = False
    late: bool = False
    revenue: Decimal | None = None
    flags: Flags = Flags()
    #: the definition's implied telephony status (used when the call facts report none)
    telephony_status: str | None = None
    corrected: bool = False


class Correction(msgspec.Struct, frozen=True, kw_only=True):
    """A correction, with both values: the history table shows it."""

    at: datetime
    actor: str
    previous_code: str | None
    outcome_code: str
    reason: str


class Reference(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    reference: str
    at: datetime


class Verdict(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A QA reviewer's verdict: each reviewer's latest one per interaction stands."""

    reviewer: str
    #: the outcome reviewed (the one that stood when the verdict was given)
    outcome_code: str
    verdict: str
    should_have_been: str | None = None
    at: datetime


class Record(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One call or conversation, whole. Stored as JSON without the fields at their default
    (a third of the bytes to send, log and keep; a record stored with them reads the same)."""

    kind: str
    id: str
    #: the aggregate's id: tells a call from a conversation of the same id for a reference
    originator: str
    project: str
    channel: str
    started_at: datetime
    #: tenant-local date of the start, ISO
    day: str
    direction: str | None = None
    contact: str | None = None
    #: the agent the call facts name (last of started/answered/connected)
    fact_agent: str | None = None
    agent_connected: bool = False
    answered_at: datetime | None = None
    unanswered_status: str | None = None
    ended_at: datetime | None = None
    termination_reason: str | None = None
    closed_at: datetime | None = None
    selections: tuple[Selection, ...] = ()
    corrections: tuple[Correction, ...] = ()
    references: tuple[Reference, ...] = ()
    #: QA verdicts, one per reviewer (their latest), in the order first given
    verdicts: tuple[Verdict, ...] = ()

    @property
    def member(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def outcome(self) -> Selection | None:
        """The outcome that stands: the last one selected during the interaction (a call's
        one, a conversation's latest -- its closing one once closed), as corrected."""
        during = [s for s in self.selections if not s.late]
        return during[-1] if during else None

    @property
    def agent(self) -> str | None:
        """The agent of the outcome that stands, else the one the call facts name."""
        o = self.outcome
        return o.agent if o is not None and o.agent is not None else self.fact_agent

    @property
    def telephony_status(self) -> str | None:
        """From the call facts; the outcome's implied status only when none was reported."""
        if self.answered_at is not None:
            return "person"
        if self.unanswered_status is not None:
            return self.unanswered_status
        o = self.outcome
        return o.telephony_status if o is not None else None

    @property
    def finished_at(self) -> datetime | None:
        return self.ended_at if self.kind == "call" else self.closed_at

    @property
    def codes(self) -> set[str]:
        """Every outcome code the row shows (kept-active, late, as corrected)."""
        return {s.code for s in self.selections}


def micros(at: datetime) -> int:
    """Exact epoch microseconds (a sorted-set score; exact below 2**53)."""
    return (at - EPOCH) // timedelta(microseconds=1)


def flags_of(d: OutcomeDefinition) -> Flags:
    f = d.flags
    return Flags(f.contact, f.presentation, f.success, f.first_call_resolution)


def _key(keys: ShardKeys, *parts: str) -> str:
    return keys.view(NAME) + ":".join(parts)


def _pack(value: object) -> str:
    # JSON text: the script's cmsgpack cannot take msgpack bin values
    return msgspec.json.encode(value).decode()


_record = msgspec.json.Decoder(Record)


# -- the pure part: events -> records --------------------------------------------------------------


def _selector(actor: str, agent_id: str | None) -> str | None:
    if agent_id is not None:
        return agent_id
    return actor.removeprefix("agent:") if actor.startswith("agent:") else None


def started(event: CallStarted | ConversationStarted, tz: str | None) -> Record:
    day = event.occurred_at.astimezone(ZoneInfo(tz or "UTC")).date().isoformat()
    common = {"originator": str(event.originator_id), "started_at": event.occurred_at, "day": day}
    if isinstance(event, CallStarted):
        return Record(
            kind="call",
            id=event.call_id,
            project=event.project_id,
            channel=event.channel,
            direction=event.direction,
            contact=event.contact_id,
            fact_agent=event.agent_id,
            agent_connected=event.agent_id is not None,
            **common,  # type: ignore[arg-type]
        )
    return Record(
        kind="conversation",
        id=event.conversation_id,
        project=event.project_id,
        channel=event.channel,
        contact=event.contact_id,
        **common,  # type: ignore[arg-type]
    )


def selected(r: Record, event: OutcomeSelected) -> Record:
    s = Selection(
        code=event.outcome_code,
        at=event.occurred_at,
        actor=event.actor,
        agent=_selector(event.actor, event.agent_id) or r.fact_agent,
        by_system=event.actor == "system",
        late=event.late,
        revenue=event.revenue,
        flags=flags_of(event.definition),
        telephony_status=event.definition.telephony_status,
    )
    return msgspec.structs.replace(r, selections=(*r.selections, s))


def corrected(r: Record, event: OutcomeCorrected) -> Record:
    """The correction replaces the outcome that stands (the last one selected during the
    interaction), keeping who it is attributed to and when it was selected."""
    during = [n for n, s in enumerate(r.selections) if not s.late]
    replacing = {
        "code": event.outcome_code,
        "revenue": event.revenue,
        "flags": flags_of(event.definition),
        "telephony_status": event.definition.telephony_status,
        "corrected": True,
    }
    selections = list(r.selections)
    if during:
        selections[during[-1]] = msgspec.structs.replace(selections[during[-1]], **replacing)
    else:  # nothing to replace (not in an accepted history): it stands on its own
        selections.append(
            Selection(at=event.occurred_at, actor=event.actor, by_system=event.actor == "system", **replacing)  # type: ignore[arg-type]
        )
    c = Correction(
        at=event.occurred_at,
        actor=event.actor,
        previous_code=r.selections[during[-1]].code if during else event.previous_code,
        outcome_code=event.outcome_code,
        reason=event.reason,
    )
    return msgspec.structs.replace(r, selections=tuple(selections), corrections=(*r.corrections, c))


def reviewed(r: Record, event: QaVerdictRecorded) -> Record:
    """A reviewer's verdict; their later one replaces their earlier one in place."""
    v = Verdict(
        reviewer=event.actor,
        outcome_code=event.outcome_code,
        verdict=event.verdict,
        should_have_been=event.should_have_been,
        at=event.recorded_at,
    )
    kept = [v if old.reviewer == v.reviewer else old for old in r.verdicts]
    if v not in kept:
        kept.append(v)
    return msgspec.structs.replace(r, verdicts=tuple(kept))


def answered(r: Record, event: CallAnswered) -> Record:
    if event.agent_id is None:
        return msgspec.structs.replace(r, answered_at=event.occurred_at)
    return msgspec.structs.replace(r, answered_at=event.occurred_at, fact_agent=event.agent_id, agent_connected=True)


def connected(r: Record, event: AgentConnected) -> Record:
    return msgspec.structs.replace(r, fact_agent=event.agent_id, agent_connected=True)


def unanswered(r: Record, event: CallUnanswered) -> Record:
    return msgspec.structs.replace(r, unanswered_status=event.telephony_status)


def ended(r: Record, event: CallEnded) -> Record:
    return msgspec.structs.replace(r, ended_at=event.occurred_at, termination_reason=event.termination_reason)


def closed(r: Record, event: ConversationClosed) -> Record:
    return msgspec.structs.replace(r, closed_at=event.occurred_at)


def attached(r: Record, event: RecordingAttached) -> Record:
    ref = Reference(kind=event.kind, reference=event.reference, at=event.occurred_at)
    return msgspec.structs.replace(r, references=(*r.references, ref))


#: what each event type does to the record of the interaction it is about, once started
#: (looked up by exact type: no event type subclasses another)
STEPS: dict[type[DomainEvent], Callable[[Record, Any], Record]] = {
    CallAnswered: answered,
    AgentConnected: connected,
    CallUnanswered: unanswered,
    CallEnded: ended,
    ConversationClosed: closed,
    OutcomeSelected: selected,
    OutcomeCorrected: corrected,
    QaVerdictRecorded: reviewed,
    RecordingAttached: attached,
}
STARTS: frozenset[type[DomainEvent]] = frozenset({CallStarted, ConversationStarted})


def fold_record(r: Record | None, event: DomainEvent, tz: str | None) -> Record | None:
    """One interaction's record after one event about it."""
    if type(event) in STARTS:
        return started(event, tz)  # type: ignore[arg-type]
    step = STEPS.get(type(event))
    if r is None or step is None:
        return r  # no start (not in an accepted history), or nothing the record shows
    return step(r, event)


#: (tenant, kind, id): one interaction
Ident = tuple[str, str, str]


def _call(event: Any) -> list[Ident]:
    return [(event.tenant_id, "call", event.call_id)]


def _conversation(event: Any) -> list[Ident]:
    return [(event.tenant_id, "conversation", event.conversation_id)]


def _named(event: Any) -> list[Ident]:
    return [(event.tenant_id, event.interaction, event.interaction_id)]


def _either(event: Any) -> list[Ident]:
    return [(event.tenant_id, "call", event.interaction_id), (event.tenant_id, "conversation", event.interaction_id)]


_TARGETS: dict[type[DomainEvent], Callable[[Any], list[Ident]]] = {
    **dict.fromkeys((CallStarted, CallAnswered, AgentConnected, CallUnanswered, CallEnded), _call),
    **dict.fromkeys((ConversationStarted, ConversationClosed), _conversation),
    **dict.fromkeys((OutcomeSelected, OutcomeCorrected, QaVerdictRecorded), _named),
    RecordingAttached: _either,
}
#: the event types the view reads (the others are not even decoded)
_READ: tuple[type[DomainEvent], ...] = (*_TARGETS, TenantCreated, OutcomeDefined, OutcomeChanged)
TOPICS = frozenset(t.type_name for t in _READ)


def targets(event: DomainEvent) -> list[Ident]:
    """(tenant, kind, id) of the interactions an event may be about. A reference names only an id:
    both kinds are candidates, the one whose aggregate recorded it is meant."""
    of = _TARGETS.get(type(event))
    return of(event) if of is not None else []


@dataclass
class State:
    tz: dict[str, str | None] = field(default_factory=dict)
    records: dict[Ident, Record | None] = field(default_factory=dict)
    #: holds every record and time zone the view has (one absent here is absent in Redis)
    complete: bool = False


@dataclass
class Folded:
    """What a batch changed, each with its value before the batch."""

    records: dict[Ident, Record | None] = field(default_factory=dict)
    zones: dict[str, str | None] = field(default_factory=dict)


def _about(state: State, event: DomainEvent) -> Ident | None:
    candidates = targets(event)
    if len(candidates) == 1:
        return candidates[0]
    for ident in candidates:  # a reference: the record its aggregate started
        r = state.records.get(ident)
        if r is not None and r.originator == str(event.originator_id):
            return ident
    return None


def fold(state: State, events: Iterable[DomainEvent]) -> Folded:
    """Fold a batch into the state, in log order; returns what it changed."""
    out = Folded()
    records, zones = state.records, state.tz
    for event in events:
        if type(event) is TenantCreated:
            out.zones.setdefault(event.tenant_id, zones.get(event.tenant_id))
            zones[event.tenant_id] = event.time_zone
            continue
        ident = _about(state, event)
        if ident is None:
            continue
        before = records.get(ident)
        after = fold_record(before, event, zones.get(event.tenant_id))
        if after != before:
            records[ident] = after
            out.records.setdefault(ident, before)
    return out


def index_moves(prefix: str, tenant: str, before: Record | None, after: Record | None) -> list[Score]:
    """The sorted-set writes that move one record's index entries from before to after
    (``prefix``: the view's, ``ShardKeys.view``); none for an index whose entry stays."""
    out: list[Score] = []
    old_codes = before.codes if before is not None else set()
    if after is not None:
        score = str(micros(after.started_at))
        if before is None:
            out.append((f"{prefix}z:{tenant}", after.member, score))
            if after.kind == "conversation" and after.contact is not None:
                out.append((f"{prefix}k:{tenant}:{after.project}:{after.contact}", after.id, score))
        new_codes = after.codes
        if new_codes != old_codes:
            out.extend((f"{prefix}s:{tenant}:{code}", after.member, score) for code in sorted(new_codes - old_codes))
    else:
        new_codes = set()
    if before is not None and old_codes != new_codes:
        out.extend((f"{prefix}s:{tenant}:{code}", before.member, None) for code in sorted(old_codes - new_codes))
    return out


# -- the view ------------------------------------------------------------------------------------------

#: records kept in memory between batches at most (~0.7-1 KB each: ~100 MB; the oldest seen
#: go first; a record not in memory is read from Redis)
MEMORY_CAP = 100_000


class InteractionsView(View):
    """Keeps the records it wrote in memory between batches while the view's position is
    the one its own last commit moved it to (in the same generation): a catch-up then reads
    from Redis only the records of interactions its memory has not seen."""

    def __init__(
        self,
        client: redis.Redis,
        keys: ShardKeys,
        mapper: StructMapper,
        batch_size: int = 1000,
        *,
        follow: bool = True,
        memory_cap: int = MEMORY_CAP,
    ) -> None:
        super().__init__(NAME, None, client, keys, mapper, batch_size, follow=follow, topics=TOPICS)
        self.memory_cap = memory_cap
        #: the view as this process's last commit left it (``View.own_state_at``)
        self._memory = State()

    def commit(self, position: int, last: int, events: Sequence[DomainEvent]) -> int:
        if not self.own_state_at(position):
            # someone else wrote since (or nothing is kept): start afresh; at position 0 the
            # view has no keys (drop deletes them, a commit writes them with the position)
            self._memory = State(complete=position == 0)
        done = super().commit(position, last, events)
        if done == 1:
            forget_oldest(self._memory, self.memory_cap)
        return done

    def load(self, state: State, events: Sequence[DomainEvent], prefix: str) -> None:
        """Add to the state the tenants' time zones and the records the batch names that it
        lacks, in one round trip."""
        if state.complete:
            return
        zones: dict[str, None] = {}
        # per tenant, the (kind, id) the batch names and the state lacks, once each
        wanted: dict[str, dict[tuple[str, str], None]] = defaultdict(dict)
        records = state.records
        # an interaction whose first event in the batch starts it has no row yet: not asked for
        fresh = cold.opened(events, lambda e: [ident[1:] for ident in targets(e)])
        for e in events:
            t = e.tenant_id
            if t not in state.tz:
                zones[t] = None
            for ident in targets(e):
                if ident not in records:
                    if f"{t} {ident[1]}:{ident[2]}" in fresh:
                        records[ident] = None
                    else:
                        wanted[t][ident[1:]] = None
        if not zones and not wanted:
            return
        self.settle()  # a commit still running may write what is read (View.settle)
        pipe = self.client.pipeline(transaction=False)
        for t in zones:
            pipe.hget(prefix + "tz", t)
        for t, names in wanted.items():
            pipe.hmget(f"{prefix}i:{t}", [f"{k}:{i}" for k, i in names])
        replies = iter(pipe.execute())
        for t in zones:
            tz = next(replies)
            state.tz[t] = tz.decode() if tz else None
        for t, names in wanted.items():
            # rows of archived interactions are in the archive (projections/cold.py)
            found = cold.fill(self.client, self.keys, NAME, t, [f"{k}:{i}" for k, i in names], next(replies))
            for (kind, id_), raw in zip(names, found, strict=True):
                records[(t, kind, id_)] = _record.decode(raw) if raw else None

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        prefix = self.keys.view(NAME)
        state = self._memory
        self.load(state, events, prefix)
        folded = fold(state, events)
        out = Changes()
        for t, was in folded.zones.items():
            tz = state.tz[t]
            if tz is not None and tz != was:
                out.assignments.append((prefix + "tz", t, tz))
        for event in events:
            # the catalogue as defined now (later events of the batch overwrite earlier ones)
            if isinstance(event, OutcomeDefined | OutcomeChanged):
                d = event.definition
                field_ = _pack([event.project_id, d.code])
                out.assignments.append((f"{prefix}o:{event.tenant_id}", field_, _pack(flags_of(d))))
        for ident in sorted(folded.records):
            t, kind, id_ = ident
            old, new = folded.records[ident], state.records[ident]
            member = f"{kind}:{id_}"
            # each interaction once per batch: its row and index entries are written once
            out.set_once(f"{prefix}i:{t}", member, _pack(new) if new else None)
            if new is not None and old is None:
                out.set_once(f"{prefix}p:{t}:{new.project}:{new.day}", member, "1")
            for key, entry, score in index_moves(prefix, t, old, new):
                out.score_once(key, entry, score)
        return out


def forget_oldest(state: State, cap: int) -> None:
    """Keep at most ``cap`` records, dropping those first seen longest ago (to be read
    from Redis again when named)."""
    excess = len(state.records) - cap
    if excess > 0:
        state.complete = False
        for ident in list(islice(state.records, excess)):
            del state.records[ident]


# -- reading records -----------------------------------------------------------------------------------


#: members per HMGET: a period of a large project names millions of them, and one command
#: that size holds Redis (and every other client) for seconds
READ_CHUNK = 10_000


def records(client: redis.Redis, keys: ShardKeys, tenant: str, members: Sequence[str]) -> list[Record | None]:
    """The records of these members, in their order (None for a member without one)."""
    if not members:
        return []
    pipe = client.pipeline(transaction=False)
    for first in range(0, len(members), READ_CHUNK):
        pipe.hmget(_key(keys, "i", tenant), list(members[first : first + READ_CHUNK]))
    found: list[bytes | None] = [raw for chunk in pipe.execute() for raw in chunk]
    found = cold.fill(client, keys, NAME, tenant, members, found)  # archived interactions' rows
    return [_record.decode(raw) if raw else None for raw in found]


def time_zone(client: redis.Redis, keys: ShardKeys, tenant: str) -> str:
    raw = client.hget(_key(keys, "tz"), tenant)
    return raw.decode() if isinstance(raw, bytes) else "UTC"


def key(keys: ShardKeys, *parts: str) -> str:
    """A key of this view (for the queries next to it)."""
    return _key(keys, *parts)
