"""A bulk loader for the report benchmark: calls and their outcome selections, written
through the Ledger's save path (the recorder's append script), many calls per save.

Events are decided by the same pure rules the commands use (``services.rules``) on an
in-memory catalogue and call state, so every event is one the service would accept; only
the per-command loading and one-save-per-command are skipped. A save carries the calls of
one batch and asserts the catalogue's version, as a selection's save does.

Sizes are parameters (``Shape``): the benchmark loads 1,000,000 selections, the test in
``tests/test_report_bench.py`` a few thousand.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from events.codec import DomainEvent
from events.types import OutcomeDefinition, OutcomeFlags, ProjectSettings, WrapUp
from services.catalogue import Catalogue, project_catalogue
from services.interactions import Call, project_call
from services.ledger import Ledger
from services.rules import Context
from services.rules import config as config_rules
from services.rules import interactions as rules
from services.rules.interactions import Choice
from services.runtime import Runtime

#: the tenant's outcomes: two category trees (SALE_UPSELL rolls up into SALE's "sale")
OUTCOMES = (
    OutcomeDefinition(
        code="SALE",
        name="Sale",
        category="sale",
        flags=OutcomeFlags(contact=True, presentation=True, success=True, revenue="optional", polarity="positive"),
    ),
    OutcomeDefinition(
        code="SALE_UPSELL",
        name="Sale with upsell",
        parent="SALE",
        flags=OutcomeFlags(contact=True, presentation=True, success=True, revenue="required", polarity="positive"),
    ),
    OutcomeDefinition(
        code="NO_INTEREST", name="No interest", category="no_sale", flags=OutcomeFlags(contact=True, presentation=True)
    ),
    OutcomeDefinition(
        code="NOT_DECISION_MAKER", name="Not the decision maker", parent="NO_INTEREST", flags=OutcomeFlags(contact=True)
    ),
    OutcomeDefinition(code="CALLBACK", name="Call back later", category="callback", flags=OutcomeFlags(contact=True)),
    OutcomeDefinition(code="WRONG_NUMBER", name="Wrong number", category="invalid"),
)
#: relative frequency of each selected outcome (ANSWERING_MACHINE is a built-in one)
WEIGHTS = {
    "SALE": 8,
    "SALE_UPSELL": 2,
    "NO_INTEREST": 30,
    "NOT_DECISION_MAKER": 10,
    "CALLBACK": 20,
    "WRONG_NUMBER": 5,
    "ANSWERING_MACHINE": 25,
}
REASONS = ("agent_hangup", "customer_hangup", "transfer")


@dataclass(frozen=True)
class Shape:
    """What to load: ``selections`` calls, each started, ended and given an outcome."""

    selections: int = 1_000_000
    days: int = 90
    projects: int = 50
    agents: int = 500
    teams: int = 25
    #: share of selections a supervisor corrects afterwards
    corrected: float = 0.01
    first_day: date = date(2026, 9, 1)
    #: a zone with a DST change inside the default 90 days
    time_zone: str = "Europe/Berlin"
    seed: int = 7

    def project(self, n: int) -> str:
        return f"p{n:02d}"

    def agent(self, n: int) -> str:
        return f"a{n:03d}"

    def team(self, n: int) -> str:
        return f"t{n:02d}"


@dataclass
class Loaded:
    selections: int = 0
    events: int = 0
    saves: int = 0
    seconds: float = 0.0


def configure(runtime: Runtime, tenant: str, shape: Shape) -> None:
    """The tenant, then its outcomes, teams, agents (round-robin into teams) and projects,
    decided by the configuration rules on the catalogue in memory and saved at once."""
    runtime.create_tenant(tenant, tenant.title(), shape.time_zone)
    ledger = runtime.ledger(tenant)
    ctx = Context(tenant, "admin:bench", datetime.now(UTC))
    catalogue = ledger.catalogue(tenant)
    events: list[DomainEvent] = []

    def change(new: Sequence[DomainEvent]) -> None:
        nonlocal catalogue
        events.extend(new)
        after = project_catalogue(catalogue, new)
        assert after is not None
        catalogue = after

    for d in OUTCOMES:
        change(config_rules.define_outcome(catalogue, ctx, d))
    for t in range(shape.teams):
        change(config_rules.create_team(catalogue, ctx, shape.team(t), shape.team(t)))
    for a in range(shape.agents):
        change(config_rules.register_agent(catalogue, ctx, shape.agent(a), shape.agent(a)))
        change(config_rules.set_agent_team(catalogue, ctx, shape.agent(a), shape.team(a % shape.teams)))
    for p in range(shape.projects):
        settings = ProjectSettings(name=f"Project {p}", direction="outbound", wrap_up=WrapUp(mode="optional"))
        change(config_rules.create_project(catalogue, ctx, shape.project(p), settings))
    ledger.save(*events, tenant=tenant)


def call_starts(shape: Shape) -> Iterator[tuple[int, datetime]]:
    """(call number, start) in time order: the day's share of calls, 08:00-20:00 local."""
    rng = random.Random(shape.seed)
    zone = ZoneInfo(shape.time_zone)
    n = 0
    for d in range(shape.days):
        day = shape.first_day + timedelta(days=d)
        opening = datetime(day.year, day.month, day.day, 8, tzinfo=zone)
        share = shape.selections * (d + 1) // shape.days - shape.selections * d // shape.days
        for offset in sorted(rng.randrange(12 * 3600) for _ in range(share)):
            yield n, opening + timedelta(seconds=offset)
            n += 1


