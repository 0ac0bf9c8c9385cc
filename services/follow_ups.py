"""A follow-up task an outcome asked for (PRODUCT.md §1 "follow-up owner and due time",
§3 "Follow-up tasks"): its state, folded from its events."""

from __future__ import annotations

from datetime import datetime
from functools import singledispatch
from typing import Literal
from uuid import UUID

import msgspec

from events.codec import DomainEvent
from events.types import (
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpOpened,
    FollowUpOverdue,
    FollowUpReassigned,
)
from services.interactions import Projector, _projector

FollowUpStatus = Literal["open", "completed", "cancelled"]


class FollowUp(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    opened: FollowUpOpened
    status: FollowUpStatus
    owner_team: str | None
    owner_role: str | None
    owner_agent: str | None = None
    overdue: bool = False
    completed_by: str | None = None
    completed_at: datetime | None = None


@singledispatch
def _follow_up(event: DomainEvent, state: FollowUp | None) -> FollowUp:
    raise TypeError(f"a follow-up does not apply {type(event).__name__}")


@_follow_up.register
def _(event: FollowUpOpened, state: FollowUp | None) -> FollowUp:
    return FollowUp(
        id=event.originator_id,
        version=1,
        tenant_id=event.tenant_id,
        opened=event,
        status="open",
        owner_team=event.owner_team,
        owner_role=event.owner_role,
    )


@_follow_up.register
def _(event: FollowUpReassigned, state: FollowUp | None) -> FollowUp:
    assert state is not None
    return msgspec.structs.replace(
        state, owner_team=event.owner_team, owner_role=event.owner_role, owner_agent=event.owner_agent
    )


@_follow_up.register
def _(event: FollowUpCompleted, state: FollowUp | None) -> FollowUp:
    assert state is not None
    return msgspec.structs.replace(state, status="completed", completed_by=event.actor, completed_at=event.recorded_at)


@_follow_up.register
def _(event: FollowUpOverdue, state: FollowUp | None) -> FollowUp:
    assert state is not None
    return msgspec.structs.replace(state, overdue=True)


@_follow_up.register
def _(event: FollowUpCancelled, state: FollowUp | None) -> FollowUp:
    assert state is not None
    return msgspec.structs.replace(state, status="cancelled")


project_follow_up: Projector[FollowUp] = _projector(_follow_up)
