"""State as of a past moment over HTTP (services/as_of.py): thin adapters, read only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from litestar import Router, get
from litestar.datastructures import State
from litestar.params import Parameter

from services import as_of
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
    "/projects/{project_id:str}/outcome-set",
    operation_id="getOutcomeSetAsOf",
    summary="A project's outcome set as it was at a past moment (time and/or log position)",
)
async def outcome_set(
    project_id: str, principal: Principal, state: State, at: At = None, position: Position = None
) -> as_of.OutcomeSetAsOf:
    return await _read(principal, state, at, position, as_of.outcome_set_as_of, project_id)


@get("/calls/{call_id:str}", operation_id="getCallAsOf", summary="A call as it was at a past moment")
async def call(
    call_id: str, principal: Principal, state: State, at: At = None, position: Position = None
) -> as_of.CallAsOf:
    return await _read(principal, state, at, position, as_of.call_as_of, call_id)


@get(
    "/conversations/{conversation_id:str}",
    operation_id="getConversationAsOf",
    summary="A conversation as it was at a past moment",
)
async def conversation(
    conversation_id: str, principal: Principal, state: State, at: At = None, position: Position = None
) -> as_of.ConversationAsOf:
    return await _read(principal, state, at, position, as_of.conversation_as_of, conversation_id)


router = Router(path="/v1/as-of", route_handlers=[outcome_set, call, conversation])
