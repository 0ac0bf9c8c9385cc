"""The tenant's configuration as one aggregate: outcomes, projects, templates, people, webhooks.

One aggregate so that every configuration rule that spans projects (duplicate codes and
names, the auto-close limit) is checked against one consistent version. Each project
keeps its own outcome-set version, moved by every event that changes its active set.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import singledispatch
from uuid import UUID

import msgspec

from events.codec import DomainEvent
from events.types import (
    AgentRegistered,
    AgentTeamChanged,
    OutcomeAssigned,
    OutcomeChanged,
    OutcomeDefined,
    OutcomeDefinition,
    OutcomeHidden,
    OutcomeRetired,
    ProjectChanged,
    ProjectCreated,
    ProjectSettings,
    SmsTemplateSaved,
    TeamCreated,
    TenantCreated,
    WebhookChanged,
    WebhookDeleted,
    WebhookEventType,
    WebhookRegistered,
    WebhookSecretRotated,
)

BUSY = "BUSY"
WRAP_UP_TIMEOUT = "WRAP_UP_TIMEOUT"


class GlobalOutcome(msgspec.Struct, frozen=True, kw_only=True):
    definition: OutcomeDefinition
    availability: str = "all"  # all | assigned
    retired: bool = False


class ProjectOutcome(msgspec.Struct, frozen=True, kw_only=True):
    definition: OutcomeDefinition
    retired: bool = False


class ProjectState(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    settings: ProjectSettings
    hidden: frozenset[str] = frozenset()
    assigned: frozenset[str] = frozenset()
    outcomes: dict[str, ProjectOutcome] = {}
    #: moves with every change to this project's active outcome set
    set_version: int = 1


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """A registered webhook. Its secrets are held in memory only: in the log they are sealed."""

    webhook_id: str
    url: str
    project_ids: tuple[str, ...] = ()
    outcome_codes: tuple[str, ...] = ()
    event_types: tuple[WebhookEventType, ...] = ()
    #: outcome events recorded before this are not delivered to it (a late-registered
    #: webhook does not get the backlog a lagging dispatcher has yet to read)
    registered_at: datetime
    secret: str
    #: the secret before the last rotation, still signed with until ``previous_valid_until``
    previous_secret: str | None = None
    previous_valid_until: datetime | None = None


class Catalogue(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    name: str
    time_zone: str
    outcomes: dict[str, GlobalOutcome] = {}
    projects: dict[str, ProjectState] = {}
    templates: dict[str, str] = {}
    agents: dict[str, str] = {}
    teams: dict[str, str] = {}
    agent_team: dict[str, str | None] = {}
    webhooks: dict[str, Webhook] = {}


class ActiveOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a project's active outcome set (what the agent's picker is built from)."""

    definition: OutcomeDefinition
    scope: str  # global | project

    @property
    def is_agent_outcome(self) -> bool:
        """Counts toward the auto-close limit: agent-selectable, not an unanswered-call outcome."""
        return self.definition.selectable and not self.definition.unanswered


# -- the active outcome set: one place ----------------------------------------------------------


def visible_globals(catalogue: Catalogue, project_id: str) -> dict[str, ActiveOutcome]:
    """Enabled global outcomes available in the project (all, or assigned) and not hidden."""
    project = catalogue.projects[project_id]
    visible: dict[str, ActiveOutcome] = {}
    for code, g in catalogue.outcomes.items():
        if g.retired or not g.definition.enabled or code in project.hidden:
            continue
        if g.availability == "assigned" and code not in project.assigned:
            continue
        if code == BUSY and project.settings.hide_busy:
            continue
        visible[code] = ActiveOutcome(definition=g.definition, scope="global")
    return visible


def enabled_project_outcomes(catalogue: Catalogue, project_id: str) -> dict[str, ActiveOutcome]:
    project = catalogue.projects[project_id]
    return {
        code: ActiveOutcome(definition=p.definition, scope="project")
        for code, p in project.outcomes.items()
        if not p.retired and p.definition.enabled
    }


