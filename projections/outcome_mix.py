"""The outcome mix (PRODUCT.md §4, the seeds' "Call Results Report"): its view and its query.

What counts (the readings tests/report_oracle.py states, and this view must equal):

* an interaction is counted once: a call once it has an outcome or has ended, a
  conversation once it is closed; under the outcome that stands -- a call's one outcome,
  a conversation's *closing* one (the last selected while it was open), as corrected --
  or ``-`` when it has none. Late business results are history, not the mix;
* its day is the tenant-local date of its start (``occurred_at``), whatever happens later;
* it belongs to the agent of its selection (else the agent the call facts name), and to
  that agent's team as of the selection (else as of the call's end);
* its contact list is the one in force at the selection (else at the call's end or the
  conversation's close): the project's contact list, else the list the contact is on (as
  saved, or as an outcome's list move, removal or its revert left it) -- the same reading
  the contact-list actions make (services/ledger.py ``contact_list_effects``);
* "as defined then" categories are resolved in the catalogue as it stood at the selection;
  "as defined now" in the catalogue the view holds now.

The view pre-aggregates counters per tenant x interaction kind x day, with one hash field
per *cell*: every filter and grouping dimension of one interaction (project, outcome,
agent, team, channel, direction, termination reason, agent/system selection, corrected,
category then). A query reads only the hashes of the days in its range and folds their
cells: its cost grows with distinct cells, not with interactions.

To attribute later events (a selection arriving after the call's start fixed its day), the
view keeps state in Redis keys of its own -- per interaction its facts and the selection
that stands, per tenant its time zone, agents' teams and outcome definitions (category,
parent) -- and writes that state in the same script as the counters and the position. A
batch reads the state it touches once (pipelined), folds its events in memory, and emits
for each interaction it changed: -1 on the cell it was in, +1 on the cell it is in now.
The state its last commit wrote stays in the process (``Memory``) while the view's
position is still that commit's, so the next batch does not read it again; from position
0 (a rebuild) nothing is read at all.

Keys (prefix ``ShardKeys.view("outcome-mix")``, in the shard's slot):

* ``c:<tenant>:<kind>:<day>`` hash: json(cell) -> interactions
* ``r:<tenant>:<kind>:<day>`` hash: json(cell) -> revenue (a decimal string: exact sums
  are done here in Python, read-modify-write under the position check, not in Lua floats)
* ``g:<tenant>:<kind>:<dimension>:<value>:<day>`` / ``gr:…`` hashes: the same counters and
  revenue rolled up for the tenant (``*:*``), each project, agent and team, fields
  json(Reduced): the queries ``rollup_for`` says they answer read these few fields instead
  of every cell of the day
* ``d:<tenant>:<kind>`` hash: day -> "1" (the days that have counters)
* ``i:<tenant>`` hash: "<kind>:<id>" -> json(Facts)
* ``a:<tenant>`` hash: agent -> json(team or null)
* ``o:<tenant>`` hash: json([project or null, code]) -> json([category, parent])
* ``pl:<tenant>`` hash: project -> json(its contact list or null)
* ``cl:<tenant>`` hash: contact -> json(ContactList)

(JSON text, not msgpack: the script's cmsgpack cannot read msgpack ``bin`` values.)
* ``tz`` hash: tenant -> time zone
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from typing import Any, Literal, NamedTuple, cast
from zoneinfo import ZoneInfo

import msgspec
import redis

from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.types import (
    AgentConnected,
    AgentTeamChanged,
    CallAnswered,
    CallEnded,
    CallStarted,
    ContactListChangeReverted,
    ContactMovedToList,
    ContactRemovedFromList,
    ContactSaved,
    ConversationClosed,
    ConversationStarted,
    OutcomeChanged,
    OutcomeCorrected,
    OutcomeDefined,
    OutcomeDefinition,
    OutcomeSelected,
    ProjectChanged,
    ProjectCreated,
    TenantCreated,
)
from projections import cold
from projections.base import Assignment, Changes, View

NAME = "outcome-mix"
NO_OUTCOME = "-"
Kind = Literal["call", "conversation"]
GroupBy = Literal["outcome", "category", "agent", "team", "list", "project", "day", "week"]
AsDefined = Literal["then", "now"]
KINDS: tuple[Kind, ...] = ("call", "conversation")
GROUP_BYS: tuple[GroupBy, ...] = ("outcome", "category", "agent", "team", "list", "project", "day", "week")

#: the events that move a contact between lists
ContactListEvent = ContactSaved | ContactMovedToList | ContactRemovedFromList | ContactListChangeReverted
#: (project or None for a global outcome, code) -> (category, parent)
Definitions = dict[tuple[str | None, str], tuple[str, str | None]]


# -- the state the view keeps -------------------------------------------------------------------


class Standing(msgspec.Struct, frozen=True, array_like=True):
    """The selection that counts for an interaction; a correction replaces its code, revenue
    and category, and keeps who it is attributed to."""

    code: str
    revenue: Decimal | None
    by_system: bool
    agent: str | None
    team: str | None
    #: root category in the catalogue as it stood at the selection ("as defined then")
    category: str
    corrected: bool = False
    #: the interaction's contact list at the selection (kept by a correction)
    contact_list: str | None = None


class ContactList(msgspec.Struct, frozen=True, array_like=True):
    """Which list a contact is on: as saved, unless an outcome moved or removed it since."""

    saved: str | None = None
    changed: bool = False
    current: str | None = None

    @property
    def now(self) -> str | None:
        return self.current if self.changed else self.saved


class Facts(msgspec.Struct, frozen=True, array_like=True):
    """One interaction as the mix needs it."""

    kind: str
    project: str
    channel: str
    #: tenant-local date of the start, ISO
    day: str
    direction: str | None = None
    #: the agent the call facts name (last of started/answered/connected)
    agent: str | None = None
    ended: bool = False
    termination: str | None = None
    #: the team of ``agent`` when the call ended (attribution of a call with no selection)
    close_team: str | None = None
    closed: bool = False
    standing: Standing | None = None
    contact: str | None = None
    #: the contact list when the call ended / the conversation closed (one with no selection)
    close_list: str | None = None


class Cell(NamedTuple):
    """Every dimension of one counted interaction: one hash field of the day's counters."""

    project: str
    code: str
    agent: str | None
    team: str | None
    channel: str
    direction: str | None
    termination: str | None
    #: "agent", "system", or "" (no outcome)
    selected_by: str
    corrected: bool
    #: category "as defined then"; None for no outcome
    category: str | None
    #: the contact list as of the selection (else the close); None: none
    contact_list: str | None = None


