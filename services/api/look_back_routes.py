"""Looking back over HTTP, reading only: state as of a past moment (services/as_of.py) and
what-if (services/what_if.py). Thin adapters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from litestar import Router, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from services import as_of, what_if
from services.api.common import Principal, in_thread, runtime_of
from services.ledger import Ledger
from services.permissions import Action

T = TypeVar("T")
At = Annotated[
    datetime | None,
    Parameter(description="events recorded at or before this time (ISO 8601 with a time zone)"),
]
Position = Annotated[int | None, Parameter(ge=1, description="events at or before this log position")]


async def _read(
    principal: Principal,
    state: State,
    at: datetime | None,
    position: int | None,
    read: Callable[[Ledger, str, str, as_of.Moment], T],
    external_id: str,
) -> T:
    principal.require(Action.LOOK_BACK)
    moment = as_of.Moment(at=at, position=position).check()
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    return await in_thread(read, ledger, principal.tenant_id, external_id, moment)


@get(
    "/as-of/projects/{project_id:str}/outcome-set",
    operation_id="getOutcomeSetAsOf",
    summary="A project's outcome set as it was at a past moment (time and/or log position)",
)
async def outcome_set(
    project_id: str, principal: Principal, state: State, at: At = None, position: Position = None
) -> as_of.OutcomeSetAsOf:
    return await _read(principal, state, at, position, as_of.outcome_set_as_of, project_id)


@get("/as-of/calls/{call_id:str}", operation_id="getCallAsOf", summary="A call as it was at a past moment")
async def call(
    call_id: str, principal: Principal, state: State, at: At = None, position: Position = None
) -> as_of.CallAsOf:
    return await _read(principal, state, at, position, as_of.call_as_of, call_id)


@get(
    "/as-of/conversations/{conversation_id:str}",
    operation_id="getConversationAsOf",
    summary="A conversation as it was at a past moment",
)
async def conversation(
    conversation_id: str, principal: Principal, state: State, at: At = None, position: Position = None
) -> as_of.ConversationAsOf:
    return await _read(principal, state, at, position, as_of.conversation_as_of, conversation_id)


@post(
    "/what-if",
    status_code=200,
    operation_id="whatIf",
    summary="Try a proposed outcome-definition change on the last N days (writes nothing)",
    description=(
        "The changes are decided by the same rules as the real configuration changes (a change they would "
        "refuse is refused here) and applied in memory. For each project: the rates as reported and with the "
        "proposal, the outcome mix by outcome and category, outcomes the proposal takes out of the set, and the "
        "follow-up actions (SMS, follow-up tasks, contact-list events) the affected selections would have caused."
    ),
)
async def try_change(data: what_if.WhatIfBody, principal: Principal, state: State) -> what_if.WhatIf:
    principal.require(Action.LOOK_BACK)
    runtime = runtime_of(state)
    ledger = await in_thread(runtime.ledger, principal.tenant_id)
    keys = await in_thread(runtime.view_keys, principal.tenant_id)
    return await in_thread(what_if.what_if, ledger, runtime.client, keys, principal.context(), data)


router = Router(path="/v1", route_handlers=[outcome_set, call, conversation, try_change])
