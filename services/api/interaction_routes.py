"""Interaction facts, outcome selections and corrections over HTTP (platforms, agents, supervisors)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Router, get, post
from litestar.datastructures import State

from services.api import bodies
from services.api.common import Principal, command, in_thread, runtime_of
from services.idempotency import Receipt
from services.interactions import Call, Conversation
from services.permissions import Action
from services.rules import interactions as rules
from services.rules.interactions import Choice

Req = Request[Any, Any, Any]


def _choice(data: bodies.SelectOutcome | bodies.CorrectOutcome) -> Choice:
    agent_id = data.agent_id if isinstance(data, bodies.SelectOutcome) else None
    return Choice(data.outcome_code, data.occurred_at, data.revenue, agent_id)


# -- calls -----------------------------------------------------------------------------------------------


@post("/calls", status_code=201, operation_id="startCall", summary="A call started")
async def start_call(data: bodies.StartCall, principal: Principal, state: State, request: Req) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.start_call(
            ctx,
            call_id=data.call_id,
            project_id=data.project_id,
            direction=data.direction,
            occurred_at=data.occurred_at,
            conversation_id=data.conversation_id,
            agent_id=data.agent_id,
            contact_id=data.contact_id,
            contact_number=data.contact_number,
            idempotency=key,
        ),
    )


@post(
    "/calls/{call_id:str}/answered", status_code=200, operation_id="callAnswered", summary="A person answered the call"
)
async def answered(
    call_id: str, data: bodies.CallAnsweredBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.answer_call(call, ctx, occurred_at=data.occurred_at, agent_id=data.agent_id),
            key,
        ),
    )


@post(
    "/calls/{call_id:str}/agent-connected",
    status_code=200,
    operation_id="agentConnected",
    summary="An agent was connected to the call (predictive dialling)",
)
async def agent_connected(
    call_id: str, data: bodies.AgentConnectedBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.connect_agent(
                call, ctx, occurred_at=data.occurred_at, agent_id=data.agent_id
            ),
            key,
        ),
    )


@post(
    "/calls/{call_id:str}/unanswered",
    status_code=200,
    operation_id="callUnanswered",
    summary="Nobody answered: the dialer's telephony status",
)
async def unanswered(
    call_id: str, data: bodies.CallUnansweredBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.call_unanswered(
                cat, call, ctx, occurred_at=data.occurred_at, status=data.telephony_status, conversation=conv
            ),
            key,
        ),
    )


@post("/calls/{call_id:str}/ended", status_code=200, operation_id="callEnded", summary="The call ended")
async def ended(call_id: str, data: bodies.CallEndedBody, principal: Principal, state: State, request: Req) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.end_call(
            ctx,
            call_id=call_id,
            occurred_at=data.occurred_at,
            termination_reason=data.termination_reason,
            idempotency=key,
        ),
    )


@post(
    "/calls/{call_id:str}/outcome",
    status_code=201,
    operation_id="selectCallOutcome",
    summary="Select the call's outcome",
)
async def select_call(
    call_id: str, data: bodies.SelectOutcome, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.select_call_outcome(
            ctx, call_id=call_id, choice=_choice(data), idempotency=key
        ),
    )


@post(
    "/calls/{call_id:str}/correction",
    status_code=201,
    operation_id="correctCallOutcome",
    summary="Correct the call's outcome (supervisor, with a reason)",
)
async def correct_call(
    call_id: str, data: bodies.CorrectOutcome, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.CORRECT,
        lambda ledger, ctx, key: ledger.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.correct_outcome(
                cat,
                call,
                ctx,
                _choice(data),
                reason=data.reason,
                lift_suppressions=data.lift_suppressions,
                conversation=conv,
            ),
            key,
        ),
    )


@post(
    "/calls/{call_id:str}/references",
    status_code=201,
    operation_id="attachCallReference",
    summary="Attach a recording or transcript reference (may arrive late)",
)
async def call_reference(
    call_id: str, data: bodies.ReferenceBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.attach_reference(
                call, ctx, kind=data.kind, reference=data.reference, occurred_at=data.occurred_at
            ),
            key,
        ),
    )


@get("/calls/{call_id:str}", operation_id="getCall", summary="A call's current state")
async def get_call(call_id: str, principal: Principal, state: State) -> dict[str, Any]:
    principal.require_any(Action.READ_REPORTS, Action.REPORT_FACTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    call: Call = await in_thread(ledger.call, principal.tenant_id, call_id)
    return {**msgspec.to_builtins(call), "telephony_status": call.telephony_status}


# -- conversations ------------------------------------------------------------------------------------------


@post("/conversations", status_code=201, operation_id="startConversation", summary="A conversation started")
async def start_conversation(
    data: bodies.StartConversation, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.start_conversation(
            ctx,
            conversation_id=data.conversation_id,
            project_id=data.project_id,
            channel=data.channel,
            occurred_at=data.occurred_at,
            contact_id=data.contact_id,
            idempotency=key,
        ),
    )


@post(
    "/conversations/{conversation_id:str}/messages",
    status_code=201,
    operation_id="recordMessage",
    summary="A message was received or sent",
)
async def message(
    conversation_id: str, data: bodies.MessageBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.conversation_fact(
            ctx,
            conversation_id,
            lambda cat, conv: rules.record_message(
                conv, ctx, direction=data.direction, channel=data.channel, occurred_at=data.occurred_at, body=data.body
            ),
            key,
        ),
    )


@post(
    "/conversations/{conversation_id:str}/outcome",
    status_code=201,
    operation_id="selectConversationOutcome",
    summary="Select an outcome for the conversation",
)
async def select_conversation(
    conversation_id: str, data: bodies.SelectOutcome, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.conversation_fact(
            ctx, conversation_id, lambda cat, conv: rules.select_outcome(cat, conv, ctx, _choice(data)), key
        ),
    )


@post(
    "/conversations/{conversation_id:str}/correction",
    status_code=201,
    operation_id="correctConversationOutcome",
    summary="Correct the conversation's closing outcome (supervisor, with a reason)",
)
async def correct_conversation(
    conversation_id: str, data: bodies.CorrectOutcome, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.CORRECT,
        lambda ledger, ctx, key: ledger.conversation_fact(
            ctx,
            conversation_id,
            lambda cat, conv: rules.correct_outcome(
                cat, conv, ctx, _choice(data), reason=data.reason, lift_suppressions=data.lift_suppressions
            ),
            key,
        ),
    )


@post(
    "/conversations/{conversation_id:str}/close",
    status_code=200,
    operation_id="closeConversation",
    summary="The agent closed the conversation",
)
async def close(
    conversation_id: str, data: bodies.CloseBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.conversation_fact(
            ctx,
            conversation_id,
            lambda cat, conv: rules.close_conversation(cat, conv, ctx, occurred_at=data.occurred_at),
            key,
        ),
    )


@post("/conversations/{conversation_id:str}/references", status_code=201, operation_id="attachConversationReference")
async def conversation_reference(
    conversation_id: str, data: bodies.ReferenceBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.conversation_fact(
            ctx,
            conversation_id,
            lambda cat, conv: rules.attach_reference(
                conv, ctx, kind=data.kind, reference=data.reference, occurred_at=data.occurred_at
            ),
            key,
        ),
    )


@get("/conversations/{conversation_id:str}", operation_id="getConversation")
async def get_conversation(conversation_id: str, principal: Principal, state: State) -> Conversation:
    principal.require_any(Action.READ_REPORTS, Action.REPORT_FACTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    return await in_thread(ledger.conversation, principal.tenant_id, conversation_id)


@post(
    "/contacts/{contact_id:str}/opt-out",
    status_code=201,
    operation_id="contactOptedOut",
    summary="The contact opted out (e.g. replied STOP)",
)
async def opt_out(
    contact_id: str, data: bodies.OptOutBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.REPORT_FACTS,
        lambda ledger, ctx, key: ledger.opt_out(
            ctx, contact_id=contact_id, channel=data.channel, occurred_at=data.occurred_at, idempotency=key
        ),
    )


router = Router(
    path="/v1",
    route_handlers=[
        start_call,
        answered,
        agent_connected,
        unanswered,
        ended,
        select_call,
        correct_call,
        call_reference,
        get_call,
        start_conversation,
        message,
        select_conversation,
        correct_conversation,
        close,
        conversation_reference,
        get_conversation,
        opt_out,
    ],
)
