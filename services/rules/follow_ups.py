"""Follow-up tasks (PRODUCT.md §3): pure functions, state in, events out.

- An outcome with ``follow_up`` opens one task per selection, owned by its team or role,
  due ``due_within_seconds`` after the selection happened (``occurred_at``).
- Open tasks are completed or reassigned (to another team, role or a named agent) over the
  API; a done task takes neither.
- At its due time a task still open is marked overdue, once (the durable scheduler's timer).
- A correction cancels the corrected selection's open task when the new outcome asks for
  none; when it asks for one, the new selection opens its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from events.codec import DomainEvent
from events.types import (
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpOpened,
    FollowUpOverdue,
    FollowUpReassigned,
    OutcomeCorrected,
    OutcomeSelected,
)
from services.errors import BadRequest, FollowUpClosed, Forbidden, NotFound
from services.follow_ups import FollowUp
from services.interactions import aggregate_id, source_of
from services.rules import Context, make


def open_follow_up(selection: OutcomeSelected | OutcomeCorrected, ctx: Context) -> list[DomainEvent]:
    spec = selection.definition.follow_up
    if spec is None:
        return []
    source = source_of(selection)
    return [
        make(
            FollowUpOpened,
            aggregate_id(ctx.tenant_id, "follow-up", source),
            1,
            ctx,
            source=source,
            interaction=selection.interaction,
            interaction_id=selection.interaction_id,
            project_id=selection.project_id,
            outcome_code=selection.outcome_code,
            owner_team=spec.owner_team,
            owner_role=spec.owner_role,
            due_at=selection.occurred_at + timedelta(seconds=spec.due_within_seconds),
        )
    ]


def cancel_replaced(task: FollowUp | None, correction: OutcomeCorrected, ctx: Context) -> list[DomainEvent]:
    if task is None or task.status != "open" or correction.definition.follow_up is not None:
        return []
    return [make(FollowUpCancelled, task.id, task.version + 1, ctx, reason="outcome corrected")]


def _open(task: FollowUp) -> None:
    if task.status != "open":
        raise FollowUpClosed(f"follow-up {task.id} is {task.status}")


def complete(task: FollowUp, ctx: Context, note: str) -> list[DomainEvent]:
    """Agents complete their own: a task assigned to a named agent is that agent's."""
    _open(task)
    if task.owner_agent and ctx.actor.startswith("agent:") and ctx.actor != f"agent:{task.owner_agent}":
        raise Forbidden(f"follow-up {task.id} is agent {task.owner_agent!r}'s to complete")
    return [make(FollowUpCompleted, task.id, task.version + 1, ctx, note=note)]


def reassign(
    task: FollowUp,
    ctx: Context,
    teams: Mapping[str, str],
    *,
    owner_team: str | None,
    owner_role: str | None,
    owner_agent: str | None,
) -> list[DomainEvent]:
    _open(task)
    if not (owner_team or owner_role or owner_agent):
        raise BadRequest("a follow-up needs an owner: owner_team, owner_role or owner_agent")
    if owner_team and owner_team not in teams:
        raise NotFound(f"team {owner_team!r} not found")
    fields = {"owner_team": owner_team, "owner_role": owner_role, "owner_agent": owner_agent}
    return [make(FollowUpReassigned, task.id, task.version + 1, ctx, **fields)]


def due(task: FollowUp, ctx: Context) -> list[DomainEvent]:
    """The due time came: overdue if still open (once)."""
    if task.status != "open" or task.overdue:
        return []
    return [make(FollowUpOverdue, task.id, task.version + 1, ctx, due_at=task.opened.due_at)]
