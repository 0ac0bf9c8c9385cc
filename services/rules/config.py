"""Configuration rules: outcomes, projects, templates, people (PRODUCT.md §1).

Every change goes through ``_finalise``: the candidate event is applied to the
catalogue, the project invariants are checked on the result (duplicate codes and names,
shortcut keys, the auto-close limit), and the event records which projects' outcome
sets moved. One mechanism, so a rule holds at every moment it can be broken: create,
rename, enable, unhide, assign.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    TelephonyStatus,
    TenantCreated,
    _CatalogueChange,
)
from services.catalogue import (
    BUSY,
    WRAP_UP_TIMEOUT,
    ActiveOutcome,
    Catalogue,
    active_set,
    agent_outcomes,
    apply,
    enabled_project_outcomes,
    visible_globals,
)
from services.errors import (
    AutoCloseLimit,
    DomainError,
    DuplicateOutcome,
    InvalidDefinition,
    NotFound,
    OutcomeRetiredError,
    ProjectExists,
    ShortcutKeyClash,
    TeamExists,
    TemplateHasTags,
)
from services.rules import Context, make

C = TypeVar("C", bound=_CatalogueChange)
MESSAGE_TAG = re.compile(r"\{\{\s*[\w.]+\s*\}\}")


UNANSWERED_CODES = frozenset({"NO_ANSWER", "ANSWERING_MACHINE", "FAX_MODEM", "DROPPED", "OPERATOR_INTERCEPT"})


def built_in_outcomes() -> list[OutcomeDefinition]:
    """Every tenant starts with these global outcomes, each hideable per project."""
    unanswered: list[tuple[str, str, TelephonyStatus]] = [
        ("NO_ANSWER", "No answer", "no_answer"),
        ("ANSWERING_MACHINE", "Answering machine", "answering_machine"),
        ("FAX_MODEM", "Fax / modem", "fax_modem"),
        ("DROPPED", "Dropped", "drop_hang_up"),
        ("OPERATOR_INTERCEPT", "Operator intercept", "operator_intercept"),
    ]
    return [
        OutcomeDefinition(
            code=BUSY,
            name="Busy",
            description="The number was busy; try later.",
            category="unanswered",
            applies_to=("call",),
            telephony_status="busy",
        ),
        *[
            OutcomeDefinition(
                code=code,
                name=name,
                description=f"Dialer result: {name.lower()}.",
                category="unanswered",
                applies_to=("call",),
                telephony_status=status,
                unanswered=True,
            )
            for code, name, status in unanswered
        ],
        OutcomeDefinition(
            code=WRAP_UP_TIMEOUT,
            name="Wrap-up timeout",
            selectable=False,
            description="Selected by the system when wrap-up time runs out.",
            category="system",
        ),
    ]


def check_time_zone(time_zone: str, error: type[DomainError] = InvalidDefinition) -> None:
    """Tenants and contacts name a real IANA time zone."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise error(f"unknown time zone {time_zone!r}") from None


def create_tenant(catalogue_id: UUID, ctx: Context, name: str, time_zone: str) -> list[DomainEvent]:
    """The tenant's catalogue, with the built-in outcomes."""
    check_time_zone(time_zone)
    events: list[DomainEvent] = [make(TenantCreated, catalogue_id, 1, ctx, name=name, time_zone=time_zone)]
    for i, definition in enumerate(built_in_outcomes(), start=2):
        events.append(make(OutcomeDefined, catalogue_id, i, ctx, definition=definition))
    return events


# -- the one mechanism ------------------------------------------------------------------------------