@dataclass
class TenantState:
    tz: str | None = None
    teams: dict[str, str | None] = field(default_factory=dict)
    definitions: Definitions = field(default_factory=dict)
    #: project -> its contact list (every project of the tenant)
    project_lists: dict[str, str | None] = field(default_factory=dict)
    #: contact -> its list (the contacts the batch touches)
    contacts: dict[str, ContactList] = field(default_factory=dict)

    def contact_list(self, project: str, contact: str | None) -> str | None:
        """The list an interaction of the project with the contact is on now."""
        found = self.project_lists.get(project)
        if found is None and contact is not None and contact in self.contacts:
            found = self.contacts[contact].now
        return found


@dataclass
class State:
    """The view's state a batch touches, as loaded and then as folded."""

    tenants: dict[str, TenantState] = field(default_factory=dict)
    #: (tenant, kind, id) -> facts (None: not started as far as the view knows)
    interactions: dict[tuple[str, str, str], Facts | None] = field(default_factory=dict)


def _key(keys: ShardKeys, *parts: str) -> str:
    return keys.view(NAME) + ":".join(parts)


_facts = msgspec.json.Decoder(Facts)
_contact_list = msgspec.json.Decoder(ContactList)
_cell = msgspec.json.Decoder(Cell)


def _pack(value: object) -> str:
    """Fields and state values are JSON text: the script's cmsgpack takes no msgpack bin."""
    return msgspec.json.encode(value).decode()


def _definitions(raw: Mapping[bytes, bytes]) -> Definitions:
    decoded = ((msgspec.json.decode(k), msgspec.json.decode(v)) for k, v in raw.items())
    return {(project, code): (category, parent) for (project, code), (category, parent) in decoded}


# -- the pure part: events -> state -> cells ------------------------------------------------------


def root_category(defs: Definitions, project: str | None, code: str, category: str, parent: str | None) -> str:
    """The category of the root of the outcome's parent chain (its own without a parent)."""
    seen = {code}
    while parent is not None:
        found = defs.get((project, parent)) or defs.get((None, parent))
        if found is None or parent in seen:
            break
        seen.add(parent)
        category, parent = found
    return category


def _selector(actor: str, agent_id: str | None) -> str | None:
    if agent_id is not None:
        return agent_id
    return actor.removeprefix("agent:") if actor.startswith("agent:") else None


def _category_then(tenant: TenantState, project: str, d: OutcomeDefinition) -> str:
    return root_category(tenant.definitions, project, d.code, d.category, d.parent)


def _call(event: CallStarted | CallAnswered | AgentConnected | CallEnded) -> Ident:
    return event.tenant_id, "call", event.call_id


def _conversation(event: ConversationStarted | ConversationClosed) -> Ident:
    return event.tenant_id, "conversation", event.conversation_id


def _selection(event: OutcomeSelected | OutcomeCorrected) -> Ident:
    return event.tenant_id, event.interaction, event.interaction_id


#: (tenant, kind, id): one interaction
Ident = tuple[str, str, str]

#: event type -> the interaction it is about, for the events the mix reads
#: (a table looked up by the event's type: one lookup per event, not a chain of isinstance)
TARGETS: dict[type[DomainEvent], Callable[[Any], Ident]] = {
    CallStarted: _call,
    CallAnswered: _call,
    AgentConnected: _call,
    CallEnded: _call,
    ConversationStarted: _conversation,
    ConversationClosed: _conversation,
    OutcomeSelected: _selection,
    OutcomeCorrected: _selection,
}


def targets(events: Iterable[DomainEvent]) -> list[Ident | None]:
    """The interaction each event is about (None: a tenant-wide event), for the events the
    mix reads: found once per batch, for recalling the state and for folding."""
    get = TARGETS.get
    return [None if (about := get(type(e))) is None else about(e) for e in events]


