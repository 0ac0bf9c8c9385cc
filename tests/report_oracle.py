"""An independent oracle for the reports of PRODUCT.md §4, written from PRODUCT.md alone.

It imports nothing from ``projections/`` (nor from ``services/``): it reads the decoded
domain events of one tenant, in log order, with plain loops. It is a reference, not fast
code: a reporting read model is checked against it.

Readings of PRODUCT.md made here (where it is silent or leaves a choice):

* **Which interactions count.** A call counts once it has an outcome or has ended (an
  ended call without an outcome is ``-``); a conversation counts once it is closed (a
  conversation closed without an outcome is ``-``). A call still ringing or a conversation
  still open is not yet in the mix.
* **One row per interaction.** Each interaction is counted once, under the outcome that
  stands: for a call its one outcome; for a conversation the *closing* outcome. PRODUCT.md
  §2: "a conversation may collect several outcomes while kept active -- the closing one counts
  in the outcome mix, the history shows all". So the kept-active selections before the
  closing one are *not* counted (they are history), and the closing outcome is the last one
  selected while the conversation was open.
* **Corrections** replace the outcome they correct (§2: "an event of its own that keeps the
  previous value"): the interaction is counted once, under the corrected code, with the
  correction's definition and revenue. Who the interaction is attributed to (agent, team,
  agent/system selection) stays with the selection that was corrected.
* **Late business results** (selections flagged ``late``, outcomes ``selectable_after_interaction``)
  do not replace the interaction's outcome in the mix (a call gets one outcome; a closed
  conversation keeps its closing one). They are outcomes *of the call* for the rates
  (a call "with a success outcome" includes a success attributed a day later) and their
  revenue is in the rates' revenue ("sum over selections").
* **Dates** are the local date, in the tenant's time zone, of the interaction's start
  (``CallStarted`` / ``ConversationStarted`` ``occurred_at``): one interaction, one day, even
  when its outcome was selected or corrected later. Weeks are ISO weeks of that date.
* **Agent** of an interaction: the agent of its outcome selection (``agent_id``, else the
  ``agent:<id>`` actor); for a system selection or none, the agent the call facts name (last
  of ``CallStarted``/``CallAnswered``/``AgentConnected``). **Team**: the agent's team as of
  that selection's position in the log (``AgentTeamChanged`` events before it); for an
  interaction with no selection, as of the event that closed it.
* **Contact list** of an interaction ("as of each selection", issue 5): the list in force
  when its selection was recorded -- the project's contact list (PRODUCT.md §1 "a project has
  ... a contact list") if it has one, else the list the contact is on: as last saved, unless
  an outcome moved it to another list or removed it from its list since (then that, until a
  revert puts it back where it was). A correction keeps the list of the selection it
  corrects; an interaction with no selection takes the list in force when the call ended or
  the conversation closed.
* **System vs agent selections**: a selection is a system selection when its actor is
  ``system`` (§1: "timers and automatic selections record system"); every other actor is a
  person.
* **Category** rolls up the outcome tree: an outcome's category is the category of the
  root of its parent chain (its own when it has no parent). "As defined then" resolves the
  parents in the catalogue as it stood when the selection was recorded; "as defined now" in
  the current catalogue.
* **Every defined outcome** (global outcomes, and the outcomes of the filtered project or of
  every project) has a row when grouping by outcome, with ``-`` for "no outcome"; rows are
  keyed by code.
* **QA verdicts** (PRODUCT.md §4 names the figures, not their arithmetic): a reviewer (the
  verdict's actor) has one verdict per interaction, their latest; two reviewers count twice.
  A verdict counts for the outcome it reviewed (the one that stood when it was given, kept on
  the event), so a later correction does not move it. The report covers a project's
  interactions that started in a local date range; an outcome's *selections* there are the
  interactions whose outcome stands as it (the last one selected during the interaction, as
  corrected -- a kept-active conversation's latest while it is open). Agreement = confirmed ÷
  reviewed. Confused pairs: (reviewed outcome, should have been) over the disputes. Flags,
  with the thresholds docs/reports.md documents (PRODUCT.md gives none): *disputed* -- at
  least 5 reviews and agreement below 80 %; *overused* -- at least 5 reviews and at least 2
  disputes away from it, more than twice the disputes naming it as the one it should have
  been; *unclear* -- disputed into some other outcome and that one into it.
* **History**: every call and conversation, oldest start first (ties by kind and id), whether
  or not it counts in the mix yet; its outcome is the one that stands (the last selected
  during the interaction, as corrected; ``-`` for none), its agent that selection's agent,
  else the agent the call facts name. Filters: project; agent -- the row's or any of its
  selections'; outcome -- any of its selections (late ones too, as corrected) shows it, ``-``
  for rows with none; kind; local date range of the start. **Sampling** draws from the rows
  the outcome filter and the date range give.
* **Follow-up SLA** ("open and overdue tasks per owner and team"): a task's owner is the
  latest one named (a reassignment names its owners afresh): the agent when one is named,
  else the team, else the role; its team the owning team named. A task is in a period by the
  local day of its due time. At the moment of the report, a task is overdue when still open
  after its due time; completed late when its completion was recorded after its due time.
  SLA met = completed in time ÷ (completed + overdue).
* ``direction`` and ``termination_reason`` are call facts: conversations have neither, so a
  filter on them selects no conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from events.codec import DomainEvent
from events.types import (
    AgentConnected,
    AgentTeamChanged,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallUnanswered,
    ContactListChangeReverted,
    ContactMovedToList,
    ContactRemovedFromList,
    ContactSaved,
    ConversationClosed,
    ConversationStarted,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpOpened,
    FollowUpReassigned,
    OutcomeChanged,
    OutcomeCorrected,
    OutcomeDefined,
    OutcomeDefinition,
    OutcomeSelected,
    ProjectChanged,
    ProjectCreated,
    QaVerdictRecorded,
)

NO_OUTCOME = "-"
GroupBy = Literal["outcome", "category", "agent", "team", "list", "project", "day", "week"]
Kind = Literal["call", "conversation"]
#: a catalogue of definitions: (project_id or None for a global outcome, code) -> definition
Defs = dict[tuple[str | None, str], OutcomeDefinition]


# -- the model the oracle rebuilds ------------------------------------------------------------------


@dataclass
class Sel:
    """One selection as it stands (a correction replaces its code, definition and revenue)."""

    code: str
    definition: OutcomeDefinition
    revenue: Decimal | None
    by_system: bool
    agent: str | None
    team: str | None
    #: the root category in the catalogue at the time it was recorded
    category_then: str
    late: bool
    corrected: bool = False
    contact_list: str | None = None


@dataclass
class Interaction:
    kind: Kind
    id: str
    project: str
    channel: str
    started_at: datetime
    direction: str | None = None
    contact_id: str | None = None
    fact_agent: str | None = None
    agent_connected: bool = False
    answered_at: datetime | None = None
    unanswered_status: str | None = None
    ended_at: datetime | None = None
    termination_reason: str | None = None
    closed_at: datetime | None = None
    close_team: str | None = None
    close_list: str | None = None
    #: non-late selections in order: a call has at most one; a conversation one per selection
    selections: list[Sel] = field(default_factory=list)
    late: list[Sel] = field(default_factory=list)
    #: (previous code, corrected code), in order
    corrections: list[tuple[str, str]] = field(default_factory=list)

    @property
    def counted(self) -> bool:
        if self.kind == "call":
            return bool(self.selections) or self.ended_at is not None
        return self.closed_at is not None

    @property
    def outcome(self) -> Sel | None:
        """The selection that counts in the mix: the call's one outcome, or the outcome the
        conversation closed with (the last one selected while open), as corrected."""
        if not self.selections:
            return None
        if self.kind == "conversation" and self.closed_at is None:
            return None
        return self.selections[-1]

    @property
    def agent(self) -> str | None:
        o = self.outcome
        if o is not None and o.agent is not None:
            return o.agent
        return self.fact_agent

    @property
    def team(self) -> str | None:
        o = self.outcome
        if o is not None and o.agent is not None:
            return o.team
        return self.close_team

    @property
    def contact_list(self) -> str | None:
        o = self.outcome
        return o.contact_list if o is not None else self.close_list

    @property
    def telephony_status(self) -> str | None:
        """From the call facts; the outcome's implied status only when none was reported."""
        if self.answered_at is not None:
            return "person"
        if self.unanswered_status is not None:
            return self.unanswered_status
        o = self.selections[-1] if self.selections else None
        return o.definition.telephony_status if o is not None else None


