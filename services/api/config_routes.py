"""Configuration over HTTP (admin): outcomes, projects, templates, people, keys."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, delete, get, post, put
from litestar.datastructures import State

from events.types import OutcomeDefinition, ProjectSettings
from services.api import bodies
from services.api.common import Principal, command, in_thread, runtime_of
from services.errors import InvalidDefinition, NotFound
from services.idempotency import Idempotency, Receipt
from services.ledger import Ledger, OutcomeSet
from services.permissions import Action
from services.rules import Context
from services.rules import config as rules

Req = Request[Any, Any, Any]


async def _admin(request: Req, state: State, principal: Principal, kind: str, external_id: str, decide: Any) -> Receipt:
    """A configuration change: a rule of ``services.rules.config`` applied to the catalogue."""
    return await command(request, state, principal, Action.CONFIGURE, _configure(kind, external_id, decide))


def _same_code(data: bodies.OutcomeBody, code: str) -> None:
    if data.code != code:
        raise InvalidDefinition(f"the body's code {data.code!r} is not the outcome {code!r}; codes do not change")


def _configure(kind: str, external_id: str, decide: Any) -> Any:
    def run(ledger: Ledger, ctx: Context, key: Idempotency | None) -> Receipt:
        return ledger.configure(ctx, kind, external_id, lambda catalogue: decide(catalogue, ctx), key)

    return run


# -- global outcomes ---------------------------------------------------------------------------------


@post("/outcomes", status_code=201, operation_id="defineGlobalOutcome", summary="Define a global outcome")
async def define_global(data: bodies.GlobalOutcomeBody, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "outcome",
        data.code,
        lambda c, ctx: rules.define_outcome(
            c, ctx, bodies.narrow(data, OutcomeDefinition), availability=data.availability
        ),
    )


@get("/outcomes", operation_id="searchOutcomes", summary="Search outcomes by code or description")
async def search(principal: Principal, state: State, q: str = "", project_id: str | None = None) -> list[Any]:
    principal.require_any(Action.CONFIGURE, Action.REPORT_FACTS, Action.READ_REPORTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    return await in_thread(ledger.search_outcomes, principal.tenant_id, q, project_id)


@put("/outcomes/{code:str}", operation_id="changeGlobalOutcome", summary="Change a global outcome's definition")
async def change_global(
    code: str, data: bodies.ChangeGlobalOutcomeBody, principal: Principal, state: State, request: Req
) -> Receipt:
    principal.require(Action.CONFIGURE)
    _same_code(data, code)
    return await _admin(
        request,
        state,
        principal,
        "outcome",
        code,
        lambda c, ctx: rules.change_outcome(
            c, ctx, bodies.narrow(data, OutcomeDefinition), availability=data.availability
        ),
    )


@post("/outcomes/{code:str}/enable", status_code=200, operation_id="enableGlobalOutcome")
async def enable_global(code: str, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request, state, principal, "outcome", code, lambda c, ctx: rules.set_enabled(c, ctx, code, True)
    )


@post("/outcomes/{code:str}/disable", status_code=200, operation_id="disableGlobalOutcome")
async def disable_global(code: str, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request, state, principal, "outcome", code, lambda c, ctx: rules.set_enabled(c, ctx, code, False)
    )


@post("/outcomes/{code:str}/retire", status_code=200, operation_id="retireGlobalOutcome")
async def retire_global(code: str, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(request, state, principal, "outcome", code, lambda c, ctx: rules.retire_outcome(c, ctx, code))


@put(
    "/outcomes/{code:str}/assignments/{project_id:str}",
    operation_id="assignOutcome",
    summary="Make an 'assigned' global outcome available in a project",
)
async def assign(code: str, project_id: str, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request, state, principal, "outcome", code, lambda c, ctx: rules.assign_outcome(c, ctx, code, project_id, True)
    )


@delete("/outcomes/{code:str}/assignments/{project_id:str}", status_code=200, operation_id="unassignOutcome")
async def unassign(code: str, project_id: str, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request, state, principal, "outcome", code, lambda c, ctx: rules.assign_outcome(c, ctx, code, project_id, False)
    )


# -- projects -------------------------------------------------------------------------------------------


@post("/projects", status_code=201, operation_id="createProject", summary="Create a project")
async def create_project(data: bodies.ProjectBody, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "project",
        data.project_id,
        lambda c, ctx: rules.create_project(
            c, ctx, data.project_id, bodies.narrow(data, ProjectSettings), data.hidden_outcomes
        ),
    )


@put("/projects/{project_id:str}", operation_id="changeProject", summary="Change a project's settings")
async def change_project(
    project_id: str, data: bodies.ProjectSettingsBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "project",
        project_id,
        lambda c, ctx: rules.change_project(c, ctx, project_id, bodies.narrow(data, ProjectSettings)),
    )


@get(
    "/projects/{project_id:str}/outcome-set",
    operation_id="getOutcomeSet",
    summary="The project's active outcome set: what the agent's picker shows",
)
async def outcome_set(project_id: str, principal: Principal, state: State) -> OutcomeSet:
    principal.require_any(Action.CONFIGURE, Action.REPORT_FACTS, Action.READ_REPORTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    return await in_thread(ledger.outcome_set, principal.tenant_id, project_id)


@put(
    "/projects/{project_id:str}/hidden-outcomes/{code:str}",
    operation_id="hideOutcome",
    summary="Hide a global outcome in a project",
)
async def hide(project_id: str, code: str, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "project",
        project_id,
        lambda c, ctx: rules.hide_outcome(c, ctx, code, project_id, True),
    )


@delete("/projects/{project_id:str}/hidden-outcomes/{code:str}", status_code=200, operation_id="unhideOutcome")
async def unhide(project_id: str, code: str, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "project",
        project_id,
        lambda c, ctx: rules.hide_outcome(c, ctx, code, project_id, False),
    )


@post(
    "/projects/{project_id:str}/outcomes",
    status_code=201,
    operation_id="defineProjectOutcome",
    summary="Define a project-specific outcome",
)
async def define_project_outcome(
    project_id: str, data: bodies.OutcomeBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "outcome",
        data.code,
        lambda c, ctx: rules.define_outcome(c, ctx, bodies.narrow(data, OutcomeDefinition), project_id=project_id),
    )


@put("/projects/{project_id:str}/outcomes/{code:str}", operation_id="changeProjectOutcome")
async def change_project_outcome(
    project_id: str, code: str, data: bodies.OutcomeBody, principal: Principal, state: State, request: Req
) -> Receipt:
    principal.require(Action.CONFIGURE)
    _same_code(data, code)
    return await _admin(
        request,
        state,
        principal,
        "outcome",
        code,
        lambda c, ctx: rules.change_outcome(c, ctx, bodies.narrow(data, OutcomeDefinition), project_id=project_id),
    )


@post(
    "/projects/{project_id:str}/outcomes/{code:str}/{verb:str}",
    status_code=200,
    operation_id="setProjectOutcomeState",
    summary="enable, disable or retire a project outcome",
)
async def project_outcome_state(
    project_id: str, code: str, verb: str, principal: Principal, state: State, request: Req
) -> Receipt:
    if verb not in {"enable", "disable", "retire"}:
        raise NotFound(f"no action {verb!r}: use enable, disable or retire")

    def decide(c: Any, ctx: Context) -> Any:
        if verb == "retire":
            return rules.retire_outcome(c, ctx, code, project_id=project_id)
        return rules.set_enabled(c, ctx, code, verb == "enable", project_id=project_id)

    return await _admin(request, state, principal, "outcome", code, decide)


# -- templates and people ----------------------------------------------------------------------------------


@put("/sms-templates/{template_id:str}", operation_id="saveSmsTemplate", summary="Create or replace an SMS template")
async def save_template(
    template_id: str, data: bodies.TemplateBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "sms-template",
        template_id,
        lambda c, ctx: rules.save_template(c, ctx, template_id, data.body),
    )


@post("/agents", status_code=201, operation_id="registerAgent")
async def register_agent(data: bodies.AgentBody, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "agent",
        data.agent_id,
        lambda c, ctx: rules.register_agent(c, ctx, data.agent_id, data.name),
    )


@post("/teams", status_code=201, operation_id="createTeam")
async def create_team(data: bodies.TeamBody, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "team",
        data.team_id,
        lambda c, ctx: rules.create_team(c, ctx, data.team_id, data.name),
    )


@put("/agents/{agent_id:str}/team", operation_id="setAgentTeam", summary="Move an agent to a team (or none)")
async def set_team(
    agent_id: str, data: bodies.MembershipBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "agent",
        agent_id,
        lambda c, ctx: rules.set_agent_team(c, ctx, agent_id, data.team_id),
    )


@post("/keys", status_code=201, operation_id="issueKey", summary="Issue an API key (the secret is shown once)")
async def issue_key(data: bodies.IssueKey, principal: Principal, state: State) -> bodies.IssuedKey:
    principal.require(Action.CONFIGURE)
    record, secret = await in_thread(runtime_of(state).registry.issue_key, principal.tenant_id, data.role)
    return bodies.IssuedKey(key_id=record.key_id, role=record.role, secret=secret)


@delete("/keys/{key_id:str}", status_code=200, operation_id="revokeKey", summary="Revoke an API key")
async def revoke_key(key_id: str, principal: Principal, state: State) -> dict[str, str]:
    principal.require(Action.CONFIGURE)
    if not await in_thread(runtime_of(state).registry.revoke, principal.tenant_id, key_id):
        raise NotFound(f"key {key_id!r} not found")
    return {"key_id": key_id, "status": "revoked"}


router = Router(
    path="/v1",
    route_handlers=[
        define_global,
        search,
        change_global,
        enable_global,
        disable_global,
        retire_global,
        assign,
        unassign,
        create_project,
        change_project,
        outcome_set,
        hide,
        unhide,
        define_project_outcome,
        change_project_outcome,
        project_outcome_state,
        save_template,
        register_agent,
        create_team,
        set_team,
        issue_key,
        revoke_key,
    ],
)
