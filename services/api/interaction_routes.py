"""Interaction facts, outcome selections and corrections over HTTP: thin adapters over
``services.commands``, the table the ingest stream uses too."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, post, put
from litestar.datastructures import State
from litestar.params import Parameter

from events.codec import now
from services.api import bodies
from services.api.common import Principal, command, in_thread, runtime_of
from services.commands import COMMANDS
from services.erasure import Erasure, erase_contact
from services.errors import NotFound
from services.idempotency import Idempotency, Receipt
from services.interactions import Call, Contact, Conversation
from services.ledger import Ledger
from services.permissions import Action
from services.rules import Context
from services.rules.dialability import Dialability, Mode

Req = Request[Any, Any, Any]


async def _do(name: str, target: str, data: Any, principal: Principal, state: State, request: Req) -> Receipt:
    cmd = COMMANDS[name]
    return await command(
        request, state, principal, cmd.action, lambda ledger, ctx, key: cmd.run(ledger, ctx, target, data, key)
    )


@post("/calls", status_code=201, operation_id="startCall", summary="A call started")
async def start_call(data: bodies.StartCall, principal: Principal, state: State, request: Req) -> Receipt:
    return await _do("call.started", "", data, principal, state, request)


@post(
    "/calls/{call_id:str}/answered", status_code=200, operation_id="callAnswered", summary="A person answered the call"
)
async def answered(
    call_id: str, data: bodies.CallAnsweredBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("call.answered", call_id, data, principal, state, request)


@post(
    "/calls/{call_id:str}/agent-connected",
    status_code=200,
    operation_id="agentConnected",
    summary="An agent was connected to the call (predictive dialling)",
)
async def agent_connected(
    call_id: str, data: bodies.AgentConnectedBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("call.agent_connected", call_id, data, principal, state, request)


@post(
    "/calls/{call_id:str}/unanswered",
    status_code=200,
    operation_id="callUnanswered",
    summary="Nobody answered: the dialer's telephony status",
)
async def unanswered(
    call_id: str, data: bodies.CallUnansweredBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("call.unanswered", call_id, data, principal, state, request)


@post("/calls/{call_id:str}/ended", status_code=200, operation_id="callEnded", summary="The call ended")
async def ended(call_id: str, data: bodies.CallEndedBody, principal: Principal, state: State, request: Req) -> Receipt:
    return await _do("call.ended", call_id, data, principal, state, request)


@post(
    "/calls/{call_id:str}/outcome",
    status_code=201,
    operation_id="selectCallOutcome",
    summary="Select the call's outcome",
)
async def select_call(
    call_id: str, data: bodies.SelectOutcome, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("call.outcome", call_id, data, principal, state, request)


@post(
    "/calls/{call_id:str}/correction",
    status_code=201,
    operation_id="correctCallOutcome",
    summary="Correct the call's outcome (supervisor, with a reason)",
)
async def correct_call(
    call_id: str, data: bodies.CorrectOutcome, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("call.correction", call_id, data, principal, state, request)


@post(
    "/calls/{call_id:str}/references",
    status_code=201,
    operation_id="attachCallReference",
    summary="Attach a recording or transcript reference (may arrive late)",
)
async def call_reference(
    call_id: str, data: bodies.ReferenceBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("call.reference", call_id, data, principal, state, request)


@post("/conversations", status_code=201, operation_id="startConversation", summary="A conversation started")
async def start_conversation(
    data: bodies.StartConversation, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("conversation.started", "", data, principal, state, request)


@post(
    "/conversations/{conversation_id:str}/messages",
    status_code=201,
    operation_id="recordMessage",
    summary="A message was received or sent",
)
async def message(
    conversation_id: str, data: bodies.MessageBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("conversation.message", conversation_id, data, principal, state, request)


@post(
    "/conversations/{conversation_id:str}/outcome",
    status_code=201,
    operation_id="selectConversationOutcome",
    summary="Select an outcome for the conversation",
)
async def select_conversation(
    conversation_id: str, data: bodies.SelectOutcome, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("conversation.outcome", conversation_id, data, principal, state, request)


@post(
    "/conversations/{conversation_id:str}/correction",
    status_code=201,
    operation_id="correctConversationOutcome",
    summary="Correct the conversation's closing outcome (supervisor, with a reason)",
)
async def correct_conversation(
    conversation_id: str, data: bodies.CorrectOutcome, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("conversation.correction", conversation_id, data, principal, state, request)


@post(
    "/conversations/{conversation_id:str}/close",
    status_code=200,
    operation_id="closeConversation",
    summary="The agent closed the conversation",
)
async def close(
    conversation_id: str, data: bodies.CloseBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("conversation.closed", conversation_id, data, principal, state, request)


@post(
    "/conversations/{conversation_id:str}/flow-returned",
    status_code=200,
    operation_id="flowReturned",
    summary="The flow (bot, survey) hands the conversation back",
)
async def flow_returned(
    conversation_id: str, data: bodies.FlowReturnedBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("conversation.flow_returned", conversation_id, data, principal, state, request)


@post(
    "/conversations/{conversation_id:str}/references",
    status_code=201,
    operation_id="attachConversationReference",
    summary="Attach a recording or transcript reference",
)
async def conversation_reference(
    conversation_id: str, data: bodies.ReferenceBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("conversation.reference", conversation_id, data, principal, state, request)


@put("/contacts/{contact_id:str}", operation_id="saveContact", summary="Create or replace a contact")
async def save_contact(
    contact_id: str, data: bodies.ContactBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("contact.saved", contact_id, data, principal, state, request)


@post(
    "/contacts/{contact_id:str}/opt-out",
    status_code=201,
    operation_id="contactOptedOut",
    summary="The contact opted out (e.g. replied STOP)",
)
async def opt_out(
    contact_id: str, data: bodies.OptOutBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _do("contact.opted_out", contact_id, data, principal, state, request)


@post(
    "/contacts/{contact_id:str}/erase",
    status_code=200,
    operation_id="eraseContact",
    summary="Erase the contact's personal data (admin): its key destroyed, its data outside the log purged, "
    "its numbers kept suppressed as keyed hashes; once (docs/erasure.md)",
)
async def erase(contact_id: str, principal: Principal, state: State, request: Req) -> Erasure:
    def run(ledger: Ledger, ctx: Context, _key: Idempotency | None) -> Erasure:
        return erase_contact(ledger, ctx, contact_id)  # idempotent by itself: the key adds nothing

    return await command(request, state, principal, Action.ERASE, run)


@get("/calls/{call_id:str}", operation_id="getCall", summary="A call's current state")
async def get_call(call_id: str, principal: Principal, state: State) -> dict[str, Any]:
    principal.require_any(Action.READ_REPORTS, Action.REPORT_FACTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    call: Call = await in_thread(ledger.call, principal.tenant_id, call_id)
    return {**msgspec.to_builtins(call), "telephony_status": call.telephony_status}


@get("/conversations/{conversation_id:str}", operation_id="getConversation", summary="A conversation's state")
async def get_conversation(conversation_id: str, principal: Principal, state: State) -> Conversation:
    principal.require_any(Action.READ_REPORTS, Action.REPORT_FACTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    return await in_thread(ledger.conversation, principal.tenant_id, conversation_id)


@get("/contacts/{contact_id:str}", operation_id="getContact", summary="A contact as the rules know it")
async def get_contact(contact_id: str, principal: Principal, state: State) -> Contact:
    principal.require_any(Action.READ_REPORTS, Action.REPORT_FACTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    contact = await in_thread(ledger.contact, principal.tenant_id, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id!r} not found")
    return contact


@get(
    "/contacts/{contact_id:str}/dialability",
    operation_id="getDialability",
    summary="May the number be called now in the project (automatic or manual), and if not why and until when",
)
async def get_dialability(
    contact_id: str,
    principal: Principal,
    state: State,
    project_id: Annotated[str, Parameter(min_length=1, max_length=100)],
    number: Annotated[str | None, Parameter(pattern=r"^\+[1-9][0-9]{6,14}$")] = None,
    mode: Mode = "automatic",
    agent_id: Annotated[str | None, Parameter(min_length=1, max_length=100)] = None,
) -> Dialability:
    principal.require_any(Action.REPORT_FACTS, Action.READ_REPORTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    tenant = principal.tenant_id
    return await in_thread(ledger.dialability, tenant, contact_id, project_id, number, now(), mode, agent_id)


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
        start_conversation,
        message,
        select_conversation,
        correct_conversation,
        close,
        flow_returned,
        conversation_reference,
        save_contact,
        opt_out,
        get_call,
        get_conversation,
        get_dialability,
        get_contact,
        erase,
    ],
)