def started(event: CallStarted | ConversationStarted, tz: str | None) -> Facts:
    day = event.occurred_at.astimezone(ZoneInfo(tz or "UTC")).date().isoformat()
    if isinstance(event, CallStarted):
        return Facts(
            "call", event.project_id, event.channel, day, event.direction, event.agent_id, contact=event.contact_id
        )
    return Facts("conversation", event.project_id, event.channel, day, contact=event.contact_id)


def answered(facts: Facts, tenant: TenantState, event: CallAnswered) -> Facts:
    return facts if event.agent_id is None else msgspec.structs.replace(facts, agent=event.agent_id)


def connected(facts: Facts, tenant: TenantState, event: AgentConnected) -> Facts:
    return msgspec.structs.replace(facts, agent=event.agent_id)


def ended(facts: Facts, tenant: TenantState, event: CallEnded) -> Facts:
    team = tenant.teams.get(facts.agent) if facts.agent else None
    listed = tenant.contact_list(facts.project, facts.contact)
    return msgspec.structs.replace(
        facts, ended=True, termination=event.termination_reason, close_team=team, close_list=listed
    )


def closed(facts: Facts, tenant: TenantState, event: ConversationClosed) -> Facts:
    return msgspec.structs.replace(facts, closed=True, close_list=tenant.contact_list(facts.project, facts.contact))


def selected(facts: Facts, tenant: TenantState, event: OutcomeSelected) -> Facts:
    """The selection stands (a conversation kept active collects several: the last one before
    the close counts); a late business result is history, not the mix."""
    if event.late:
        return facts
    agent = _selector(event.actor, event.agent_id) or facts.agent
    standing = Standing(
        code=event.outcome_code,
        revenue=event.revenue,
        by_system=event.actor == "system",
        agent=agent,
        team=tenant.teams.get(agent) if agent else None,
        category=_category_then(tenant, event.project_id, event.definition),
        contact_list=tenant.contact_list(facts.project, facts.contact),
    )
    return msgspec.structs.replace(facts, standing=standing)


def corrected(facts: Facts, tenant: TenantState, event: OutcomeCorrected) -> Facts:
    was = facts.standing
    standing = Standing(
        code=event.outcome_code,
        revenue=event.revenue,
        by_system=was.by_system if was else event.actor == "system",
        agent=was.agent if was else None,
        team=was.team if was else None,
        category=_category_then(tenant, event.project_id, event.definition),
        corrected=True,
        contact_list=was.contact_list if was else tenant.contact_list(facts.project, facts.contact),
    )
    return msgspec.structs.replace(facts, standing=standing)


#: event type -> how it changes the facts of an interaction already started
INTERACTION_RULES: dict[type[DomainEvent], Callable[[Facts, TenantState, Any], Facts]] = {
    CallAnswered: answered,
    AgentConnected: connected,
    CallEnded: ended,
    ConversationClosed: closed,
    OutcomeSelected: selected,
    OutcomeCorrected: corrected,
}


STARTS: frozenset[type[DomainEvent]] = frozenset({CallStarted, ConversationStarted})


def fold_interaction(facts: Facts | None, tenant: TenantState, event: DomainEvent) -> Facts | None:
    """One interaction's facts after one event about it."""
    if type(event) in STARTS:
        return started(event, tenant.tz)  # type: ignore[arg-type]
    if facts is None:
        return None  # the start is missing (cannot happen in an accepted history): nothing to count
    rule = INTERACTION_RULES.get(type(event))
    return facts if rule is None else rule(facts, tenant, event)


def _time_zone(tenant: TenantState, event: TenantCreated) -> None:
    tenant.tz = event.time_zone


def _team(tenant: TenantState, event: AgentTeamChanged) -> None:
    tenant.teams[event.agent_id] = event.team_id


def _definition(tenant: TenantState, event: OutcomeDefined | OutcomeChanged) -> None:
    d = event.definition
    tenant.definitions[(event.project_id, d.code)] = (d.category, d.parent)


def _project_list(tenant: TenantState, event: ProjectCreated | ProjectChanged) -> None:
    tenant.project_lists[event.project_id] = event.settings.contact_list


def _contact(tenant: TenantState, event: ContactListEvent) -> None:
    was = tenant.contacts.get(event.contact_id, ContactList())
    tenant.contacts[event.contact_id] = contact_list_after(was, event)


#: event type -> how it changes the tenant-wide state (time zone, teams, definitions, lists)
TENANT_RULES: dict[type[DomainEvent], Callable[[TenantState, Any], None]] = {
    TenantCreated: _time_zone,
    AgentTeamChanged: _team,
    OutcomeDefined: _definition,
    OutcomeChanged: _definition,
    ProjectCreated: _project_list,
    ProjectChanged: _project_list,
    ContactSaved: _contact,
    ContactMovedToList: _contact,
    ContactRemovedFromList: _contact,
    ContactListChangeReverted: _contact,
}


def fold_tenant(tenant: TenantState, event: DomainEvent) -> None:
    """The tenant-wide state an event changes (time zone, teams, definitions, lists)."""
    rule = TENANT_RULES.get(type(event))
    if rule is not None:
        rule(tenant, event)


#: the event types the mix reads (no other is even decoded for it)
TOPICS = frozenset(t.type_name for t in (*TARGETS, *TENANT_RULES))