@dataclass
class Ledger:
    interactions: dict[tuple[Kind, str], Interaction]
    #: every definition ever defined, as it is now
    defs_now: Defs


def _lookup(defs: Defs, project: str | None, code: str) -> OutcomeDefinition | None:
    return defs.get((project, code)) or defs.get((None, code))


def _root_category(defs: Defs, project: str | None, d: OutcomeDefinition) -> str:
    seen = {d.code}
    current = d
    while current.parent is not None:
        parent = _lookup(defs, project, current.parent)
        if parent is None or parent.code in seen:
            break
        seen.add(parent.code)
        current = parent
    return current.category


def _selector(actor: str, agent_id: str | None) -> str | None:
    if agent_id is not None:
        return agent_id
    if actor.startswith("agent:"):
        return actor.removeprefix("agent:")
    return None


def rebuild(events: Sequence[DomainEvent]) -> Ledger:
    """Fold the tenant's events, in log order, into interactions and definitions."""
    defs: Defs = {}
    team_of: dict[str, str | None] = {}
    found: dict[tuple[Kind, str], Interaction] = {}
    project_list: dict[str, str | None] = {}
    saved_list: dict[str, str | None] = {}
    #: contact -> the list an outcome moved it to (None: removed); absent: not moved
    moved_list: dict[str, str | None] = {}

    def list_of(i: Interaction) -> str | None:
        if project_list.get(i.project) is not None:
            return project_list[i.project]
        if i.contact_id is None:
            return None
        return moved_list[i.contact_id] if i.contact_id in moved_list else saved_list.get(i.contact_id)

    for e in events:
        if isinstance(e, OutcomeDefined | OutcomeChanged):
            defs[(e.project_id, e.definition.code)] = e.definition
        elif isinstance(e, ProjectCreated | ProjectChanged):
            project_list[e.project_id] = e.settings.contact_list
        elif isinstance(e, ContactSaved):
            saved_list[e.contact_id] = e.contact_list
        elif isinstance(e, ContactMovedToList):
            moved_list[e.contact_id] = e.to_list
        elif isinstance(e, ContactRemovedFromList):
            moved_list[e.contact_id] = None
        elif isinstance(e, ContactListChangeReverted):
            if e.as_saved:
                moved_list.pop(e.contact_id, None)
            else:
                moved_list[e.contact_id] = e.contact_list
        elif isinstance(e, AgentTeamChanged):
            team_of[e.agent_id] = e.team_id
        elif isinstance(e, CallStarted):
            found[("call", e.call_id)] = Interaction(
                kind="call",
                id=e.call_id,
                project=e.project_id,
                channel=e.channel,
                started_at=e.occurred_at,
                direction=e.direction,
                contact_id=e.contact_id,
                fact_agent=e.agent_id,
                agent_connected=e.agent_id is not None,
            )
        elif isinstance(e, ConversationStarted):
            found[("conversation", e.conversation_id)] = Interaction(
                kind="conversation",
                id=e.conversation_id,
                project=e.project_id,
                channel=e.channel,
                started_at=e.occurred_at,
                contact_id=e.contact_id,
            )
        elif isinstance(e, CallAnswered):
            call = found[("call", e.call_id)]
            call.answered_at = e.occurred_at
            if e.agent_id is not None:
                call.fact_agent = e.agent_id
                call.agent_connected = True
        elif isinstance(e, AgentConnected):
            call = found[("call", e.call_id)]
            call.fact_agent = e.agent_id
            call.agent_connected = True
        elif isinstance(e, CallUnanswered):
            found[("call", e.call_id)].unanswered_status = e.telephony_status
        elif isinstance(e, CallEnded):
            call = found[("call", e.call_id)]
            call.ended_at = e.occurred_at
            call.termination_reason = e.termination_reason
            call.close_team = team_of.get(call.fact_agent) if call.fact_agent else None
            call.close_list = list_of(call)
        elif isinstance(e, ConversationClosed):
            conv = found[("conversation", e.conversation_id)]
            conv.closed_at = e.occurred_at
            conv.close_list = list_of(conv)
        elif isinstance(e, OutcomeSelected):
            target = found[(e.interaction, e.interaction_id)]
            agent = _selector(e.actor, e.agent_id) or target.fact_agent
            sel = Sel(
                code=e.outcome_code,
                definition=e.definition,
                revenue=e.revenue,
                by_system=e.actor == "system",
                agent=agent,
                team=team_of.get(agent) if agent else None,
                category_then=_root_category(defs, e.project_id, e.definition),
                late=e.late,
                contact_list=list_of(target),
            )
            (target.late if e.late else target.selections).append(sel)
        elif isinstance(e, OutcomeCorrected):
            target = found[(e.interaction, e.interaction_id)]
            corrected = target.selections[-1]
            target.corrections.append((corrected.code, e.outcome_code))
            target.selections[-1] = Sel(
                code=e.outcome_code,
                definition=e.definition,
                revenue=e.revenue,
                by_system=corrected.by_system,
                agent=corrected.agent,
                team=corrected.team,
                category_then=_root_category(defs, e.project_id, e.definition),
                late=False,
                corrected=True,
                contact_list=corrected.contact_list,
            )
    return Ledger(interactions=found, defs_now=defs)


