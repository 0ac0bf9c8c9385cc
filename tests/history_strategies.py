"""Random valid event histories, made by driving the real Ledger against real Redis.

A hypothesis strategy draws a *plan* (outcome definitions with varied flags, categories and
parents; calls and conversations with their facts, selections, corrections, late results and
late recordings; team changes; a definition change), and ``play`` carries it out through the
Ledger's commands. Every step the rules refuse is skipped (nothing is written for it), so the
log only ever holds a history the aggregates accepted. ``tenant_events`` reads the tenant's
events back from the store, in log order, decoded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

import msgspec
from hypothesis import strategies as st

from events.codec import DomainEvent
from events.types import (
    OutcomeDefinition,
    OutcomeFlags,
    ProjectSettings,
    Revenue,
    TelephonyStatus,
    WrapUp,
)
from services.catalogue import Catalogue
from services.errors import DomainError
from services.ledger import Ledger
from services.rules import Context
from services.rules import config as config_rules
from services.rules import interactions as rules
from services.rules.interactions import Choice
from services.runtime import Runtime
from tests.helpers import new_runtime

TZ = "Europe/Helsinki"
#: Helsinki leaves summer time on 2026-10-25 at 04:00 local (01:00 UTC): that day has 25 hours
DST_END = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
#: histories spread over 2026-10-23 21:00 UTC (local midnight of the 24th) and the next 4 days
BASE = datetime(2026, 10, 23, 21, 0, tzinfo=UTC)
SPREAD_MINUTES = 4 * 24 * 60

AGENTS = ("anna", "bob", "cara")
TEAMS = ("north", "south")
PROJECTS = ("p1", "p2")
CONTACTS = ("k1", "k2", "k3")
LISTS = ("LA", "LB")
#: the contacts' lists when the world is configured (k3 is on none)
CONTACT_LISTS = {"k1": "LA", "k2": "LB", "k3": None}
REASONS = ("agent_hangup", "customer_hangup", "network")
CHANNELS = ("chat", "sms")
UNANSWERED: tuple[TelephonyStatus, ...] = ("no_answer", "busy", "answering_machine", "drop_hang_up")
UNANSWERED_CODE = {"no_answer": "NO_ANSWER", "busy": "BUSY", "answering_machine": "ANSWERING_MACHINE"}
UNANSWERED_CODE["drop_hang_up"] = "DROPPED"
SUPERVISOR = "supervisor:sam"
REVIEWERS = ("reviewer:rita", "reviewer:rob", "supervisor:sam")


# -- a driver over the Ledger's commands ------------------------------------------------------------


class Driver:
    """The Ledger's commands with plain arguments; ``try_`` runs one and skips a refusal."""

    def __init__(self, runtime: Runtime, tenant: str) -> None:
        self.runtime = runtime
        self.tenant = tenant
        self.refused: list[str] = []

    @property
    def ledger(self) -> Ledger:
        return self.runtime.ledger(self.tenant)

    def ctx(self, actor: str) -> Context:
        return Context(self.tenant, actor, datetime.now(UTC))

    @contextmanager
    def attempt(self, what: str) -> Iterator[None]:
        """Run one command; a refusal (nothing written) is noted and skipped."""
        try:
            yield
        except DomainError as refused:
            self.refused.append(f"{what}: {refused}")

    # configuration
    def configure(self, rule: Callable[[Catalogue, Context], Sequence[DomainEvent]]) -> None:
        ctx = self.ctx("admin:test")
        self.ledger.configure(ctx, "config", "x", lambda c: rule(c, ctx))

    def define(self, definition: OutcomeDefinition, project_id: str | None = None) -> None:
        self.ledger.define_outcome(self.ctx("admin:test"), definition, project_id=project_id)

    def change(self, definition: OutcomeDefinition) -> None:
        self.configure(lambda c, ctx: config_rules.change_outcome(c, ctx, definition))

    def project(self, project_id: str, settings: ProjectSettings) -> None:
        self.ledger.create_project(self.ctx("admin:test"), project_id, settings)

    def agent(self, agent_id: str) -> None:
        self.configure(lambda c, ctx: config_rules.register_agent(c, ctx, agent_id, agent_id.title()))

    def team(self, team_id: str) -> None:
        self.configure(lambda c, ctx: config_rules.create_team(c, ctx, team_id, team_id.title()))

    def move(self, agent_id: str, team_id: str | None) -> None:
        self.configure(lambda c, ctx: config_rules.set_agent_team(c, ctx, agent_id, team_id))

    def project_list(self, project_id: str, contact_list: str | None) -> None:
        """The project's contact list changes (its other settings stay)."""

        def change(c: Catalogue, ctx: Context) -> Sequence[DomainEvent]:
            settings = msgspec.structs.replace(c.projects[project_id].settings, contact_list=contact_list)
            return config_rules.change_project(c, ctx, project_id, settings)

        self.configure(change)

    def save_contact(self, contact_id: str, contact_list: str | None) -> None:
        self.ledger.save_contact(
            self.ctx("admin:test"),
            contact_id=contact_id,
            name=None,
            numbers=(),
            time_zone="UTC",
            company_id=None,
            contact_list=contact_list,
        )

    # calls
    def start_call(
        self,
        call_id: str,
        project_id: str,
        direction: str,
        at: datetime,
        *,
        agent: str | None = None,
        conversation_id: str | None = None,
        contact_id: str | None = None,
    ) -> None:
        self.ledger.start_call(
            self.ctx(f"agent:{agent}" if agent else "system"),
            call_id=call_id,
            project_id=project_id,
            direction=direction,
            occurred_at=at,
            agent_id=agent,
            conversation_id=conversation_id,
            contact_id=contact_id,
        )

    def answer(self, call_id: str, at: datetime, agent: str | None = None) -> None:
        ctx = self.ctx("system")
        self.ledger.call_fact(
            ctx, call_id, lambda cat, call, conv: rules.answer_call(call, ctx, occurred_at=at, agent_id=agent)
        )

    def connect(self, call_id: str, at: datetime, agent: str) -> None:
        ctx = self.ctx("system")
        self.ledger.call_fact(
            ctx, call_id, lambda cat, call, conv: rules.connect_agent(call, ctx, occurred_at=at, agent_id=agent)
        )

    def unanswered(self, call_id: str, at: datetime, status: str) -> None:
        ctx = self.ctx("system")
        self.ledger.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.call_unanswered(
                cat, call, ctx, occurred_at=at, status=status, conversation=conv
            ),
        )

    def end(self, call_id: str, at: datetime, reason: str = "") -> None:
        self.ledger.end_call(self.ctx("system"), call_id=call_id, occurred_at=at, termination_reason=reason)

    def select(
        self, call_id: str, code: str, at: datetime, *, agent: str | None = None, revenue: Decimal | None = None
    ) -> None:
        actor = f"agent:{agent}" if agent else "system"
        self.ledger.select_call_outcome(self.ctx(actor), call_id=call_id, choice=Choice(code, at, revenue, agent))

    def correct(self, call_id: str, code: str, at: datetime, revenue: Decimal | None = None) -> None:
        ctx = self.ctx(SUPERVISOR)
        self.ledger.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.correct_outcome(
                cat, call, ctx, Choice(code, at, revenue), reason="QA review", conversation=conv
            ),
        )

    def attach_call(self, call_id: str, at: datetime) -> None:
        ctx = self.ctx("system")
        self.ledger.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.attach_reference(
                call, ctx, kind="recording", reference=f"rec-{call_id}", occurred_at=at
            ),
        )

    def verdict(self, kind: Literal["call", "conversation"], id_: str, reviewer: str, should: str | None) -> None:
        """A QA verdict: confirmed, or (naming the outcome it should have been) disputed."""
        self.ledger.record_verdict(
            self.ctx(reviewer),
            kind,
            id_,
            verdict="confirmed" if should is None else "disputed",
            should_have_been=should,
        )

    # conversations
    def start_conversation(
        self,
        conversation_id: str,
        project_id: str,
        at: datetime,
        *,
        channel: str = "chat",
        contact_id: str | None = None,
    ) -> None:
        self.ledger.start_conversation(
            self.ctx("system"),
            conversation_id=conversation_id,
            project_id=project_id,
            channel=channel,
            occurred_at=at,
            contact_id=contact_id,
        )

    def select_conversation(
        self, conversation_id: str, code: str, at: datetime, *, agent: str | None = None, revenue: Decimal | None = None
    ) -> None:
        ctx = self.ctx(f"agent:{agent}" if agent else "system")
        self.ledger.conversation_fact(
            ctx,
            conversation_id,
            lambda cat, conv: rules.select_outcome(cat, conv, ctx, Choice(code, at, revenue, agent)),
        )

    def correct_conversation(
        self, conversation_id: str, code: str, at: datetime, revenue: Decimal | None = None
    ) -> None:
        ctx = self.ctx(SUPERVISOR)
        self.ledger.conversation_fact(
            ctx,
            conversation_id,
            lambda cat, conv: rules.correct_outcome(cat, conv, ctx, Choice(code, at, revenue), reason="QA review"),
        )

    def close(self, conversation_id: str, at: datetime, agent: str | None = None) -> None:
        ctx = self.ctx(f"agent:{agent}" if agent else "system")
        self.ledger.conversation_fact(
            ctx, conversation_id, lambda cat, conv: rules.close_conversation(cat, conv, ctx, occurred_at=at)
        )

    def attach_conversation(self, conversation_id: str, at: datetime) -> None:
        ctx = self.ctx("system")
        self.ledger.conversation_fact(
            ctx,
            conversation_id,
            lambda cat, conv: rules.attach_reference(
                conv, ctx, kind="transcript", reference=f"tr-{conversation_id}", occurred_at=at
            ),
        )