def contact_list_after(was: ContactList, event: ContactListEvent) -> ContactList:
    """A contact's list after one event: a save sets the saved list; an outcome's move or
    removal overrides it until reverted (back to the saved list, or to the list it left)."""
    if isinstance(event, ContactSaved):
        return msgspec.structs.replace(was, saved=event.contact_list)
    if isinstance(event, ContactMovedToList):
        return msgspec.structs.replace(was, changed=True, current=event.to_list)
    if isinstance(event, ContactRemovedFromList):
        return msgspec.structs.replace(was, changed=True, current=None)
    return msgspec.structs.replace(
        was, changed=not event.as_saved, current=None if event.as_saved else event.contact_list
    )


def cell(facts: Facts | None) -> Cell | None:
    """Where an interaction counts now; None while it is not yet in the mix."""
    if facts is None:
        return None
    counted = facts.closed if facts.kind == "conversation" else facts.standing is not None or facts.ended
    if not counted:
        return None
    s = facts.standing
    if s is None:
        # fields in order (positional: a NamedTuple built by keyword costs twice as much)
        return Cell(
            facts.project,
            NO_OUTCOME,
            facts.agent,
            facts.close_team,
            facts.channel,
            facts.direction,
            facts.termination,
            "",
            False,
            None,
            facts.close_list,
        )
    by_person = s.agent is not None
    return Cell(
        facts.project,
        s.code,
        s.agent if by_person else facts.agent,
        s.team if by_person else facts.close_team,
        facts.channel,
        facts.direction,
        facts.termination,
        "system" if s.by_system else "agent",
        s.corrected,
        s.category,
        s.contact_list,
    )


def fold(state: State, events: Sequence[DomainEvent], about: Sequence[Ident | None]) -> dict[Ident, None]:
    """Fold a batch into the state, in log order (``about``: each event's interaction,
    ``targets``); returns the interactions it changed, in the order first changed."""
    changed: dict[Ident, None] = {}
    tenants, interactions = state.tenants, state.interactions
    for event, ident in zip(events, about, strict=True):
        tenant = tenants.get(event.tenant_id)
        if tenant is None:
            tenant = tenants[event.tenant_id] = TenantState()
        if ident is None:
            fold_tenant(tenant, event)
            continue
        was = interactions.get(ident)
        after = fold_interaction(was, tenant, event)
        if after is not was and after != was:
            interactions[ident] = after
            changed[ident] = None
    return changed


class Reduced(NamedTuple):
    """A cell without the dimensions a rollup hash is keyed by, nor those its queries do
    not filter on: the fields of ``g:`` hashes."""

    code: str
    category: str | None
    selected_by: str
    corrected: bool


_reduced = msgspec.json.Decoder(Reduced)

#: rollup dimension of the tenant's own rollup (no filter)
WHOLE = "*"


def rollups(c: Cell) -> list[tuple[str, str]]:
    """(dimension, value) of each rollup a cell also counts in: the tenant's, its project's,
    its agent's and its team's. A query that filters on at most one of these (and on no
    other dimension) reads a few small hashes per day instead of every cell of the day."""
    found = [(WHOLE, WHOLE), ("project", c.project)]
    if c.agent is not None:
        found.append(("agent", c.agent))
    if c.team is not None:
        found.append(("team", c.team))
    return found


#: counters hash -> the hash holding the same fields' revenue
REVENUE_OF = {"c": "r", "g": "gr"}
#: a counters hash a cell counts in: its key, its revenue hash's key, and whether it is a
#: rollup (its fields are reduced cells)
Place = tuple[str, str, bool]


@lru_cache(maxsize=1 << 16)
def counter_field(value: Cell | Reduced) -> str:
    """A counters hash field: the JSON of a cell (or a reduced one), packed once for the many
    interactions that fall in the same one."""
    return _pack(value)


@lru_cache(maxsize=1 << 12)
def reduced_field(code: str, category: str | None, selected_by: str, corrected: bool) -> str:
    """A rollup hash field: the JSON of the reduced cell (few distinct ones: packed once each)."""
    return _pack(Reduced(code, category, selected_by, corrected))


@dataclass
class Moves:
    """Counter deltas of a batch: count and revenue per hash key and field; and the
    (tenant, kind, day) of each day's cells hash moved."""

    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    revenue: dict[str, dict[str, Decimal]] = field(default_factory=lambda: defaultdict(dict))
    days: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def add(self, places: Sequence[Place], where: Cell, revenue: Decimal | None, sign: int) -> None:
        whole = counter_field(where)
        reduced = reduced_field(where.code, where.category, where.selected_by, where.corrected)
        for key, revenue_key, rolled in places:
            name = reduced if rolled else whole
            counts = self.counts[key]
            counts[name] = counts.get(name, 0) + sign
            if revenue is not None:
                sums = self.revenue[revenue_key]
                sums[name] = sums.get(name, Decimal(0)) + sign * revenue


def moves(memory: Memory, before: Mapping[Ident, Facts | None], after: State, changed: Iterable[Ident]) -> Moves:
    """-1 on the cell each changed interaction was in, +1 on the cell it is in now."""
    out = Moves()
    for ident in changed:
        for facts, sign in ((before.get(ident), -1), (after.interactions.get(ident), 1)):
            where = cell(facts)
            if facts is None or where is None:
                continue
            places = memory.places(ident[0], facts.kind, facts.day, where)
            out.days[places[0][0]] = (ident[0], facts.kind, facts.day)
            s = facts.standing
            out.add(places, where, s.revenue if s is not None else None, sign)
    return out