# -- the outcome mix ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixRow:
    key: str
    count: int
    #: count ÷ all interactions in the report * 100 (0 when there are none)
    percentage: float
    #: interactions whose outcome a person selected / the system selected
    agent_selections: int
    system_selections: int
    #: interactions whose outcome was corrected
    corrected: int
    #: the revenue of the counted outcomes
    revenue: Decimal


def local_day(at: datetime, tz: str) -> date:
    return at.astimezone(ZoneInfo(tz)).date()


def _iso_week(d: date) -> str:
    year, week, _ = d.isocalendar()
    return f"{year}-W{week:02d}"


def _definition(sel: Sel, project: str, as_defined: str, now: Defs) -> OutcomeDefinition:
    if as_defined == "now":
        return _lookup(now, project, sel.code) or sel.definition
    return sel.definition


def _category(sel: Sel, project: str, as_defined: str, now: Defs) -> str:
    if as_defined == "now":
        return _root_category(now, project, _definition(sel, project, "now", now))
    return sel.category_then


def in_report(
    i: Interaction,
    *,
    tz: str,
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
) -> bool:
    """Whether the interaction is in a report with these filters."""
    day = local_day(i.started_at, tz)
    return (
        i.kind == interaction
        and i.counted
        and (project is None or i.project == project)
        and (agent is None or i.agent == agent)
        and (team is None or i.team == team)
        and (channel is None or i.channel == channel)
        and (direction is None or i.direction == direction)
        and (termination_reason is None or i.termination_reason == termination_reason)
        and (date_from is None or day >= date_from)
        and (date_to is None or day <= date_to)
        and (contact_list is None or i.contact_list == contact_list)
    )