def active_set(catalogue: Catalogue, project_id: str) -> dict[str, ActiveOutcome]:
    """The project's active outcome set: visible global outcomes plus its enabled project
    outcomes (unanswered-call and system-only outcomes included). Codes never clash in
    it: the configuration rules refuse any change that would make them."""
    return {**visible_globals(catalogue, project_id), **enabled_project_outcomes(catalogue, project_id)}


def agent_outcomes(catalogue: Catalogue, project_id: str) -> list[ActiveOutcome]:
    return [o for o in active_set(catalogue, project_id).values() if o.is_agent_outcome]


def definition_of(catalogue: Catalogue, project_id: str | None, code: str) -> OutcomeDefinition | None:
    """The definition behind a code, active or not (project outcomes shadow nothing: codes
    are unique within a project's active set)."""
    if project_id is not None:
        project = catalogue.projects.get(project_id)
        if project and code in project.outcomes:
            return project.outcomes[code].definition
    g = catalogue.outcomes.get(code)
    return g.definition if g else None


# -- the mutator ----------------------------------------------------------------------------------


def _replace_project(state: Catalogue, project_id: str, **changes: object) -> dict[str, ProjectState]:
    return {**state.projects, project_id: msgspec.structs.replace(state.projects[project_id], **changes)}


def _bump(projects: dict[str, ProjectState], affected: Iterable[str]) -> dict[str, ProjectState]:
    out = dict(projects)
    for pid in affected:
        if pid in out:
            out[pid] = msgspec.structs.replace(out[pid], set_version=out[pid].set_version + 1)
    return out


def _hide_in(projects: dict[str, ProjectState], code: str, project_ids: Iterable[str]) -> dict[str, ProjectState]:
    out = dict(projects)
    for pid in project_ids:
        out[pid] = msgspec.structs.replace(out[pid], hidden=out[pid].hidden | {code})
    return out


@singledispatch
def _apply(event: DomainEvent, state: Catalogue | None) -> Catalogue:
    raise TypeError(f"the catalogue does not apply {type(event).__name__}")


@_apply.register
def _(event: TenantCreated, state: Catalogue | None) -> Catalogue:
    return Catalogue(
        id=event.originator_id,
        version=event.originator_version,
        tenant_id=event.tenant_id,
        name=event.name,
        time_zone=event.time_zone,
    )


@_apply.register
def _(event: OutcomeDefined, state: Catalogue | None) -> Catalogue:
    assert state is not None
    code = event.definition.code
    if event.project_id is None:
        outcomes = {**state.outcomes, code: GlobalOutcome(definition=event.definition, availability=event.availability)}
        return msgspec.structs.replace(
            state, outcomes=outcomes, projects=_hide_in(state.projects, code, event.hidden_in)
        )
    project = state.projects[event.project_id]
    projects = _replace_project(
        state, event.project_id, outcomes={**project.outcomes, code: ProjectOutcome(definition=event.definition)}
    )
    return msgspec.structs.replace(state, projects=projects)


@_apply.register
def _(event: OutcomeChanged, state: Catalogue | None) -> Catalogue:
    assert state is not None
    code = event.definition.code
    if event.project_id is None:
        g = msgspec.structs.replace(
            state.outcomes[code],
            definition=event.definition,
            availability=event.availability or state.outcomes[code].availability,
        )
        outcomes = {**state.outcomes, code: g}
        return msgspec.structs.replace(
            state, outcomes=outcomes, projects=_hide_in(state.projects, code, event.hidden_in)
        )
    project = state.projects[event.project_id]
    p = msgspec.structs.replace(project.outcomes[code], definition=event.definition)
    return msgspec.structs.replace(
        state, projects=_replace_project(state, event.project_id, outcomes={**project.outcomes, code: p})
    )


@_apply.register
def _(event: OutcomeRetired, state: Catalogue | None) -> Catalogue:
    assert state is not None
    if event.project_id is None:
        g = msgspec.structs.replace(state.outcomes[event.code], retired=True)
        return msgspec.structs.replace(state, outcomes={**state.outcomes, event.code: g})
    project = state.projects[event.project_id]
    p = msgspec.structs.replace(project.outcomes[event.code], retired=True)
    return msgspec.structs.replace(
        state, projects=_replace_project(state, event.project_id, outcomes={**project.outcomes, event.code: p})
    )