def call_events(
    catalogue: Catalogue, tenant: str, shape: Shape, rng: random.Random, n: int, start: datetime
) -> list[DomainEvent]:
    """One call: started (with its agent), ended, outcome selected by the agent; a few
    corrected by a supervisor. Decided by the service's own rules."""
    agent = shape.agent(rng.randrange(shape.agents))
    project = shape.project(rng.randrange(shape.projects))
    recorded = start.astimezone(UTC)
    ctx = Context(tenant, f"agent:{agent}", recorded)
    call_id = f"c{n:07d}"
    events: list[DomainEvent] = []

    def apply(new: list[DomainEvent], state: Call | None) -> Call:
        events.extend(new)
        after = project_call(state, new)
        assert after is not None
        return after

    call = apply(
        rules.start_call(
            catalogue,
            ctx,
            call_id=call_id,
            project_id=project,
            direction="outbound",
            occurred_at=start,
            agent_id=agent,
            contact_id=f"k{rng.randrange(shape.selections)}",
        ),
        None,
    )
    end = start + timedelta(seconds=rng.randrange(20, 600))
    call = apply(
        rules.end_call(
            catalogue, call, ctx, occurred_at=end, termination_reason=rng.choice(REASONS), conversation=None
        ),
        call,
    )
    code = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    call = apply(
        rules.select_outcome(
            catalogue, call, ctx, Choice(code, end + timedelta(seconds=rng.randrange(5, 90)), _revenue(rng, code))
        ),
        call,
    )
    if rng.random() < shape.corrected:
        supervisor = Context(tenant, "supervisor:sv", recorded)
        to = "NO_INTEREST" if code.startswith("SALE") else "SALE"
        apply(
            rules.correct_outcome(
                catalogue, call, supervisor, Choice(to, end + timedelta(hours=2), _revenue(rng, to)), reason="review"
            ),
            call,
        )
    return events


def _revenue(rng: random.Random, code: str) -> Decimal | None:
    return Decimal(rng.randrange(100, 50_000)) / 100 if code.startswith("SALE") else None


def batches(
    catalogue: Catalogue, tenant: str, shape: Shape, calls_per_save: int
) -> Iterator[tuple[int, list[DomainEvent]]]:
    """(calls, their events) per save, in time order."""
    rng = random.Random(shape.seed + 1)
    batch: list[DomainEvent] = []
    calls = 0
    for n, start in call_starts(shape):
        batch.extend(call_events(catalogue, tenant, shape, rng, n, start))
        calls += 1
        if calls == calls_per_save:
            yield calls, batch
            batch, calls = [], 0
    if batch:
        yield calls, batch


def load(
    runtime: Runtime,
    tenant: str,
    shape: Shape,
    calls_per_save: int = 500,
    progress: Callable[[Loaded], None] | None = None,
) -> Loaded:
    """Write ``shape.selections`` calls in saves of ``calls_per_save``; the next batch is
    decided while the previous one is written (one save in flight)."""
    ledger: Ledger = runtime.ledger(tenant)
    catalogue = ledger.catalogue(tenant)
    expect = [(catalogue.id, catalogue.version)]

    def save(events: list[DomainEvent]) -> None:
        ledger.save(*events, tenant=tenant, expect=expect)

    done = Loaded()
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future[None] | None = None
        for calls, events in batches(catalogue, tenant, shape, calls_per_save):
            if pending is not None:
                pending.result()
            pending = writer.submit(save, events)
            done.saves += 1
            done.events += len(events)
            done.selections += calls
            if progress is not None and done.saves % 100 == 0:
                progress(done)
        if pending is not None:
            pending.result()
    done.seconds = time.perf_counter() - began
    return done