def tenant_events(runtime: Runtime, tenant: str) -> list[DomainEvent]:
    """The tenant's decoded events, in log order, read back from the store."""
    ledger = runtime.ledger(tenant)
    head = ledger.recorder.max_notification_id() or 0
    events: list[DomainEvent] = []
    for notification in ledger.recorder.select_notifications(1, head):
        event = ledger.mapper.to_domain_event(notification)
        if isinstance(event, DomainEvent) and event.tenant_id == tenant:
            events.append(event)
    return events


def new_tenant(redis_url: str, tenant: str = "acme", time_zone: str = TZ) -> Driver:
    """A runtime on a shard of its own (a fresh one per hypothesis example) with one tenant."""
    runtime = new_runtime(redis_url, "h" + uuid.uuid4().hex[:12])
    runtime.create_tenant(tenant, tenant.title(), time_zone)
    return Driver(runtime, tenant)


# -- plans -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomePlan:
    code: str
    category: str
    parent: str | None
    contact: bool
    presentation: bool
    success: bool
    fcr: bool
    revenue: Revenue
    applies_to: tuple[Literal["call", "conversation"], ...] = ("call", "conversation")
    keeps_active: bool = False
    late: bool = False
    close_with_call: bool = False

    def definition(self) -> OutcomeDefinition:
        return OutcomeDefinition(
            code=self.code,
            name=self.code.replace("_", " ").title(),
            category=self.category,
            parent=self.parent,
            flags=OutcomeFlags(
                contact=self.contact,
                presentation=self.presentation,
                success=self.success,
                revenue=self.revenue,
                first_call_resolution=self.fcr,
            ),
            applies_to=self.applies_to,
            keeps_conversation_active=self.keeps_active,
            selectable_after_interaction=self.late,
            close_conversation_with_call=self.close_with_call,
        )


