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
so a rebuild from 0 gives the same keys. A batch loads only the records its events touch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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


class Selection(msgspec.Struct, frozen=True, kw_only=True):
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


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """A QA reviewer's verdict: each reviewer's latest one per interaction stands."""

    reviewer: str
    #: the outcome reviewed (the one that stood when the verdict was given)
    outcome_code: str
    verdict: str
    should_have_been: str | None = None
    at: datetime


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """One call or conversation, whole."""

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


def fold_record(r: Record | None, event: DomainEvent, tz: str | None) -> Record | None:
    """One interaction's record after one event about it."""
    if isinstance(event, CallStarted | ConversationStarted):
        return started(event, tz)
    if r is None:
        return None  # the start is missing (not in an accepted history)
    if isinstance(event, CallAnswered):
        if event.agent_id is None:
            return msgspec.structs.replace(r, answered_at=event.occurred_at)
        return msgspec.structs.replace(
            r, answered_at=event.occurred_at, fact_agent=event.agent_id, agent_connected=True
        )
    if isinstance(event, AgentConnected):
        return msgspec.structs.replace(r, fact_agent=event.agent_id, agent_connected=True)
    if isinstance(event, CallUnanswered):
        return msgspec.structs.replace(r, unanswered_status=event.telephony_status)
    if isinstance(event, CallEnded):
        return msgspec.structs.replace(r, ended_at=event.occurred_at, termination_reason=event.termination_reason)
    if isinstance(event, ConversationClosed):
        return msgspec.structs.replace(r, closed_at=event.occurred_at)
    if isinstance(event, OutcomeSelected):
        return selected(r, event)
    if isinstance(event, OutcomeCorrected):
        return corrected(r, event)
    if isinstance(event, QaVerdictRecorded):
        return reviewed(r, event)
    if isinstance(event, RecordingAttached):
        ref = Reference(kind=event.kind, reference=event.reference, at=event.occurred_at)
        return msgspec.structs.replace(r, references=(*r.references, ref))
    return r


def targets(event: DomainEvent) -> list[tuple[str, str]]:
    """(kind, id) of the interactions an event may be about. A reference names only an id:
    both kinds are candidates, the one whose aggregate recorded it is meant."""
    if isinstance(event, CallStarted | CallAnswered | AgentConnected | CallUnanswered | CallEnded):
        return [("call", event.call_id)]
    if isinstance(event, ConversationStarted | ConversationClosed):
        return [("conversation", event.conversation_id)]
    if isinstance(event, OutcomeSelected | OutcomeCorrected | QaVerdictRecorded):
        return [(event.interaction, event.interaction_id)]
    if isinstance(event, RecordingAttached):
        return [("call", event.interaction_id), ("conversation", event.interaction_id)]
    return []


Ident = tuple[str, str, str]


@dataclass
class State:
    tz: dict[str, str | None] = field(default_factory=dict)
    records: dict[Ident, Record | None] = field(default_factory=dict)


def _about(state: State, event: DomainEvent) -> Ident | None:
    candidates = [(event.tenant_id, *t) for t in targets(event)]
    if len(candidates) == 1:
        return candidates[0]
    for ident in candidates:  # a reference: the record its aggregate started
        r = state.records.get(ident)
        if r is not None and r.originator == str(event.originator_id):
            return ident
    return None


def fold(state: State, events: Iterable[DomainEvent]) -> set[Ident]:
    """Fold a batch into the state, in log order; returns the records it changed."""
    changed: set[Ident] = set()
    for event in events:
        if isinstance(event, TenantCreated):
            state.tz[event.tenant_id] = event.time_zone
        ident = _about(state, event)
        if ident is None:
            continue
        after = fold_record(state.records.get(ident), event, state.tz.get(event.tenant_id))
        if after != state.records.get(ident):
            state.records[ident] = after
            changed.add(ident)
    return changed