#: how many interactions, revenue sums and contacts a view remembers across batches
#: before it forgets the older half (and reads those it needs from Redis again): ~0.5 KB
#: each, so ~100 MB
MEMORY_CAP = 200_000


@dataclass
class Memory:
    """The view's stored state as this process's last commit left it, kept across batches so
    a batch neither reads nor decodes again what the previous one wrote. Valid only while the
    view is still where that commit left it (``View.own_state_at``): another runner's commit
    or a replay's switch-over moves it, and the memory is dropped (as after any refused or
    failed commit). ``prefix``: the generation's keys it names.

    ``complete``: begun at position 0, where the view holds nothing (its keys are written
    only with its position), so what the memory does not hold is not stored either: nothing
    is read. Past ``MEMORY_CAP`` it drops the interactions, sums and contacts it remembered
    first (a log in time order seldom names them again) and reads each again from Redis when
    a batch needs it; the tenants' small state stays. Counts are not kept: the script adds
    the batch's moves (HINCRBY), which costs Redis a command per field and this process
    nothing -- a rebuild waits on this process, not on Redis (docs/benchmarks.md)."""

    prefix: str
    complete: bool
    state: State = field(default_factory=State)
    #: (revenue hash, field) -> the sum stored there
    revenue: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    #: per tenant, the contacts whose stored list ``state`` holds (or knows is absent);
    #: only kept when not ``complete``
    contacts_known: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: name parts -> key (a batch names the same few hashes thousands of times)
    names: dict[tuple[str, ...], str] = field(default_factory=dict)
    #: (tenant, kind, day, rollup dimension or "" for the day's cells, its value) -> that hash (``places``)
    placed: dict[tuple[str, str, str, str, str], Place] = field(default_factory=dict)

    def name(self, *parts: str) -> str:
        """The key of the view named by ``parts`` (``_key``'s, built once)."""
        found = self.names.get(parts)
        if found is None:
            found = self.names[parts] = self.prefix + ":".join(parts)
        return found

    def places(self, tenant: str, kind: str, day: str, c: Cell) -> list[Place]:
        """The counters hashes a cell of the day counts in: the day's cells, then each
        rollup's (``rollups``); their keys built once per batch-spanning memory, not per
        interaction."""
        place = self._place
        found = [place(tenant, kind, day, "", "")]
        found += [place(tenant, kind, day, dim, value) for dim, value in rollups(c)]
        return found

    def _place(self, tenant: str, kind: str, day: str, dim: str, value: str) -> Place:
        at = (tenant, kind, day, dim, value)
        found = self.placed.get(at)
        if found is None:
            family, rest = ("g", (tenant, kind, dim, value, day)) if dim else ("c", (tenant, kind, day))
            counters = self.prefix + ":".join((family, *rest))
            found = self.placed[at] = (counters, self.prefix + ":".join((REVENUE_OF[family], *rest)), bool(dim))
        return found

    def size(self) -> int:
        contacts = sum(len(s.contacts) for s in self.state.tenants.values())
        kept = len(self.revenue) + len(self.names) + len(self.placed)
        return len(self.state.interactions) + kept + contacts

    def forget_oldest(self, cap: int) -> None:
        """Down to half of ``cap``: each map keeps its newest entries in proportion (0: forget
        all but the tenants' time zones, teams, definitions and project lists)."""
        kept = cap / (2 * max(1, self.size()))
        if self.complete:
            # from now on what the memory lacks may be stored: the contacts it knows are those it holds
            for t, tenant in self.state.tenants.items():
                self.contacts_known[t].update(tenant.contacts)
        self.complete = False
        _keep_newest(self.state.interactions, kept)
        _keep_newest(self.revenue, kept)
        self.names.clear()
        self.placed.clear()
        for t, tenant in self.state.tenants.items():
            self.contacts_known[t].difference_update(_keep_newest(tenant.contacts, kept))


def _keep_newest(remembered: dict[Any, Any], share: float) -> list[Any]:
    """Drop all but the newest ``share`` of the entries (a dict keeps them in the order first
    remembered); returns the keys dropped."""
    dropped = list(islice(remembered, len(remembered) - int(len(remembered) * share)))
    for k in dropped:
        del remembered[k]
    return dropped


# -- the view: recall state, fold, write with the position ---------------------------------------------