@dataclass(frozen=True)
class Pick:
    """A selection: the code, who selects it (an agent, or None for the system), revenue."""

    code: str
    agent: str | None
    revenue: Decimal | None
    minutes_after: int


@dataclass(frozen=True)
class CallPlan:
    call_id: str
    project: str
    direction: Literal["inbound", "outbound"]
    start_minute: int
    agent: str | None
    #: "answered", a telephony status for an unanswered call, or None (no such fact)
    answer: str | None
    connect: str | None
    talk_seconds: int
    ended: bool
    reason: str
    pick: Pick | None
    in_conversation: bool
    contact: str | None


@dataclass(frozen=True)
class ConversationPlan:
    conversation_id: str
    project: str
    channel: str
    start_minute: int
    contact: str | None
    picks: tuple[Pick, ...]
    close: bool


@dataclass(frozen=True)
class Later:
    """A step after every interaction was played: a correction (``code``), a late business
    result (``late``), or a recording/transcript arriving late (``recording``)."""

    kind: Literal["correct", "late", "recording", "move"]
    target: str
    code: str = ""
    revenue: Decimal | None = None
    minutes_after: int = 0
    team: str | None = None


@dataclass(frozen=True)
class HistoryPlan:
    outcomes: tuple[OutcomePlan, ...]
    calls: tuple[CallPlan, ...]
    conversations: tuple[ConversationPlan, ...]
    #: team moves played between interactions: (after how many interactions, agent, team)
    moves: tuple[tuple[int, str, str | None], ...]
    later: tuple[Later, ...]
    #: contact-list changes played between interactions: (after how many interactions, a
    #: contact re-saved on a list, or "p1" given a project list, the list or None)
    list_moves: tuple[tuple[int, str, str | None], ...] = ()
    #: an outcome whose flags change at the end ("as defined then" and "now" differ)
    change: OutcomePlan | None = None
    #: QA verdicts, after the later steps: (interaction, reviewer, should have been or None)
    verdicts: tuple[tuple[str, str, str | None], ...] = ()
    codes: dict[str, OutcomePlan] = field(default_factory=dict, compare=False)