def _check_project(catalogue: Catalogue, project_id: str) -> None:
    active = active_set(catalogue, project_id)
    names: dict[str, str] = {}
    keys: dict[str, str] = {}
    for code, o in active.items():
        clash = names.get(o.definition.name.casefold())
        if clash is not None:
            raise DuplicateOutcome(
                f"outcomes {clash!r} and {code!r} would both be called {o.definition.name!r} in project {project_id!r}",
                project_id=project_id,
                codes=[clash, code],
            )
        names[o.definition.name.casefold()] = code
        key = o.definition.shortcut_key
        if key and o.definition.selectable:
            if key in keys:
                raise ShortcutKeyClash(
                    f"outcomes {keys[key]!r} and {code!r} would share shortcut key {key!r} in project {project_id!r}",
                    project_id=project_id,
                    codes=[keys[key], code],
                )
            keys[key] = code
    both = sorted(visible_globals(catalogue, project_id).keys() & enabled_project_outcomes(catalogue, project_id))
    if both:
        raise DuplicateOutcome(
            f"code {both[0]!r} would be both a global and a project outcome in project {project_id!r}",
            project_id=project_id,
            codes=both,
        )
    project = catalogue.projects[project_id]
    if project.settings.auto_close_without_outcome:
        _check_auto_close(project_id, agent_outcomes(catalogue, project_id))
    _check_wrap_up(catalogue, project_id, active)


def _check_auto_close(project_id: str, agent: list[ActiveOutcome]) -> None:
    if len(agent) > 1:
        codes = sorted(o.definition.code for o in agent)
        raise AutoCloseLimit(
            f"project {project_id!r} closes without asking for an outcome, so it may have at most one agent "
            f"outcome; it would have {len(agent)}: {', '.join(codes)}",
            project_id=project_id,
            codes=codes,
        )
    if agent:
        d = agent[0].definition
        if set(d.applies_to) != {"call", "conversation"}:
            raise AutoCloseLimit(
                f"the auto-close outcome {d.code!r} of project {project_id!r} must apply to both "
                "calls and conversations",
                project_id=project_id,
                codes=[d.code],
            )
        if d.flags.revenue == "required" or d.length_gated:
            raise AutoCloseLimit(
                f"the auto-close outcome {d.code!r} of project {project_id!r} cannot require revenue or a call length",
                project_id=project_id,
                codes=[d.code],
            )


def _check_wrap_up(catalogue: Catalogue, project_id: str, active: dict[str, ActiveOutcome]) -> None:
    wrap_up = catalogue.projects[project_id].settings.wrap_up
    if wrap_up.mode != "mandatory_with_timeout":
        return
    code = wrap_up.timeout_outcome
    if not wrap_up.timeout_seconds or wrap_up.timeout_seconds <= 0 or not code:
        raise InvalidDefinition("wrap-up mandatory_with_timeout needs timeout_seconds > 0 and a timeout_outcome")
    outcome = active.get(code)
    if outcome is None:
        raise InvalidDefinition(f"timeout outcome {code!r} is not in the active outcome set of project {project_id!r}")
    if "call" not in outcome.definition.applies_to:
        raise InvalidDefinition(f"timeout outcome {code!r} must apply to calls: the timer selects it on a call")
    if outcome.definition.flags.revenue == "required" or outcome.definition.length_gated:
        raise InvalidDefinition(f"timeout outcome {code!r} requires revenue or is length-gated")


def _finalise(catalogue: Catalogue, event: C, *, tenant_level_addition: str | None = None) -> C:
    """Apply, check every project, and record the projects whose outcome set moved.

    ``tenant_level_addition``: the code of a global outcome a tenant-level change may add
    to projects; in auto-close projects it is left hidden instead (PRODUCT.md §1).
    """
    if tenant_level_addition is not None and isinstance(event, OutcomeDefined | OutcomeChanged):
        hide_in = _auto_close_projects_gaining(catalogue, event, tenant_level_addition)
        if hide_in:
            event = msgspec.structs.replace(event, hidden_in=hide_in)  # type: ignore[assignment]
    after = apply(event, catalogue)
    _check_global_names(after)
    for project_id in after.projects:
        _check_project(after, project_id)
    affected = tuple(p for p in after.projects if _picker(catalogue, p) != _picker(after, p))
    return msgspec.structs.replace(event, affected_projects=affected)


def _picker(catalogue: Catalogue, project_id: str) -> tuple[dict[str, ActiveOutcome], bool] | None:
    """What a platform's picker is built from: the active set, and whether to prompt at all.
    The outcome-set version moves when this does."""
    project = catalogue.projects.get(project_id)
    if project is None:
        return None
    return active_set(catalogue, project_id), project.settings.auto_close_without_outcome