class OutcomeMixView(View):
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
        #: the state as this process's last commit left it (see Memory)
        self._memory: Memory | None = None
        #: the memory of the batch being committed
        self._batch: Memory | None = None

    def commit(self, position: int, last: int, events: Sequence[DomainEvent]) -> int:
        """``View.commit``, remembering the state the commit leaves for the next batch."""
        memory = self._memory
        if memory is None or not self.own_state_at(position):
            memory = Memory(self.keys.view(NAME), complete=position == 0)
        self._memory = None  # a refused or failed commit leaves nothing remembered
        self._batch = memory
        try:
            done = super().commit(position, last, events)
        finally:
            self._batch = None
        if done == 1:
            if memory.size() > self.memory_cap:
                memory.forget_oldest(self.memory_cap)
            self._memory = memory
        return done

    def _recall(self, memory: Memory, events: Sequence[DomainEvent], about: Sequence[Ident | None]) -> list[Ident]:
        """Bring the stored state the batch touches into memory (what it does not hold yet, in
        one pipelined round trip, two with contacts); returns the interactions touched."""
        state = memory.state
        touched: dict[Ident, None] = {}
        wanted: dict[str, list[str]] = defaultdict(list)
        for e, ident in zip(events, about, strict=True):
            if ident is None or ident in touched:
                continue
            touched[ident] = None
            if ident in state.interactions:
                continue
            if memory.complete or type(e) in STARTS:
                state.interactions[ident] = None  # nothing is stored before the start
            else:
                wanted[ident[0]].append(f"{ident[1]}:{ident[2]}")
        tenants = sorted({e.tenant_id for e in events} - state.tenants.keys())
        if memory.complete:
            state.tenants.update((t, TenantState()) for t in tenants)
            return list(touched)
        if tenants or wanted:
            self.settle()  # a commit still running may write what is read (View.settle)
        pipe = self.client.pipeline(transaction=False)
        for t in tenants:
            pipe.hget(memory.name("tz"), t)
            pipe.hgetall(memory.name("a", t))
            pipe.hgetall(memory.name("o", t))
            pipe.hgetall(memory.name("pl", t))
        for t, names in wanted.items():
            pipe.hmget(memory.name("i", t), names)
        replies = iter(pipe.execute() if tenants or wanted else ())
        for t in tenants:
            tz, teams, defs, lists = (next(replies) for _ in range(4))
            state.tenants[t] = TenantState(
                tz=tz.decode() if tz else None,
                teams={a.decode(): msgspec.json.decode(v) for a, v in teams.items()},
                definitions=_definitions(defs),
                project_lists={p.decode(): msgspec.json.decode(v) for p, v in lists.items()},
            )
        for t, names in wanted.items():
            # rows of archived interactions are in the archive (projections/cold.py); the
            # interactions started in the batch were never asked for
            found = cold.fill(self.client, self.keys, NAME, t, names, next(replies))
            for name, raw in zip(names, found, strict=True):
                kind, _, ident_ = name.partition(":")
                state.interactions[(t, kind, ident_)] = _facts.decode(raw) if raw else None
        self._recall_contacts(memory, events, touched)
        return list(touched)

    def _recall_contacts(self, memory: Memory, events: Sequence[DomainEvent], touched: Iterable[Ident]) -> None:
        """The lists of the contacts the batch names or whose interactions it touches."""
        contacts: dict[str, set[str]] = defaultdict(set)
        for e in events:
            contact = getattr(e, "contact_id", None)
            if isinstance(contact, str):
                contacts[e.tenant_id].add(contact)
        for ident in touched:
            facts = memory.state.interactions.get(ident)
            if facts is not None and facts.contact is not None:
                contacts[ident[0]].add(facts.contact)
        wanted = {t: sorted(c - memory.contacts_known[t]) for t, c in contacts.items()}
        wanted = {t: names for t, names in wanted.items() if names}
        if not wanted:
            return
        self.settle()
        pipe = self.client.pipeline(transaction=False)
        for t, names in wanted.items():
            pipe.hmget(memory.name("cl", t), names)
        for (t, names), found in zip(wanted.items(), pipe.execute(), strict=True):
            tenant = memory.state.tenants.setdefault(t, TenantState())
            tenant.contacts.update({c: _contact_list.decode(raw) for c, raw in zip(names, found, strict=True) if raw})
            memory.contacts_known[t].update(names)

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        # outside a commit (nothing calls it so today) the state is read as if remembered nothing
        memory = self._batch or Memory(self.keys.view(NAME), complete=False)
        state = memory.state
        about = targets(events)
        touched = self._recall(memory, events, about)
        before = {ident: state.interactions[ident] for ident in touched}
        named: dict[str, set[str]] = {t: set() for t in {e.tenant_id for e in events}}
        for e, ident in zip(events, about, strict=True):
            if ident is None and isinstance(e, ContactListEvent):
                named[e.tenant_id].add(e.contact_id)
        loaded = {t: _Loaded.of(state.tenants[t], contacts) for t, contacts in named.items()}
        changed = fold(state, events, about)
        delta = moves(memory, before, state, changed)
        # every write below is of a (key, field) the batch writes once (Changes.*_once), but
        # the tenants' state (``_Loaded.writes``)
        out = Changes()
        days: set[tuple[str, str, str]] = set()
        for key, counts in delta.counts.items():
            moved = False
            for where, n in counts.items():
                if n:
                    out.increment_once(key, where, n)
                    moved = True
            if moved and key in delta.days:
                days.add(delta.days[key])  # a rollup moves only where its day's cells did
        for t, kind, day in sorted(days):
            out.set_once(memory.name("d", t, kind), day, "1")
        self._revenue(memory, delta.revenue, out)
        for ident in changed:
            t, kind, id_ = ident
            facts = state.interactions[ident]
            out.set_once(memory.name("i", t), f"{kind}:{id_}", _pack(facts) if facts else None)
        for t, was in loaded.items():
            out.assignments.extend(was.writes(memory, t, state.tenants[t]))
        return out

    def _revenue(self, memory: Memory, deltas: Mapping[str, Mapping[str, Decimal]], out: Changes) -> None:
        """New revenue sums: the stored ones (remembered, else read after the position: the
        script's check guards it) plus the batch's."""
        moved = [(key, where, d) for key, sums in deltas.items() for where, d in sums.items() if d]
        unknown: dict[str, list[str]] = defaultdict(list)
        for key, where, _ in moved:
            if not memory.complete and (key, where) not in memory.revenue:
                unknown[key].append(where)
        if unknown:
            # one HMGET per hash (a batch moves many fields of the same few day hashes), not one
            # HGET per field: the command count, not the bytes, is what costs here
            self.settle()
            pipe = self.client.pipeline(transaction=False)
            for key, names in unknown.items():
                pipe.hmget(key, names)
            for (key, names), found in zip(unknown.items(), pipe.execute(), strict=True):
                for where, raw in zip(names, found, strict=True):
                    memory.revenue[(key, where)] = Decimal(raw.decode()) if raw else Decimal(0)
        for key, where, d in moved:
            total = memory.revenue.get((key, where), Decimal(0)) + d
            memory.revenue[(key, where)] = total
            out.set_once(key, where, str(total) if total else None)


