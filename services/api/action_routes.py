"""Follow-up actions over HTTP: the SMS an interaction's outcomes asked for, and sending
a draft (an outbound call's outcome without auto-send) once the agent has completed it."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post
from litestar.datastructures import State

from events.types import Interaction
from services.api import bodies
from services.api.common import Principal, command, in_thread, runtime_of
from services.idempotency import Receipt
from services.permissions import Action
from services.sms import Sms

Req = Request[Any, Any, Any]


def _view(sms: Sms) -> bodies.SmsView:
    request = sms.request
    return bodies.SmsView(
        sms_id=str(sms.id),
        status=sms.status,
        outcome_code=request.outcome_code,
        template_id=request.template_id,
        to_number=request.to_number,
        body=sms.body,
        draft=request.draft,
    )


async def _sms_of(
    principal: Principal, state: State, interaction: Interaction, external_id: str
) -> list[bodies.SmsView]:
    principal.require_any(Action.WORK_FOLLOW_UPS, Action.READ_REPORTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    found = await in_thread(ledger.sms_of_interaction, principal.tenant_id, interaction, external_id)
    return [_view(sms) for sms in found]


@get("/calls/{call_id:str}/sms", operation_id="getCallSms", summary="The SMS the call's outcomes asked for")
async def call_sms(call_id: str, principal: Principal, state: State) -> list[bodies.SmsView]:
    return await _sms_of(principal, state, "call", call_id)


@get(
    "/conversations/{conversation_id:str}/sms",
    operation_id="getConversationSms",
    summary="The SMS the conversation's outcomes asked for",
)
async def conversation_sms(conversation_id: str, principal: Principal, state: State) -> list[bodies.SmsView]:
    return await _sms_of(principal, state, "conversation", conversation_id)


@post(
    "/sms/{sms_id:str}/send",
    status_code=201,
    operation_id="sendSmsDraft",
    summary="Send a draft SMS as the agent completed and edited it",
)
async def send_draft(
    sms_id: str, data: bodies.SendSmsDraftBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.WORK_FOLLOW_UPS,
        lambda ledger, ctx, key: ledger.send_sms_draft(ctx, sms_id=sms_id, body=data.body, idempotency=key),
    )


router = Router(path="/v1", route_handlers=[call_sms, conversation_sms, send_draft])