def _check_global_names(catalogue: Catalogue) -> None:
    """Global outcomes for all projects meet in every project, present or future: no two may
    share a name even before any project exists."""
    names: dict[str, str] = {}
    for code, g in catalogue.outcomes.items():
        if g.retired or not g.definition.enabled or g.availability != "all":
            continue
        clash = names.get(g.definition.name.casefold())
        if clash is not None:
            raise DuplicateOutcome(
                f"global outcomes {clash!r} and {code!r} would both be called {g.definition.name!r} in every project",
                codes=[clash, code],
            )
        names[g.definition.name.casefold()] = code


def _auto_close_projects_gaining(catalogue: Catalogue, event: _CatalogueChange, code: str) -> tuple[str, ...]:
    after = apply(event, catalogue)
    gaining = []
    for project_id, project in catalogue.projects.items():
        if not project.settings.auto_close_without_outcome:
            continue
        before = {o.definition.code for o in agent_outcomes(catalogue, project_id)}
        now = {o.definition.code for o in agent_outcomes(after, project_id)}
        if code in now - before:
            gaining.append(project_id)
    return tuple(gaining)


def _project(catalogue: Catalogue, project_id: str) -> None:
    if project_id not in catalogue.projects:
        raise NotFound(f"project {project_id!r} not found")


def _next(catalogue: Catalogue) -> int:
    return catalogue.version + 1


def _validate_definition(catalogue: Catalogue, d: OutcomeDefinition, project_id: str | None) -> None:
    if d.unanswered and (project_id is not None or d.code not in UNANSWERED_CODES):
        raise InvalidDefinition(f"outcome {d.code!r}: only the built-in unanswered-call outcomes are unanswered")
    if not d.applies_to:
        raise InvalidDefinition(f"outcome {d.code!r} must apply to calls, conversations or both")
    if d.min_call_seconds is not None and d.max_call_seconds is not None and d.min_call_seconds > d.max_call_seconds:
        raise InvalidDefinition(f"outcome {d.code!r}: min_call_seconds is greater than max_call_seconds")
    if d.redirect_to_flow is not None:
        if project_id is None:
            raise InvalidDefinition(f"outcome {d.code!r}: redirect to flow is for project-specific outcomes only")
        if tuple(d.applies_to) != ("conversation",):
            raise InvalidDefinition(f"outcome {d.code!r}: redirect to flow applies to conversations only")
    if d.sms_template is not None or d.auto_send:
        if project_id is not None:
            raise InvalidDefinition(f"outcome {d.code!r}: SMS templates are for global outcomes only")
        if d.sms_template is None:
            raise InvalidDefinition(f"outcome {d.code!r}: auto_send needs an sms_template")
        body = catalogue.templates.get(d.sms_template)
        if body is None:
            raise NotFound(f"SMS template {d.sms_template!r} not found")
        if d.auto_send and MESSAGE_TAG.search(body):
            raise TemplateHasTags(
                f"template {d.sms_template!r} has message tags; an automatically sent template "
                "goes as written, so it must contain none"
            )
    if d.parent is not None:
        _check_parent(catalogue, d.code, d.parent, project_id)
    if d.close_conversation_with_call and set(d.applies_to) != {"call", "conversation"}:
        raise InvalidDefinition(
            f"outcome {d.code!r}: close_conversation_with_call applies the call's outcome to its "
            "conversation, so it must apply to both calls and conversations"
        )
    if d.follow_up is not None:
        if not d.follow_up.owner_team and not d.follow_up.owner_role:
            raise InvalidDefinition(f"outcome {d.code!r}: a follow-up needs an owner team or role")
        if d.follow_up.owner_team and d.follow_up.owner_team not in catalogue.teams:
            raise NotFound(f"team {d.follow_up.owner_team!r} not found")
    handling = d.contact_handling
    if handling.roll_to_project is not None and handling.roll_to_project not in catalogue.projects:
        raise NotFound(f"project {handling.roll_to_project!r} not found")


