"""The HTTP API: thin handlers -- parse, authorise, call one Ledger method."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from events.codec import now
from projections.outcome_counts import NAME as OUTCOME_COUNTS
from projections.outcome_counts import outcome_counts
from services import rules
from services.api import bodies
from services.api.errors import HANDLERS
from services.api.metrics import register_collector
from services.config import Settings
from services.errors import Forbidden
from services.ledger import Idempotency, Receipt
from services.permissions import Action, Role, may
from services.registry import ApiKey
from services.runtime import Runtime

MAX_BODY_BYTES = 256 * 1024  # PRODUCT.md §7: larger bodies are refused
T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    key: ApiKey
    #: who the request acts for: a platform key may act for an agent, a supervisor or "system"
    actor: str

    @property
    def tenant_id(self) -> str:
        return self.key.tenant_id

    def require(self, action: Action) -> None:
        if not may(self.key.role, action):
            raise Forbidden(f"role {self.key.role.value!r} may not {action.value}")

    def context(self) -> rules.Context:
        return rules.Context(self.tenant_id, self.actor, now())


def _actor(key: ApiKey, acting_for: str | None) -> str:
    if key.role is Role.PLATFORM and acting_for:
        kind, _, who = acting_for.partition(":")
        if acting_for == "system" or (kind in {"agent", "supervisor"} and who):
            return acting_for
        raise Forbidden("X-Acting-For must be 'agent:<id>', 'supervisor:<id>' or 'system'")
    return f"{key.role.value}:{key.key_id}"


async def authenticate(request: Request[Any, Any, Any], state: State) -> Principal:
    runtime: Runtime = state.runtime
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise NotAuthorizedException("send 'Authorization: Bearer <API key>'")
    key = await asyncio.to_thread(runtime.registry.authenticate, secret.strip())
    if key is None:
        raise NotAuthorizedException("unknown or revoked API key")
    return Principal(key, _actor(key, request.headers.get("x-acting-for")))


async def idempotency(request: Request[Any, Any, Any]) -> Idempotency | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 200:
        raise Forbidden("Idempotency-Key must be 1-200 characters")
    body = await request.body()
    return Idempotency.of(key, request.method.encode(), request.url.path.encode(), body)


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # eventsourcing is synchronous: run the command in a worker thread.
    return await asyncio.to_thread(fn, *args, **kwargs)


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


# -- configuration ----------------------------------------------------------------------
@post("/v1/outcomes", status_code=201, summary="Define a global outcome", operation_id="defineOutcome")
async def define_outcome(
    data: bodies.DefineOutcome, principal: Principal, state: State, request: Request[Any, Any, Any]
) -> Receipt:
    principal.require(Action.CONFIGURE)
    ledger = _runtime(state).ledger(principal.tenant_id)
    return await _call(
        ledger.define_outcome,
        principal.context(),
        code=data.code,
        name=data.name,
        description=data.description,
        category=data.category,
        flags=data.flags.to_event(),
        selectable=data.selectable,
        applies_to=tuple(data.applies_to),
        idempotency=await idempotency(request),
    )


@post("/v1/projects", status_code=201, summary="Create a project", operation_id="createProject")
async def create_project(
    data: bodies.CreateProject, principal: Principal, state: State, request: Request[Any, Any, Any]
) -> Receipt:
    principal.require(Action.CONFIGURE)
    ledger = _runtime(state).ledger(principal.tenant_id)
    return await _call(
        ledger.create_project,
        principal.context(),
        project_id=data.project_id,
        name=data.name,
        direction=data.direction,
        idempotency=await idempotency(request),
    )


@post("/v1/keys", status_code=201, summary="Issue an API key (the secret is shown once)", operation_id="issueKey")
async def issue_key(data: bodies.IssueKey, principal: Principal, state: State) -> bodies.IssuedKey:
    principal.require(Action.CONFIGURE)
    record, secret = await _call(_runtime(state).registry.issue_key, principal.tenant_id, data.role)
    return bodies.IssuedKey(key_id=record.key_id, role=record.role, secret=secret)


# -- interaction facts and outcomes -------------------------------------------------------
@post("/v1/calls", status_code=201, summary="Report that a call started", operation_id="startCall")
async def start_call(
    data: bodies.StartCall, principal: Principal, state: State, request: Request[Any, Any, Any]
) -> Receipt:
    principal.require(Action.REPORT_FACTS)
    ledger = _runtime(state).ledger(principal.tenant_id)
    return await _call(
        ledger.start_call,
        principal.context(),
        call_id=data.call_id,
        project_id=data.project_id,
        direction=data.direction,
        occurred_at=data.occurred_at,
        agent_id=data.agent_id,
        contact_id=data.contact_id,
        contact_number=data.contact_number,
        idempotency=await idempotency(request),
    )


@post("/v1/calls/{call_id:str}/end", status_code=200, summary="Report that a call ended", operation_id="endCall")
async def end_call(
    call_id: str, data: bodies.EndCall, principal: Principal, state: State, request: Request[Any, Any, Any]
) -> Receipt:
    principal.require(Action.REPORT_FACTS)
    ledger = _runtime(state).ledger(principal.tenant_id)
    return await _call(
        ledger.end_call,
        principal.context(),
        call_id=call_id,
        occurred_at=data.occurred_at,
        termination_reason=data.termination_reason,
        idempotency=await idempotency(request),
    )


@post(
    "/v1/calls/{call_id:str}/outcome",
    status_code=201,
    summary="Select the call's outcome",
    operation_id="selectCallOutcome",
)
async def select_outcome(
    call_id: str, data: bodies.SelectOutcome, principal: Principal, state: State, request: Request[Any, Any, Any]
) -> Receipt:
    principal.require(Action.REPORT_FACTS)
    ledger = _runtime(state).ledger(principal.tenant_id)
    return await _call(
        ledger.select_outcome,
        principal.context(),
        call_id=call_id,
        code=data.outcome_code,
        occurred_at=data.occurred_at,
        revenue=data.revenue,
        agent_id=data.agent_id,
        idempotency=await idempotency(request),
    )


# -- reports ---------------------------------------------------------------------------------
@get(
    "/v1/projects/{project_id:str}/outcome-counts",
    summary="Outcome selections per outcome in a project",
    operation_id="getOutcomeCounts",
)
async def get_outcome_counts(project_id: str, principal: Principal, state: State) -> bodies.OutcomeCounts:
    principal.require(Action.READ_REPORTS)
    runtime = _runtime(state)
    ledger = runtime.ledger(principal.tenant_id)
    await _call(ledger.project, principal.tenant_id, project_id)  # 404 for unknown (or another tenant's)
    keys = runtime.shard_keys(principal.tenant_id)
    counts, position = await _call(
        lambda: (
            outcome_counts(runtime.client, keys, principal.tenant_id, project_id),
            int(runtime.client.hget(keys.tracking, OUTCOME_COUNTS) or 0),  # type: ignore[arg-type]
        )
    )
    return bodies.OutcomeCounts(project_id=project_id, counts=counts, position=position)


@get("/health", summary="Liveness and Redis reachability", operation_id="health", include_in_schema=True)
async def health(state: State) -> dict[str, str]:
    await _call(_runtime(state).client.ping)
    return {"status": "ok"}


def create_app(runtime: Runtime | None = None) -> Litestar:
    def on_startup(app: Litestar) -> None:
        if not hasattr(app.state, "runtime"):
            app.state.runtime = runtime or Runtime(Settings.from_env())
        register_collector(app.state.runtime)

    def on_shutdown(app: Litestar) -> None:
        if runtime is None:  # we made it, we close it
            app.state.runtime.close()

    prometheus = PrometheusConfig(
        app_name="outcome_ledger", prefix="outcomes", group_path=True, exclude=["/metrics", "/health"]
    )
    app = Litestar(
        route_handlers=[
            define_outcome,
            create_project,
            issue_key,
            start_call,
            end_call,
            select_outcome,
            get_outcome_counts,
            health,
            PrometheusController,
        ],
        dependencies={"principal": Provide(authenticate)},
        exception_handlers=HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        middleware=[prometheus.middleware],
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=OpenAPIConfig(title="Outcome Ledger", version="0.1.0", path="/schema"),
    )
    if runtime is not None:
        app.state.runtime = runtime
    return app