def outcome_mix(
    events: Sequence[DomainEvent],
    *,
    tz: str,
    interaction: Kind = "call",
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
    as_defined: Literal["then", "now"] = "then",
    catalogue_now: Mapping[tuple[str | None, str], OutcomeDefinition] | None = None,
) -> list[MixRow]:
    """Counts and percentages per group, sorted by key (``-`` rows included).

    ``catalogue_now`` (project or None, code) -> definition replaces the current catalogue
    for "as defined now" (e.g. a previous known-good definition set); by default it is the
    catalogue the log ends with.
    """
    ledger = rebuild(events)
    now: Defs = dict(catalogue_now) if catalogue_now is not None else ledger.defs_now
    chosen = [
        i
        for i in ledger.interactions.values()
        if in_report(
            i,
            tz=tz,
            interaction=interaction,
            project=project,
            agent=agent,
            team=team,
            channel=channel,
            direction=direction,
            termination_reason=termination_reason,
            date_from=date_from,
            date_to=date_to,
            contact_list=contact_list,
        )
    ]
    counts: dict[str, list[int]] = {}
    revenue: dict[str, Decimal] = {}
    if group_by == "outcome":
        for (scope, code), _d in ledger.defs_now.items():
            if scope is None or project is None or scope == project:
                counts.setdefault(code, [0, 0, 0, 0])
                revenue.setdefault(code, Decimal(0))
        counts.setdefault(NO_OUTCOME, [0, 0, 0, 0])
        revenue.setdefault(NO_OUTCOME, Decimal(0))
    for i in chosen:
        o = i.outcome
        if group_by == "outcome":
            key = o.code if o else NO_OUTCOME
        elif group_by == "category":
            key = _category(o, i.project, as_defined, now) if o else NO_OUTCOME
        elif group_by == "agent":
            key = i.agent or NO_OUTCOME
        elif group_by == "team":
            key = i.team or NO_OUTCOME
        elif group_by == "list":
            key = i.contact_list or NO_OUTCOME
        elif group_by == "project":
            key = i.project
        elif group_by == "day":
            key = local_day(i.started_at, tz).isoformat()
        else:
            key = _iso_week(local_day(i.started_at, tz))
        row = counts.setdefault(key, [0, 0, 0, 0])
        row[0] += 1
        if o is not None:
            row[1 if not o.by_system else 2] += 1
            row[3] += int(o.corrected)
        if o is not None and o.revenue is not None:
            revenue[key] = revenue.get(key, Decimal(0)) + o.revenue
        revenue.setdefault(key, Decimal(0))
    total = len(chosen)
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