def _check_parent(catalogue: Catalogue, code: str, parent: str, project_id: str | None) -> None:
    """Outcomes form a tree: the parent exists, and following parents never returns here."""
    seen = {code}
    current: str | None = parent
    while current is not None:
        if current in seen:
            raise InvalidDefinition(f"outcome {code!r}: parent {parent!r} would make a cycle")
        seen.add(current)
        found = catalogue.outcomes.get(current)
        definition = found.definition if found else None
        if definition is None and project_id is not None:
            p = catalogue.projects[project_id].outcomes.get(current)
            definition = p.definition if p else None
        if definition is None:
            raise NotFound(f"parent outcome {current!r} not found")
        current = definition.parent


# -- outcomes --------------------------------------------------------------------------------------


def define_outcome(
    catalogue: Catalogue,
    ctx: Context,
    definition: OutcomeDefinition,
    *,
    project_id: str | None = None,
    availability: Literal["all", "assigned"] = "all",
) -> list[_CatalogueChange]:
    if project_id is None:
        if definition.code in catalogue.outcomes:
            raise DuplicateOutcome(
                f"a global outcome with code {definition.code!r} already exists", codes=[definition.code]
            )
    else:
        _project(catalogue, project_id)
        if definition.code in catalogue.projects[project_id].outcomes:
            raise DuplicateOutcome(
                f"project {project_id!r} already has an outcome with code {definition.code!r}", codes=[definition.code]
            )
    _validate_definition(catalogue, definition, project_id)
    event = make(
        OutcomeDefined,
        catalogue.id,
        _next(catalogue),
        ctx,
        definition=definition,
        project_id=project_id,
        availability=availability,
    )
    return [_finalise(catalogue, event, tenant_level_addition=definition.code if project_id is None else None)]


def _existing(catalogue: Catalogue, code: str, project_id: str | None) -> OutcomeDefinition:
    if project_id is None:
        g = catalogue.outcomes.get(code)
        if g is None:
            raise NotFound(f"outcome {code!r} not found")
        if g.retired:
            raise OutcomeRetiredError(f"outcome {code!r} is retired")
        return g.definition
    _project(catalogue, project_id)
    p = catalogue.projects[project_id].outcomes.get(code)
    if p is None:
        raise NotFound(f"outcome {code!r} not found in project {project_id!r}")
    if p.retired:
        raise OutcomeRetiredError(f"outcome {code!r} is retired")
    return p.definition


def change_outcome(
    catalogue: Catalogue,
    ctx: Context,
    definition: OutcomeDefinition,
    *,
    project_id: str | None = None,
    availability: Literal["all", "assigned"] | None = None,
) -> list[_CatalogueChange]:
    """Replace a definition (rename, enable/disable, flags, handling, …)."""
    existing = _existing(catalogue, definition.code, project_id)
    # built-in unanswered-call outcomes stay what they are
    definition = msgspec.structs.replace(definition, unanswered=existing.unanswered)
    _validate_definition(catalogue, definition, project_id)
    event = make(
        OutcomeChanged,
        catalogue.id,
        _next(catalogue),
        ctx,
        definition=definition,
        project_id=project_id,
        availability=availability if project_id is None else None,
    )
    return [_finalise(catalogue, event, tenant_level_addition=definition.code if project_id is None else None)]


def set_enabled(
    catalogue: Catalogue, ctx: Context, code: str, enabled: bool, *, project_id: str | None = None
) -> list[_CatalogueChange]:
    current = _existing(catalogue, code, project_id)
    return change_outcome(catalogue, ctx, msgspec.structs.replace(current, enabled=enabled), project_id=project_id)


def retire_outcome(
    catalogue: Catalogue, ctx: Context, code: str, *, project_id: str | None = None
) -> list[_CatalogueChange]:
    _existing(catalogue, code, project_id)
    event = make(OutcomeRetired, catalogue.id, _next(catalogue), ctx, code=code, project_id=project_id)
    return [_finalise(catalogue, event)]