def _revenue_for(flag: Revenue) -> st.SearchStrategy[Decimal | None]:
    amount = st.integers(1, 500).map(Decimal)
    if flag == "none":
        return st.none()
    if flag == "required":
        return amount
    return st.none() | amount


CATEGORIES = st.sampled_from(("sale", "no_sale", "follow_up", ""))


@st.composite
def outcome_plans(draw: st.DrawFn) -> tuple[OutcomePlan, ...]:
    """Fixed codes with the structural properties the histories need; random reporting
    flags, categories and parents."""
    rev: st.SearchStrategy[Revenue] = st.sampled_from(("none", "optional", "required"))
    made: list[OutcomePlan] = []
    shapes: list[tuple[str, dict[str, object]]] = [
        ("SALE", {}),
        ("NO_INTEREST", {}),
        ("CALLBACK", {}),
        ("UPSELL", {}),
        ("KEEP_OPEN", {"applies_to": ("conversation",), "keeps_active": True}),
        ("ACCEPTED_LATER", {"late": True}),
        ("RESOLVED_BOTH", {"close_with_call": True}),
    ]
    for code, extra in shapes:
        parent = draw(st.none() | st.sampled_from([m.code for m in made])) if made else None
        made.append(
            OutcomePlan(
                code=code,
                category=draw(CATEGORIES),
                parent=parent,
                contact=draw(st.booleans()),
                presentation=draw(st.booleans()),
                success=draw(st.booleans()),
                fcr=draw(st.booleans()),
                revenue=draw(rev),
                **extra,  # type: ignore[arg-type]
            )
        )
    return tuple(made)


def _pick(draw: st.DrawFn, outcomes: Sequence[OutcomePlan], codes: Sequence[str], agent: str | None) -> Pick:
    code = draw(st.sampled_from(list(codes)))
    flag: Revenue = next((o.revenue for o in outcomes if o.code == code), "none")
    return Pick(code, agent, draw(_revenue_for(flag)), draw(st.integers(0, 30)))