# -- rates ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """The rates of PRODUCT.md §4 for one project and period; a rate is None when its
    denominator is 0. Numerators and denominators are kept so tests can check them."""

    calls: int
    live_answered: int
    contact_calls: int
    presentation_calls: int
    success_calls: int
    abandoned_calls: int
    revenue: Decimal
    contact_rate: float | None
    presentation_rate: float | None
    success_rate: float | None
    abandoned_rate: float | None
    average_handle_seconds: float | None
    average_wrap_up_seconds: float | None
    fcr_conversations: int
    closed_conversations: int
    first_call_resolution: float | None


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _standing(i: Interaction) -> list[Sel]:
    return [*i.selections[-1:], *i.late]


def rates(
    events: Sequence[DomainEvent],
    *,
    tz: str,
    project: str,
    day: date | None = None,
    rolling_30_days_ending: date | None = None,
    as_defined: Literal["then", "now"] = "then",
) -> Rates:
    """The project's rates for one local day, or for the 30 local days ending on a date
    (that date and the 29 before it). Calls and conversations are in the period by the local
    date of their start.

    * live-answered calls: calls whose telephony status is ``person`` (a person answered);
    * contact rate = calls with a ``contact`` outcome ÷ live-answered calls; presentation and
      success rate = calls with a ``presentation`` / ``success`` outcome ÷ calls with a
      ``contact`` outcome -- "a call with a flag outcome": its outcome (as corrected) or a
      late business result on it carries the flag;
    * revenue: the sum over the call selections that stand (the outcome as corrected, and late
      business results). Calls only: a ``close_conversation_with_call`` outcome repeats the
      call's selection (and its revenue) on the conversation, which would count it twice;
    * abandoned rate = calls with status ``drop_hang_up`` and no agent connected (no agent on
      ``CallStarted``, ``CallAnswered`` or ``AgentConnected``) ÷ live-answered calls;
    * handle time of a live-answered call that ended = talk time (answered → ended) + its
      wrap-up time; wrap-up time = from the end to the selection of its outcome (0 when the
      outcome was selected before the end; a call without an outcome yet has none and is left
      out of the wrap-up average, its handle time is its talk time);
    * first-call resolution = closed conversations of the period whose closing outcome (as
      corrected) has ``first_call_resolution`` and after which no conversation with the same
      contact started in the project within 7 days of the close ÷ closed conversations of the
      period. A conversation without a contact cannot have a further one.
    """
    if (day is None) == (rolling_30_days_ending is None):
        raise ValueError("give a day or rolling_30_days_ending")
    if day is not None:
        first, last = day, day
    else:
        assert rolling_30_days_ending is not None
        first, last = rolling_30_days_ending - timedelta(days=29), rolling_30_days_ending
    ledger = rebuild(events)
    now = ledger.defs_now
    # when each call's outcome was first selected (for wrap-up time)
    selected_at: dict[str, datetime] = {}
    for e in events:
        if (
            isinstance(e, OutcomeSelected)
            and e.interaction == "call"
            and not e.late
            and e.interaction_id not in selected_at
        ):
            selected_at[e.interaction_id] = e.occurred_at

    def flag(i: Interaction, name: str) -> bool:
        return any(getattr(_definition(s, i.project, as_defined, now).flags, name) for s in _standing(i))

    def in_period(i: Interaction) -> bool:
        return i.project == project and first <= local_day(i.started_at, tz) <= last

    calls = [i for i in ledger.interactions.values() if i.kind == "call" and in_period(i)]
    live = [c for c in calls if c.telephony_status == "person"]
    contact = [c for c in calls if flag(c, "contact")]
    presentation = [c for c in calls if flag(c, "presentation")]
    success = [c for c in calls if flag(c, "success")]
    abandoned = [c for c in calls if c.telephony_status == "drop_hang_up" and not c.agent_connected]
    revenue = sum((s.revenue or Decimal(0) for c in calls for s in _standing(c)), Decimal(0))
    handle: list[float] = []
    wrap: list[float] = []
    for c in live:
        if c.answered_at is None or c.ended_at is None:
            continue
        talk = (c.ended_at - c.answered_at).total_seconds()
        w = 0.0
        if c.id in selected_at:
            w = max(0.0, (selected_at[c.id] - c.ended_at).total_seconds())
            wrap.append(w)
        handle.append(talk + w)

    conversations = [
        i for i in ledger.interactions.values() if i.kind == "conversation" and in_period(i) and i.closed_at is not None
    ]
    resolved = 0
    for conv in conversations:
        o = conv.outcome
        if o is None or not _definition(o, conv.project, as_defined, now).flags.first_call_resolution:
            continue
        assert conv.closed_at is not None
        closed_at = conv.closed_at
        further = any(
            other.kind == "conversation"
            and other is not conv
            and other.project == conv.project
            and conv.contact_id is not None
            and other.contact_id == conv.contact_id
            and closed_at <= other.started_at <= closed_at + timedelta(days=7)
            for other in ledger.interactions.values()
        )
        resolved += not further
    return Rates(
        calls=len(calls),
        live_answered=len(live),
        contact_calls=len(contact),
        presentation_calls=len(presentation),
        success_calls=len(success),
        abandoned_calls=len(abandoned),
        revenue=revenue,
        contact_rate=_ratio(len(contact), len(live)),
        presentation_rate=_ratio(len(presentation), len(contact)),
        success_rate=_ratio(len(success), len(contact)),
        abandoned_rate=_ratio(len(abandoned), len(live)),
        average_handle_seconds=sum(handle) / len(handle) if handle else None,
        average_wrap_up_seconds=sum(wrap) / len(wrap) if wrap else None,
        fcr_conversations=resolved,
        closed_conversations=len(conversations),
        first_call_resolution=_ratio(resolved, len(conversations)),
    )


# -- QA verdicts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QaRow:
    outcome: str
    selections: int
    reviewed: int
    confirmed: int
    disputed: int
    agreement_rate: float | None
    disputed_into: int
    flags: list[str]
    unclear_with: list[str]


@dataclass(frozen=True)
class Qa:
    outcomes: list[QaRow]
    #: (outcome reviewed, should have been, disputes), most first, then by the codes
    confused_pairs: list[tuple[str, str, int]]
    reviewed: int
    confirmed: int
    agreement_rate: float | None


def qa(events: Sequence[DomainEvent], *, tz: str, project: str, date_from: date, date_to: date) -> Qa:
    """The QA report of a project's interactions that started in the local date range."""
    ledger = rebuild(events)
    #: (kind, id) -> reviewer -> (outcome reviewed, should have been or None): the latest
    latest: dict[tuple[str, str], dict[str, tuple[str, str | None]]] = {}
    for e in events:
        if isinstance(e, QaVerdictRecorded):
            latest.setdefault((e.interaction, e.interaction_id), {})[e.actor] = (e.outcome_code, e.should_have_been)
    chosen = [
        i
        for i in ledger.interactions.values()
        if i.project == project and date_from <= local_day(i.started_at, tz) <= date_to
    ]
    selections: dict[str, int] = {}
    verdicts: list[tuple[str, str | None]] = []
    for i in chosen:
        if i.selections:
            code = i.selections[-1].code
            selections[code] = selections.get(code, 0) + 1
        verdicts.extend(latest.get((i.kind, i.id), {}).values())
    codes = set(selections) | {code for code, _ in verdicts} | {shb for _, shb in verdicts if shb is not None}
    disputes = [(code, shb) for code, shb in verdicts if shb is not None]
    rows = []
    for code in sorted(codes):
        reviewed = sum(1 for c, _ in verdicts if c == code)
        confirmed = sum(1 for c, shb in verdicts if c == code and shb is None)
        away = reviewed - confirmed
        into = sum(1 for _, shb in disputes if shb == code)
        flags = []
        if reviewed >= 5 and confirmed / reviewed < 0.8:
            flags.append("disputed")
        if reviewed >= 5 and away >= 2 and away > 2 * into:
            flags.append("overused")
        both_ways = sorted({b for a, b in disputes if a == code and (b, code) in disputes})
        if both_ways:
            flags.append("unclear")
        rows.append(
            QaRow(
                outcome=code,
                selections=selections.get(code, 0),
                reviewed=reviewed,
                confirmed=confirmed,
                disputed=away,
                agreement_rate=confirmed / reviewed if reviewed else None,
                disputed_into=into,
                flags=flags,
                unclear_with=both_ways,
            )
        )
    pairs = sorted({(a, b, disputes.count((a, b))) for a, b in disputes}, key=lambda p: (-p[2], p[0], p[1]))
    confirmed_all = sum(1 for _, shb in verdicts if shb is None)
    return Qa(
        outcomes=rows,
        confused_pairs=pairs,
        reviewed=len(verdicts),
        confirmed=confirmed_all,
        agreement_rate=confirmed_all / len(verdicts) if verdicts else None,
    )