def assign_outcome(
    catalogue: Catalogue, ctx: Context, code: str, project_id: str, assigned: bool = True
) -> list[_CatalogueChange]:
    _existing(catalogue, code, None)
    _project(catalogue, project_id)
    event = make(
        OutcomeAssigned, catalogue.id, _next(catalogue), ctx, code=code, project_id=project_id, assigned=assigned
    )
    if assigned and _auto_close_projects_gaining(catalogue, event, code):
        # A tenant-level change leaves the outcome hidden in an auto-close project:
        # hide it there first, then assign it, in the same save.
        hide = _finalise(
            catalogue, make(OutcomeHidden, catalogue.id, _next(catalogue), ctx, code=code, project_id=project_id)
        )
        hidden = apply(hide, catalogue)
        assign = make(OutcomeAssigned, catalogue.id, _next(hidden), ctx, code=code, project_id=project_id)
        return [hide, _finalise(hidden, assign)]
    return [_finalise(catalogue, event)]


def hide_outcome(
    catalogue: Catalogue, ctx: Context, code: str, project_id: str, hidden: bool = True
) -> list[_CatalogueChange]:
    _existing(catalogue, code, None)
    _project(catalogue, project_id)
    event = make(OutcomeHidden, catalogue.id, _next(catalogue), ctx, code=code, project_id=project_id, hidden=hidden)
    return [_finalise(catalogue, event)]


# -- projects ---------------------------------------------------------------------------------------


def create_project(
    catalogue: Catalogue, ctx: Context, project_id: str, settings: ProjectSettings, hidden: Iterable[str] = ()
) -> list[_CatalogueChange]:
    if project_id in catalogue.projects:
        raise ProjectExists(f"project {project_id!r} already exists")
    unknown = [c for c in hidden if c not in catalogue.outcomes]
    if unknown:
        raise NotFound(f"outcome {unknown[0]!r} not found")
    event = make(
        ProjectCreated,
        catalogue.id,
        _next(catalogue),
        ctx,
        project_id=project_id,
        settings=settings,
        hidden=tuple(sorted(set(hidden))),
    )
    return [_finalise(catalogue, event)]


def change_project(
    catalogue: Catalogue, ctx: Context, project_id: str, settings: ProjectSettings
) -> list[_CatalogueChange]:
    _project(catalogue, project_id)
    event = make(ProjectChanged, catalogue.id, _next(catalogue), ctx, project_id=project_id, settings=settings)
    return [_finalise(catalogue, event)]


# -- templates and people ------------------------------------------------------------------------------


def save_template(catalogue: Catalogue, ctx: Context, template_id: str, body: str) -> list[_CatalogueChange]:
    if MESSAGE_TAG.search(body):
        users = [
            g.definition.code
            for g in catalogue.outcomes.values()
            if g.definition.sms_template == template_id and g.definition.auto_send and not g.retired
        ]
        if users:
            raise TemplateHasTags(
                f"template {template_id!r} is sent automatically by {', '.join(users)}; it must contain no message tags"
            )
    event = make(SmsTemplateSaved, catalogue.id, _next(catalogue), ctx, template_id=template_id, body=body)
    return [_finalise(catalogue, event)]


def register_agent(catalogue: Catalogue, ctx: Context, agent_id: str, name: str) -> list[_CatalogueChange]:
    event = make(AgentRegistered, catalogue.id, _next(catalogue), ctx, agent_id=agent_id, name=name)
    return [_finalise(catalogue, event)]


def create_team(catalogue: Catalogue, ctx: Context, team_id: str, name: str) -> list[_CatalogueChange]:
    if team_id in catalogue.teams:
        raise TeamExists(f"team {team_id!r} already exists")
    event = make(TeamCreated, catalogue.id, _next(catalogue), ctx, team_id=team_id, name=name)
    return [_finalise(catalogue, event)]


def set_agent_team(catalogue: Catalogue, ctx: Context, agent_id: str, team_id: str | None) -> list[_CatalogueChange]:
    if agent_id not in catalogue.agents:
        raise NotFound(f"agent {agent_id!r} not found")
    if team_id is not None and team_id not in catalogue.teams:
        raise NotFound(f"team {team_id!r} not found")
    event = make(AgentTeamChanged, catalogue.id, _next(catalogue), ctx, agent_id=agent_id, team_id=team_id)
    return [_finalise(catalogue, event)]