def index_moves(keys: ShardKeys, tenant: str, before: Record | None, after: Record | None) -> list[Score]:
    """The sorted-set writes that move one record's index entries from before to after."""
    out: list[Score] = []
    if after is not None and before is None:
        score = str(micros(after.started_at))
        out.append((_key(keys, "z", tenant), after.member, score))
        if after.kind == "conversation" and after.contact is not None:
            out.append((_key(keys, "k", tenant, after.project, after.contact), after.id, score))
    old_codes = before.codes if before is not None else set()
    new_codes = after.codes if after is not None else set()
    if after is not None:
        score = str(micros(after.started_at))
        out.extend((_key(keys, "s", tenant, code), after.member, score) for code in sorted(new_codes - old_codes))
    if before is not None:
        out.extend((_key(keys, "s", tenant, code), before.member, None) for code in sorted(old_codes - new_codes))
    return out


# -- the view ------------------------------------------------------------------------------------------


class InteractionsView(View):
    def __init__(
        self, client: redis.Redis, keys: ShardKeys, mapper: StructMapper, batch_size: int = 1000, *, follow: bool = True
    ) -> None:
        super().__init__(NAME, None, client, keys, mapper, batch_size, follow=follow)

    def load(self, events: Sequence[DomainEvent]) -> State:
        """The tenants' time zones and the records the batch touches, in one round trip."""
        tenants = sorted({e.tenant_id for e in events})
        # per tenant, the (kind, id) the batch names, once each (a dict keeps their order)
        wanted: dict[str, dict[tuple[str, str], None]] = defaultdict(dict)
        for e in events:
            wanted[e.tenant_id].update(dict.fromkeys(targets(e)))
        pipe = self.client.pipeline(transaction=False)
        for t in tenants:
            pipe.hget(_key(self.keys, "tz"), t)
            pipe.hmget(_key(self.keys, "i", t), [f"{k}:{i}" for k, i in wanted[t]] or ["-"])
        replies = iter(pipe.execute())
        state = State()
        fresh = cold.opened(events, targets)
        for t in tenants:
            tz, found = next(replies), next(replies)
            # rows of archived interactions are in the archive (projections/cold.py)
            found = cold.fill(self.client, self.keys, NAME, t, [f"{k}:{i}" for k, i in wanted[t]], found, fresh)
            state.tz[t] = tz.decode() if tz else None
            for (kind, ident), raw in zip(wanted[t], found, strict=False):
                state.records[(t, kind, ident)] = _record.decode(raw) if raw else None
        return state

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        state = self.load(events)
        before = dict(state.records)
        zones = dict(state.tz)
        changed = fold(state, events)
        out = Changes()
        for t, tz in state.tz.items():
            if tz is not None and tz != zones.get(t):
                out.assignments.append((_key(self.keys, "tz"), t, tz))
        for event in events:
            # the catalogue as defined now (later events of the batch overwrite earlier ones)
            if isinstance(event, OutcomeDefined | OutcomeChanged):
                d = event.definition
                field_ = _pack([event.project_id, d.code])
                out.assignments.append((_key(self.keys, "o", event.tenant_id), field_, _pack(flags_of(d))))
        for ident in sorted(changed):
            t = ident[0]
            old, new = before.get(ident), state.records[ident]
            member = f"{ident[1]}:{ident[2]}"
            out.assignments.append((_key(self.keys, "i", t), member, _pack(new) if new else None))
            if new is not None and old is None:
                out.assignments.append((_key(self.keys, "p", t, new.project, new.day), member, "1"))
            out.scores.extend(index_moves(self.keys, t, old, new))
        return out


# -- reading records -----------------------------------------------------------------------------------


def records(client: redis.Redis, keys: ShardKeys, tenant: str, members: Sequence[str]) -> list[Record | None]:
    """The records of these members, in their order (None for a member without one)."""
    if not members:
        return []
    found: list[bytes | None] = client.hmget(_key(keys, "i", tenant), list(members))  # type: ignore[assignment]
    found = cold.fill(client, keys, NAME, tenant, members, found)  # archived interactions' rows
    return [_record.decode(raw) if raw else None for raw in found]


def time_zone(client: redis.Redis, keys: ShardKeys, tenant: str) -> str:
    raw = client.hget(_key(keys, "tz"), tenant)
    return raw.decode() if isinstance(raw, bytes) else "UTC"


def key(keys: ShardKeys, *parts: str) -> str:
    """A key of this view (for the queries next to it)."""
    return _key(keys, *parts)
