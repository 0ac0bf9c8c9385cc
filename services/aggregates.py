"""Aggregate states: immutable values rebuilt from events by one mutator each.

``project_*`` functions are the projector functions eventsourcing's Repository uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import singledispatch
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

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

_NS = uuid5(NAMESPACE_URL, "https://outcome-ledger/ids")


def aggregate_id(tenant_id: str, kind: str, external_id: str = "") -> UUID:
    """Ids platforms supply live in the tenant's namespace: same id, other tenant,
    other aggregate."""
    return uuid5(_NS, f"{tenant_id}/{kind}/{external_id}")


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    description: str
    category: str
    flags: OutcomeFlags
    selectable: bool
    applies_to: tuple[str, ...]


class Catalogue(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's outcome definitions."""

    id: UUID
    version: int
    tenant_id: str
    name: str = ""
    time_zone: str = "UTC"
    outcomes: dict[str, Outcome] = {}


class Project(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    project_id: str
    name: str
    direction: str
    outcome_codes: tuple[str, ...] = ()

    @property
    def outcome_set_version(self) -> int:
        """The project's outcome-set version moves with every change to the project."""
        return self.version


class Call(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    call_id: str
    project_id: str
    direction: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome_code: str | None = None


@singledispatch
def apply_catalogue(event: DomainEvent, state: Catalogue | None) -> Catalogue:
    raise TypeError(f"catalogue does not apply {type(event).__name__}")


@apply_catalogue.register
def _(event: TenantCreated, state: Catalogue | None) -> Catalogue:
    return Catalogue(
        id=event.originator_id,
        version=event.originator_version,
        tenant_id=event.tenant_id,
        name=event.name,
        time_zone=event.time_zone,
    )


@apply_catalogue.register
def _(event: OutcomeDefined, state: Catalogue | None) -> Catalogue:
    assert state is not None
    outcome = Outcome(
        code=event.code,
        name=event.name,
        description=event.description,
        category=event.category,
        flags=event.flags,
        selectable=event.selectable,
        applies_to=event.applies_to,
    )
    return msgspec.structs.replace(
        state, version=event.originator_version, outcomes={**state.outcomes, event.code: outcome}
    )


@singledispatch
def apply_project(event: DomainEvent, state: Project | None) -> Project:
    raise TypeError(f"project does not apply {type(event).__name__}")


@apply_project.register
def _(event: ProjectCreated, state: Project | None) -> Project:
    return Project(
        id=event.originator_id,
        version=event.originator_version,
        tenant_id=event.tenant_id,
        project_id=event.project_id,
        name=event.name,
        direction=event.direction,
    )


@apply_project.register
def _(event: ProjectOutcomeSetChanged, state: Project | None) -> Project:
    assert state is not None
    return msgspec.structs.replace(state, version=event.originator_version, outcome_codes=event.codes)


@singledispatch
def apply_call(event: DomainEvent, state: Call | None) -> Call:
    raise TypeError(f"call does not apply {type(event).__name__}")


@apply_call.register
def _(event: CallStarted, state: Call | None) -> Call:
    return Call(
        id=event.originator_id,
        version=event.originator_version,
        tenant_id=event.tenant_id,
        call_id=event.call_id,
        project_id=event.project_id,
        direction=event.direction,
        started_at=event.occurred_at,
    )


@apply_call.register
def _(event: CallEnded, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, version=event.originator_version, ended_at=event.occurred_at)


@apply_call.register
def _(event: OutcomeSelected, state: Call | None) -> Call:
    assert state is not None
    return msgspec.structs.replace(state, version=event.originator_version, outcome_code=event.outcome_code)


def project_catalogue(state: Catalogue | None, events: Iterable[DomainEvent]) -> Catalogue | None:
    for event in events:
        state = apply_catalogue(event, state)
    return state


def project_project(state: Project | None, events: Iterable[DomainEvent]) -> Project | None:
    for event in events:
        state = apply_project(event, state)
    return state


def project_call(state: Call | None, events: Iterable[DomainEvent]) -> Call | None:
    for event in events:
        state = apply_call(event, state)
    return state