# -- the history table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    kind: Kind
    id: str
    outcome: str
    agent: str | None
    #: the codes of the selections made during the interaction, as corrected, then the late ones
    outcomes: list[str]
    late: list[str]
    corrections: list[tuple[str, str]]


def history(
    events: Sequence[DomainEvent],
    *,
    tz: str,
    project: str | None = None,
    agent: str | None = None,
    outcome: str | None = None,
    kind: Kind | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[HistoryRow]:
    """The history table's rows with these filters, in its order."""
    found = []
    for i in rebuild(events).interactions.values():
        every = [*i.selections, *i.late]
        codes = {s.code for s in every}
        row_agent = i.selections[-1].agent if i.selections and i.selections[-1].agent else i.fact_agent
        day = local_day(i.started_at, tz)
        if (
            (project is None or i.project == project)
            and (agent is None or agent == row_agent or any(s.agent == agent for s in every))
            and (outcome is None or outcome in codes or (outcome == NO_OUTCOME and not codes))
            and (kind is None or i.kind == kind)
            and (date_from is None or day >= date_from)
            and (date_to is None or day <= date_to)
        ):
            found.append((i.started_at, f"{i.kind}:{i.id}", i, row_agent))
    return [
        HistoryRow(
            kind=i.kind,
            id=i.id,
            outcome=i.selections[-1].code if i.selections else NO_OUTCOME,
            agent=row_agent,
            outcomes=[s.code for s in i.selections],
            late=[s.code for s in i.late],
            corrections=list(i.corrections),
        )
        for _, _, i, row_agent in sorted(found, key=lambda x: (x[0], x[1]))
    ]


# -- follow-up SLA -------------------------------------------------------------------------------------


def follow_up_sla(
    events: Sequence[DomainEvent],
    *,
    tz: str,
    now: datetime,
    group_by: Literal["owner", "team"] = "owner",
    project: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> dict[str, tuple[int, int, int, int, int, int, int, float | None]]:
    """Per owner (or team): tasks, open, completed, cancelled, overdue, completed in time,
    completed late, SLA met -- at the moment ``now``."""
    tasks: dict[object, dict[str, object]] = {}
    for e in events:
        if isinstance(e, FollowUpOpened):
            tasks[e.originator_id] = {
                "project": e.project_id,
                "due": e.due_at,
                "owners": (None, e.owner_team, e.owner_role),
                "status": "open",
                "done": None,
            }
        elif isinstance(e, FollowUpReassigned):
            tasks[e.originator_id]["owners"] = (e.owner_agent, e.owner_team, e.owner_role)
        elif isinstance(e, FollowUpCompleted):
            tasks[e.originator_id].update(status="completed", done=e.recorded_at)
        elif isinstance(e, FollowUpCancelled):
            tasks[e.originator_id]["status"] = "cancelled"
    groups: dict[str, list[int]] = {}
    for t in tasks.values():
        due = t["due"]
        assert isinstance(due, datetime)
        agent, team, role = t["owners"]  # type: ignore[misc]
        day = local_day(due, tz)
        if (project is not None and t["project"] != project) or (date_from and day < date_from):
            continue
        if date_to and day > date_to:
            continue
        if group_by == "team":
            key = team or NO_OUTCOME
        else:
            key = f"agent:{agent}" if agent else f"team:{team}" if team else f"role:{role}" if role else NO_OUTCOME
        g = groups.setdefault(key, [0] * 7)
        done = t["done"]
        g[0] += 1
        g[1] += t["status"] == "open"
        g[2] += t["status"] == "completed"
        g[3] += t["status"] == "cancelled"
        g[4] += t["status"] == "open" and due < now
        g[5] += isinstance(done, datetime) and done <= due
        g[6] += isinstance(done, datetime) and done > due
    return {
        key: (*g, g[5] / (g[2] + g[4]) if g[2] + g[4] else None)  # type: ignore[misc]
        for key, g in sorted(groups.items())
    }