@dataclass
class _Loaded:
    """A tenant's state as stored before the batch (what it touches of it): the batch writes
    what it changed."""

    tz: str | None
    teams: dict[str, str | None]
    definitions: Definitions
    project_lists: dict[str, str | None]
    contacts: dict[str, ContactList | None]

    @classmethod
    def of(cls, s: TenantState, named: Iterable[str]) -> _Loaded:
        """``named``: the contacts the batch's list events name (no other contact's list changes)."""
        contacts = {c: s.contacts.get(c) for c in named}
        return cls(s.tz, dict(s.teams), dict(s.definitions), dict(s.project_lists), contacts)

    def writes(self, memory: Memory, t: str, s: TenantState) -> Iterator[Assignment]:
        if s.tz != self.tz and s.tz is not None:
            yield (memory.name("tz"), t, s.tz)
        for agent, team in s.teams.items():
            if agent not in self.teams or self.teams[agent] != team:
                yield (memory.name("a", t), agent, _pack(team))
        for (project, code), value in s.definitions.items():
            if self.definitions.get((project, code)) != value:
                yield (memory.name("o", t), _pack([project, code]), _pack(list(value)))
        for project, listed in s.project_lists.items():
            if project not in self.project_lists or self.project_lists[project] != listed:
                yield (memory.name("pl", t), project, _pack(listed))
        for contact, was in self.contacts.items():
            on = s.contacts.get(contact)
            if on is not None and on != was:
                yield (memory.name("cl", t), contact, _pack(on))


# -- the query -----------------------------------------------------------------------------------------


class MixRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the outcome mix."""

    key: str
    count: int
    #: count ÷ all interactions in the report x 100 (0 when there are none)
    percentage: float
    #: interactions whose outcome a person / the system selected
    agent_selections: int
    system_selections: int
    #: interactions whose outcome was corrected
    corrected: int
    #: the revenue of the counted outcomes
    revenue: Decimal


@dataclass(frozen=True)
class MixFilter:
    interaction: Kind
    project: str | None = None
    agent: str | None = None
    team: str | None = None
    channel: str | None = None
    direction: str | None = None
    termination_reason: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    contact_list: str | None = None

    def day_in_range(self, day: str) -> bool:
        d = date.fromisoformat(day)
        return (self.date_from is None or d >= self.date_from) and (self.date_to is None or d <= self.date_to)

    def matches(self, c: Cell) -> bool:
        wanted = (
            (self.project, c.project),
            (self.agent, c.agent),
            (self.team, c.team),
            (self.channel, c.channel),
            (self.direction, c.direction),
            (self.termination_reason, c.termination),
            (self.contact_list, c.contact_list),
        )
        return all(want is None or want == got for want, got in wanted)


def _iso_week(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def group_key(c: Cell, day: str, group_by: GroupBy, as_defined: AsDefined, now: Definitions) -> str:
    """The row an interaction's cell falls in."""
    if group_by == "outcome":
        return c.code
    if group_by == "category":
        if c.category is None:
            return NO_OUTCOME
        if as_defined == "then":
            return c.category
        found = now.get((c.project, c.code)) or now.get((None, c.code))
        return root_category(now, c.project, c.code, *found) if found else c.category
    if group_by == "agent":
        return c.agent or NO_OUTCOME
    if group_by == "team":
        return c.team or NO_OUTCOME
    if group_by == "list":
        return c.contact_list or NO_OUTCOME
    if group_by == "project":
        return c.project
    return day if group_by == "day" else _iso_week(day)


def definitions(client: redis.Redis, keys: ShardKeys, tenant: str) -> Definitions:
    """The tenant's outcome catalogue as the view holds it now."""
    return _definitions(cast(dict[bytes, bytes], client.hgetall(_key(keys, "o", tenant))))


def defined_codes(now: Definitions, project: str | None) -> list[str]:
    """The rows a report by outcome lists even at zero: every outcome defined globally or in
    the project (every project's when none is chosen), and ``-``."""
    return sorted({code for scope, code in now if scope is None or project is None or scope == project} | {NO_OUTCOME})