@st.composite
def history_plans(draw: st.DrawFn, max_calls: int = 10, max_conversations: int = 5) -> HistoryPlan:
    outcomes = draw(outcome_plans())
    call_codes = [o.code for o in outcomes if "call" in o.applies_to and not o.late] + ["BUSY"]
    conv_codes = [o.code for o in outcomes if "conversation" in o.applies_to and not o.late]
    agents = st.sampled_from(AGENTS)
    calls: list[CallPlan] = []
    for n in range(draw(st.integers(1, max_calls))):
        answer = draw(st.sampled_from(("answered", "answered", None, *UNANSWERED)))
        agent = draw(st.none() | agents)
        connect = draw(st.none() | agents) if answer == "answered" else None
        pick: Pick | None = None
        mode = draw(st.sampled_from(("agent", "agent", "system", "none")))
        if answer in UNANSWERED and mode != "none":
            # the dialer's result, applied by the system or picked by an agent (preview dialling)
            pick = Pick(UNANSWERED_CODE[answer], None if mode == "system" else (agent or "anna"), None, 0)
        elif mode == "agent":
            pick = _pick(draw, outcomes, call_codes, agent or connect or draw(agents))
        elif mode == "system":
            pick = _pick(draw, outcomes, call_codes, None)
        calls.append(
            CallPlan(
                call_id=f"call-{n}",
                project=draw(st.sampled_from(PROJECTS)),
                direction=draw(st.sampled_from(("inbound", "outbound"))),
                start_minute=draw(st.integers(0, SPREAD_MINUTES)),
                agent=agent,
                answer=answer,
                connect=connect,
                talk_seconds=draw(st.integers(5, 900)),
                ended=draw(st.booleans()) or draw(st.booleans()),
                reason=draw(st.sampled_from(REASONS)),
                pick=pick,
                in_conversation=draw(st.booleans()),
                contact=draw(st.none() | st.sampled_from(CONTACTS)),
            )
        )
    conversations: list[ConversationPlan] = []
    for n in range(draw(st.integers(0, max_conversations))):
        # kept active for a while (0-2 KEEP_OPEN selections), then maybe any outcome
        kept = [_pick(draw, outcomes, ["KEEP_OPEN"], draw(agents)) for _ in range(draw(st.integers(0, 2)))]
        rest = [_pick(draw, outcomes, conv_codes, draw(agents)) for _ in range(draw(st.integers(0, 1)))]
        picks = (*kept, *rest)
        conversations.append(
            ConversationPlan(
                conversation_id=f"conv-{n}",
                project=draw(st.sampled_from(PROJECTS)),
                channel=draw(st.sampled_from(CHANNELS)),
                start_minute=draw(st.integers(0, SPREAD_MINUTES)),
                contact=draw(st.none() | st.sampled_from(CONTACTS)),
                picks=picks,
                close=draw(st.booleans()),
            )
        )
    total = len(calls) + len(conversations)
    moves = tuple(
        draw(st.tuples(st.integers(0, total), agents, st.none() | st.sampled_from(TEAMS)))
        for _ in range(draw(st.integers(0, 3)))
    )
    list_moves = tuple(
        draw(st.tuples(st.integers(0, total), st.sampled_from((*CONTACTS, "p1")), st.none() | st.sampled_from(LISTS)))
        for _ in range(draw(st.integers(0, 3)))
    )
    targets = [c.call_id for c in calls] + [c.conversation_id for c in conversations]
    later: list[Later] = []
    for _ in range(draw(st.integers(0, 4))):
        kind: Literal["correct", "late", "recording", "move"] = draw(
            st.sampled_from(("correct", "correct", "late", "recording", "move"))
        )
        target = draw(st.sampled_from(targets))
        if kind == "move":
            later.append(Later("move", draw(agents), team=draw(st.none() | st.sampled_from(TEAMS))))
            continue
        codes = call_codes if target.startswith("call") else conv_codes
        if kind == "late":
            codes = ["ACCEPTED_LATER"]
        pick = _pick(draw, outcomes, codes, None)
        later.append(Later(kind, target, pick.code, pick.revenue, draw(st.integers(60, 3 * 24 * 60))))
    change = None
    if draw(st.booleans()):
        victim = draw(st.sampled_from([o for o in outcomes if o.code in ("SALE", "NO_INTEREST", "CALLBACK")]))
        change = OutcomePlan(
            code=victim.code,
            category=draw(CATEGORIES),
            parent=victim.parent,
            contact=not victim.contact,
            presentation=draw(st.booleans()),
            success=not victim.success,
            fcr=not victim.fcr,
            revenue=victim.revenue,
            applies_to=victim.applies_to,
        )
    # on a few interactions and into a few outcomes, so outcomes gather enough reviews and
    # disputes to be flagged
    verdicts = tuple(
        (
            draw(st.sampled_from(targets[:4])),
            draw(st.sampled_from(REVIEWERS)),
            draw(st.sampled_from((None, None, "SALE", "NO_INTEREST", "CALLBACK"))),
        )
        for _ in range(draw(st.integers(0, 12)))
    )
    return HistoryPlan(
        outcomes=outcomes,
        calls=tuple(calls),
        conversations=tuple(conversations),
        moves=moves,
        later=tuple(later),
        list_moves=list_moves,
        change=change,
        verdicts=verdicts,
        codes={o.code: o for o in outcomes},
    )


# -- playing a plan ----------------------------------------------------------------------------------


def configure_world(d: Driver, outcomes: Sequence[OutcomePlan]) -> None:
    """Agents in teams, the plan's outcomes, and two projects: an outbound one with
    mandatory wrap-up and an inbound one where wrap-up is optional."""
    for team_id in TEAMS:
        d.team(team_id)
    for agent, team in zip(AGENTS, (*TEAMS, None), strict=True):
        d.agent(agent)
        if team is not None:
            d.move(agent, team)
    for o in outcomes:
        d.define(o.definition())
    d.project("p1", ProjectSettings(name="Outbound", direction="outbound"))
    d.project("p2", ProjectSettings(name="Inbound", direction="blended", wrap_up=WrapUp(mode="optional")))
    for contact, contact_list in CONTACT_LISTS.items():
        d.save_contact(contact, contact_list)


def _at(minute: int) -> datetime:
    return BASE + timedelta(minutes=minute)


