"""The outcome rules: pure functions, state in, events out, a named error when broken.

The walking skeleton's slice of PRODUCT.md §1-2; the full rule set grows here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from events.codec import DomainEvent
from events.types import (
    CallEnded,
    CallStarted,
    OutcomeDefined,
    OutcomeFlags,
    OutcomeSelected,
    ProjectCreated,
    ProjectOutcomeSetChanged,
    TenantCreated,
)
from services.aggregates import Call, Catalogue, Project
from services.errors import (
    CallAlreadyHasOutcome,
    DuplicateOutcome,
    ImpossibleHistory,
    NegativeRevenue,
    OutcomeNotInProject,
    OutcomeNotSelectable,
    RevenueRequired,
)

Ev = TypeVar("Ev", bound=DomainEvent)


@dataclass(frozen=True)
class Context:
    """Who acts, for which tenant, and when we record it."""

    tenant_id: str
    actor: str
    recorded_at: datetime

    @property
    def is_agent(self) -> bool:
        return self.actor.startswith("agent:")


def _event(cls: type[Ev], originator_id: UUID, version: int, ctx: Context, **fields: Any) -> Ev:
    return cls(
        originator_id=originator_id,
        originator_version=version,
        recorded_at=ctx.recorded_at,
        tenant_id=ctx.tenant_id,
        actor=ctx.actor,
        **fields,
    )


def create_tenant(catalogue_id: UUID, ctx: Context, name: str, time_zone: str) -> list[DomainEvent]:
    return [_event(TenantCreated, catalogue_id, 1, ctx, name=name, time_zone=time_zone)]


def define_outcome(
    catalogue: Catalogue,
    ctx: Context,
    *,
    code: str,
    name: str,
    description: str,
    category: str,
    flags: OutcomeFlags,
    selectable: bool,
    applies_to: tuple[str, ...],
) -> list[DomainEvent]:
    for existing in catalogue.outcomes.values():
        if existing.code == code:
            raise DuplicateOutcome(f"an outcome with code {code!r} already exists", code=code)
        if existing.name == name:
            raise DuplicateOutcome(f"outcome {existing.code!r} already has the name {name!r}", name=name)
    return [
        _event(
            OutcomeDefined,
            catalogue.id,
            catalogue.version + 1,
            ctx,
            code=code,
            name=name,
            description=description,
            category=category,
            flags=flags,
            selectable=selectable,
            applies_to=applies_to,
        )
    ]


def create_project(
    project_aggregate_id: UUID, catalogue: Catalogue, ctx: Context, *, project_id: str, name: str, direction: str
) -> list[DomainEvent]:
    """A new project starts with every enabled global outcome in its active set."""
    return [
        _event(ProjectCreated, project_aggregate_id, 1, ctx, project_id=project_id, name=name, direction=direction),
        _event(ProjectOutcomeSetChanged, project_aggregate_id, 2, ctx, codes=tuple(sorted(catalogue.outcomes))),
    ]


def start_call(
    call_aggregate_id: UUID,
    project: Project,
    ctx: Context,
    *,
    call_id: str,
    direction: str,
    occurred_at: datetime,
    agent_id: str | None,
    contact_id: str | None,
    contact_number: str | None,
) -> list[DomainEvent]:
    return [
        _event(
            CallStarted,
            call_aggregate_id,
            1,
            ctx,
            call_id=call_id,
            project_id=project.project_id,
            direction=direction,
            occurred_at=occurred_at,
            agent_id=agent_id,
            contact_id=contact_id,
            contact_number=contact_number,
        )
    ]


def end_call(call: Call, ctx: Context, *, occurred_at: datetime, termination_reason: str) -> list[DomainEvent]:
    if occurred_at < call.started_at:
        raise ImpossibleHistory(
            f"call {call.call_id} cannot end at {occurred_at.isoformat()}, before it started "
            f"at {call.started_at.isoformat()}"
        )
    return [
        _event(
            CallEnded,
            call.id,
            call.version + 1,
            ctx,
            call_id=call.call_id,
            occurred_at=occurred_at,
            termination_reason=termination_reason,
        )
    ]


def select_outcome(
    call: Call,
    project: Project,
    catalogue: Catalogue,
    ctx: Context,
    *,
    code: str,
    occurred_at: datetime,
    revenue: Decimal | None,
    agent_id: str | None,
) -> list[DomainEvent]:
    if call.outcome_code is not None:
        raise CallAlreadyHasOutcome(f"call {call.call_id} already has outcome {call.outcome_code!r}")
    outcome = catalogue.outcomes.get(code)
    if outcome is None or code not in project.outcome_codes:
        raise OutcomeNotInProject(
            f"outcome {code!r} is not in the active outcome set of project {project.project_id!r}"
        )
    if "call" not in outcome.applies_to:
        raise OutcomeNotSelectable(f"outcome {code!r} does not apply to calls")
    if ctx.is_agent and not outcome.selectable:
        raise OutcomeNotSelectable(f"outcome {code!r} is system-only; agents cannot select it")
    if revenue is not None and revenue < 0:
        raise NegativeRevenue(f"revenue cannot be negative (got {revenue})")
    if outcome.flags.revenue == "required" and not (revenue is not None and revenue > 0):
        raise RevenueRequired(f"outcome {code!r} requires a revenue amount greater than 0")
    return [
        _event(
            OutcomeSelected,
            call.id,
            call.version + 1,
            ctx,
            call_id=call.call_id,
            project_id=project.project_id,
            outcome_code=code,
            outcome_set_version=project.outcome_set_version,
            flags=outcome.flags,
            occurred_at=occurred_at,
            revenue=revenue,
            agent_id=agent_id,
        )
    ]