@_apply.register
def _(event: OutcomeAssigned, state: Catalogue | None) -> Catalogue:
    assert state is not None
    project = state.projects[event.project_id]
    assigned = project.assigned | {event.code} if event.assigned else project.assigned - {event.code}
    return msgspec.structs.replace(state, projects=_replace_project(state, event.project_id, assigned=assigned))


@_apply.register
def _(event: OutcomeHidden, state: Catalogue | None) -> Catalogue:
    assert state is not None
    project = state.projects[event.project_id]
    hidden = project.hidden | {event.code} if event.hidden else project.hidden - {event.code}
    return msgspec.structs.replace(state, projects=_replace_project(state, event.project_id, hidden=hidden))


@_apply.register
def _(event: ProjectCreated, state: Catalogue | None) -> Catalogue:
    assert state is not None
    project = ProjectState(project_id=event.project_id, settings=event.settings, hidden=frozenset(event.hidden))
    return msgspec.structs.replace(state, projects={**state.projects, event.project_id: project})


@_apply.register
def _(event: ProjectChanged, state: Catalogue | None) -> Catalogue:
    assert state is not None
    return msgspec.structs.replace(state, projects=_replace_project(state, event.project_id, settings=event.settings))


@_apply.register
def _(event: SmsTemplateSaved, state: Catalogue | None) -> Catalogue:
    assert state is not None
    return msgspec.structs.replace(state, templates={**state.templates, event.template_id: event.body})


@_apply.register
def _(event: AgentRegistered, state: Catalogue | None) -> Catalogue:
    assert state is not None
    return msgspec.structs.replace(state, agents={**state.agents, event.agent_id: event.name})


@_apply.register
def _(event: TeamCreated, state: Catalogue | None) -> Catalogue:
    assert state is not None
    return msgspec.structs.replace(state, teams={**state.teams, event.team_id: event.name})


@_apply.register
def _(event: AgentTeamChanged, state: Catalogue | None) -> Catalogue:
    assert state is not None
    return msgspec.structs.replace(state, agent_team={**state.agent_team, event.agent_id: event.team_id})


def _target(event: WebhookRegistered | WebhookChanged) -> dict[str, object]:
    """Where a webhook posts and what it receives: set by a registration and by a change."""
    fields = ("url", "project_ids", "outcome_codes", "event_types")
    return {f: getattr(event, f) for f in fields}


@_apply.register
def _(event: WebhookRegistered, state: Catalogue | None) -> Catalogue:
    assert state is not None
    hook = msgspec.convert(
        {"webhook_id": event.webhook_id, "registered_at": event.recorded_at, "secret": event.secret, **_target(event)},
        Webhook,
    )
    return msgspec.structs.replace(state, webhooks={**state.webhooks, event.webhook_id: hook})


@_apply.register
def _(event: WebhookChanged, state: Catalogue | None) -> Catalogue:
    assert state is not None
    hook = msgspec.structs.replace(state.webhooks[event.webhook_id], **_target(event))
    return msgspec.structs.replace(state, webhooks={**state.webhooks, event.webhook_id: hook})


@_apply.register
def _(event: WebhookSecretRotated, state: Catalogue | None) -> Catalogue:
    assert state is not None
    old = state.webhooks[event.webhook_id]
    hook = msgspec.structs.replace(
        old, secret=event.secret, previous_secret=old.secret, previous_valid_until=event.previous_valid_until
    )
    return msgspec.structs.replace(state, webhooks={**state.webhooks, event.webhook_id: hook})


@_apply.register
def _(event: WebhookDeleted, state: Catalogue | None) -> Catalogue:
    assert state is not None
    return msgspec.structs.replace(state, webhooks={k: v for k, v in state.webhooks.items() if k != event.webhook_id})


def apply(event: DomainEvent, state: Catalogue | None) -> Catalogue:
    """One event onto the catalogue; bumps the outcome-set version of affected projects."""
    new = _apply(event, state)
    affected: tuple[str, ...] = getattr(event, "affected_projects", ())
    return msgspec.structs.replace(new, version=event.originator_version, projects=_bump(new.projects, affected))


def project_catalogue(state: Catalogue | None, events: Iterable[DomainEvent]) -> Catalogue | None:
    for event in events:
        state = apply(event, state)
    return state