#: the groupings a rollup keeps besides the dimension it is keyed by
ROLLUP_GROUPS = ("outcome", "category", "day", "week")


def rollup_for(f: MixFilter, group_by: GroupBy, as_defined: AsDefined) -> tuple[str, str] | None:
    """The rollup (dimension, value) that answers the query exactly, if one does: it filters
    on at most one of project / agent / team and on nothing else (any other filter field,
    present or future, sends it to the cells), and groups by what a rollup keeps."""
    chosen = [
        (x.name, value)
        for x in fields(f)
        if x.name not in ("interaction", "date_from", "date_to") and (value := getattr(f, x.name)) is not None
    ]
    if len(chosen) > 1 or any(name not in ("project", "agent", "team") for name, _ in chosen):
        return None
    dim, value = chosen[0] if chosen else (WHOLE, WHOLE)
    if group_by not in ROLLUP_GROUPS and group_by != dim:
        return None
    if group_by == "category" and as_defined == "now" and dim != "project":
        return None  # resolving a code "as defined now" needs its project
    return dim, value


def _days(client: redis.Redis, keys: ShardKeys, tenant: str, f: MixFilter) -> list[str]:
    found = (x.decode() for x in cast(list[bytes], client.hkeys(_key(keys, "d", tenant, f.interaction))))
    return sorted(d for d in found if f.day_in_range(d))


def read_cells(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    f: MixFilter,
    group_by: GroupBy = "outcome",
    as_defined: AsDefined = "then",
) -> list[tuple[str, Cell, int, Decimal]]:
    """(day, cell, count, revenue) of every cell of the days in range that passes the filter;
    from a rollup when one answers the query (its cells carry only the dimensions it keeps)."""
    days = _days(client, keys, tenant, f)
    rollup = rollup_for(f, group_by, as_defined)
    pipe = client.pipeline(transaction=False)
    for day in days:
        parts = ("c", day) if rollup is None else ("g", *rollup, day)
        pipe.hgetall(_key(keys, parts[0], tenant, f.interaction, *parts[1:]))
        pipe.hgetall(_key(keys, REVENUE_OF[parts[0]], tenant, f.interaction, *parts[1:]))
    replies = pipe.execute()
    found: list[tuple[str, Cell, int, Decimal]] = []
    cells: dict[bytes, Cell] = {}  # a field recurs day after day (a rollup's always): decode it once
    for n, day in enumerate(days):
        counts, revenue = replies[2 * n], replies[2 * n + 1]
        for raw, count in counts.items():
            c = cells.get(raw)
            if c is None:
                c = cells[raw] = _cell.decode(raw) if rollup is None else _from_rollup(_reduced.decode(raw), f)
            if rollup is not None or f.matches(c):  # a rollup's cells are the filter's by construction
                found.append((day, c, int(count), Decimal(revenue[raw].decode()) if raw in revenue else Decimal(0)))
    return found


def _from_rollup(r: Reduced, f: MixFilter) -> Cell:
    """A rollup's field as a cell: the filtered dimension filled in, the others unknown."""
    return Cell(
        project=f.project or "",
        code=r.code,
        agent=f.agent,
        team=f.team,
        channel="",
        direction=None,
        termination=None,
        selected_by=r.selected_by,
        corrected=r.corrected,
        category=r.category,
    )


def outcome_mix(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    *,
    interaction: Kind,
    project: str | None = None,
    agent: str | None = None,
    team: str | None = None,
    channel: str | None = None,
    direction: str | None = None,
    termination_reason: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    contact_list: str | None = None,
    group_by: GroupBy = "outcome",
    as_defined: AsDefined = "then",
    defined_as: Definitions | None = None,
) -> list[MixRow]:
    """Counts and percentages per group, sorted by key; grouped by outcome, every outcome
    defined for the tenant (globally, or in the filtered project) has a row, and ``-``.
    ``defined_as`` replaces the catalogue "as defined now" reads (an earlier definition set)."""
    f = MixFilter(
        interaction, project, agent, team, channel, direction, termination_reason, date_from, date_to, contact_list
    )
    now = definitions(client, keys, tenant)
    defs = now if defined_as is None else defined_as  # what "as defined now" reads
    # per key: count, by agents, by the system, corrected
    counts: dict[str, list[int]] = {}
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    if group_by == "outcome":
        for code in defined_codes(now, project):
            counts.setdefault(code, [0, 0, 0, 0])
    for day, c, n, money in read_cells(client, keys, tenant, f, group_by, as_defined):
        key = group_key(c, day, group_by, as_defined, defs)
        row = counts.setdefault(key, [0, 0, 0, 0])
        row[0] += n
        row[1] += n if c.selected_by == "agent" else 0
        row[2] += n if c.selected_by == "system" else 0
        row[3] += n if c.corrected else 0
        revenue[key] += money
    total = sum(row[0] for row in counts.values())
    return [
        MixRow(
            key=key,
            count=c[0],
            percentage=100.0 * c[0] / total if total else 0.0,
            agent_selections=c[1],
            system_selections=c[2],
            corrected=c[3],
            revenue=revenue[key],
        )
        for key, c in sorted(counts.items())
    ]