def play_call(d: Driver, c: CallPlan) -> None:
    start = _at(c.start_minute)
    conversation_id = f"{c.call_id}-conv" if c.in_conversation else None
    if conversation_id is not None:
        with d.attempt("start conversation"):
            d.start_conversation(conversation_id, c.project, start, channel="voice", contact_id=c.contact)
    try:
        d.start_call(
            c.call_id,
            c.project,
            c.direction,
            start,
            agent=c.agent,
            conversation_id=conversation_id,
            contact_id=c.contact,
        )
    except DomainError:
        return
    answered = start + timedelta(seconds=7)
    end = answered + timedelta(seconds=c.talk_seconds)
    if c.answer == "answered":
        with d.attempt("answer"):
            d.answer(c.call_id, answered)
        if c.connect is not None:
            with d.attempt("connect"):
                d.connect(c.call_id, answered + timedelta(seconds=2), c.connect)
    elif c.answer is not None:
        with d.attempt("unanswered"):
            d.unanswered(c.call_id, answered, c.answer)
    if c.ended:
        with d.attempt("end"):
            d.end(c.call_id, end, c.reason)
    if c.pick is not None:
        p = c.pick
        with d.attempt("select"):
            d.select(c.call_id, p.code, end + timedelta(seconds=10 * p.minutes_after), agent=p.agent, revenue=p.revenue)
    if conversation_id is not None:
        # unless the call's outcome closed it: the agent's Close button (refused without an
        # outcome where wrap-up is mandatory: the conversation stays open)
        with d.attempt("close"):
            d.close(conversation_id, end + timedelta(minutes=40))


def play_conversation(d: Driver, c: ConversationPlan) -> None:
    at = _at(c.start_minute)
    try:
        d.start_conversation(c.conversation_id, c.project, at, channel=c.channel, contact_id=c.contact)
    except DomainError:
        return
    for p in c.picks:
        at = at + timedelta(minutes=1 + p.minutes_after)
        with d.attempt("select conversation"):
            d.select_conversation(c.conversation_id, p.code, at, agent=p.agent, revenue=p.revenue)
    if c.close:
        with d.attempt("close"):
            d.close(c.conversation_id, at + timedelta(minutes=5))


def play_later(d: Driver, step: Later, start_minute: int) -> None:
    at = _at(start_minute + step.minutes_after)
    is_call = step.target.startswith("call")
    with d.attempt(step.kind):
        if step.kind == "correct" and is_call:
            d.correct(step.target, step.code, at, step.revenue)
        elif step.kind == "correct":
            d.correct_conversation(step.target, step.code, at, step.revenue)
        elif step.kind == "late" and is_call:
            d.select(step.target, step.code, at, agent="anna", revenue=step.revenue)
        elif step.kind == "late":
            d.select_conversation(step.target, step.code, at, agent="anna", revenue=step.revenue)
        elif is_call:
            d.attach_call(step.target, at)
        else:
            d.attach_conversation(step.target, at)


def play(d: Driver, plan: HistoryPlan) -> None:
    """Configure the world, play the interactions in start order (team moves between them),
    then the later steps (corrections after close, late results, late recordings), the QA
    verdicts, then the definition change."""
    configure_world(d, plan.outcomes)
    ordered: list[CallPlan | ConversationPlan] = sorted(
        [*plan.calls, *plan.conversations], key=lambda i: i.start_minute
    )
    starts: dict[str, int] = {}
    for n, interaction in enumerate(ordered):
        for when, agent, team in plan.moves:
            if when == n:
                d.move(agent, team)
        for when, target, contact_list in plan.list_moves:
            if when == n and target in CONTACTS:
                d.save_contact(target, contact_list)
            elif when == n:
                d.project_list(target, contact_list)
        if isinstance(interaction, CallPlan):
            starts[interaction.call_id] = interaction.start_minute
            play_call(d, interaction)
        else:
            starts[interaction.conversation_id] = interaction.start_minute
            play_conversation(d, interaction)
    for step in plan.later:
        if step.kind == "move":
            d.move(step.target, step.team)
        else:
            play_later(d, step, starts[step.target])
    for target, reviewer, should in plan.verdicts:
        with d.attempt("verdict"):
            d.verdict("call" if target.startswith("call") else "conversation", target, reviewer, should)
    if plan.change is not None:
        d.change(plan.change.definition())


def histories(max_calls: int = 10, max_conversations: int = 5) -> st.SearchStrategy[HistoryPlan]:
    """Plans of random valid histories; play one with ``play(new_tenant(redis_url), plan)``."""
    return history_plans(max_calls=max_calls, max_conversations=max_conversations)
