"""Follow-up actions over HTTP: the SMS an interaction's outcomes asked for, and sending
a draft (an outbound call's outcome without auto-send) once the agent has completed it;
the follow-up tasks they opened, completed and reassigned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from litestar import Request, Router, get, post
from litestar.datastructures import State

from events.types import Interaction
from services.api import bodies
from services.api.common import Principal, command, in_thread, runtime_of
from services.follow_ups import FollowUp
from services.idempotency import Idempotency, Receipt
from services.ledger import Ledger
from services.permissions import Action
from services.rules import Context
from services.rules import follow_ups as follow_up_rules
from services.sms import Sms

Req = Request[Any, Any, Any]
T = TypeVar("T")
V = TypeVar("V")


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


async def _caused(
    principal: Principal,
    state: State,
    find: Callable[[Ledger, str, Interaction, str], list[T]],
    view: Callable[[T], V],
    interaction: Interaction,
    external_id: str,
) -> list[V]:
    """What an interaction's outcomes caused (its SMS, its follow-ups), as views."""
    principal.require_any(Action.WORK_FOLLOW_UPS, Action.READ_REPORTS)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    found = await in_thread(find, ledger, principal.tenant_id, interaction, external_id)
    return [view(item) for item in found]


@get("/calls/{call_id:str}/sms", operation_id="getCallSms", summary="The SMS the call's outcomes asked for")
async def call_sms(call_id: str, principal: Principal, state: State) -> list[bodies.SmsView]:
    return await _caused(principal, state, Ledger.sms_of_interaction, _view, "call", call_id)


@get(
    "/conversations/{conversation_id:str}/sms",
    operation_id="getConversationSms",
    summary="The SMS the conversation's outcomes asked for",
)
async def conversation_sms(conversation_id: str, principal: Principal, state: State) -> list[bodies.SmsView]:
    return await _caused(principal, state, Ledger.sms_of_interaction, _view, "conversation", conversation_id)


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


def _task_view(task: FollowUp) -> bodies.FollowUpView:
    opened = task.opened
    return bodies.FollowUpView(
        follow_up_id=str(task.id),
        status=task.status,
        overdue=task.overdue,
        outcome_code=opened.outcome_code,
        interaction=opened.interaction,
        interaction_id=opened.interaction_id,
        owner_team=task.owner_team,
        owner_role=task.owner_role,
        owner_agent=task.owner_agent,
        due_at=opened.due_at,
        completed_by=task.completed_by,
        completed_at=task.completed_at,
    )


@get("/calls/{call_id:str}/follow-ups", operation_id="getCallFollowUps", summary="The call's follow-up tasks")
async def call_follow_ups(call_id: str, principal: Principal, state: State) -> list[bodies.FollowUpView]:
    return await _caused(principal, state, Ledger.follow_ups_of_interaction, _task_view, "call", call_id)


@get(
    "/conversations/{conversation_id:str}/follow-ups",
    operation_id="getConversationFollowUps",
    summary="The conversation's follow-up tasks",
)
async def conversation_follow_ups(
    conversation_id: str, principal: Principal, state: State
) -> list[bodies.FollowUpView]:
    find = Ledger.follow_ups_of_interaction
    return await _caused(principal, state, find, _task_view, "conversation", conversation_id)


@post(
    "/follow-ups/{follow_up_id:str}/complete",
    status_code=201,
    operation_id="completeFollowUp",
    summary="Complete a follow-up task",
)
async def complete_follow_up(
    follow_up_id: str, data: bodies.CompleteFollowUpBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.WORK_FOLLOW_UPS,
        lambda ledger, ctx, key: ledger.change_follow_up(
            ctx, follow_up_id, lambda task: follow_up_rules.complete(task, ctx, data.note), key
        ),
    )


@post(
    "/follow-ups/{follow_up_id:str}/reassign",
    status_code=201,
    operation_id="reassignFollowUp",
    summary="Give a follow-up task another owner (supervisor)",
)
async def reassign_follow_up(
    follow_up_id: str, data: bodies.ReassignFollowUpBody, principal: Principal, state: State, request: Req
) -> Receipt:
    role = data.owner_role.value if data.owner_role else None

    def run(ledger: Ledger, ctx: Context, key: Idempotency | None) -> Receipt:
        teams = ledger.catalogue(ctx.tenant_id).teams
        return ledger.change_follow_up(
            ctx,
            follow_up_id,
            lambda task: follow_up_rules.reassign(
                task, ctx, teams, owner_team=data.owner_team, owner_role=role, owner_agent=data.owner_agent
            ),
            key,
        )

    return await command(request, state, principal, Action.CORRECT, run)


router = Router(
    path="/v1",
    route_handlers=[
        call_sms,
        conversation_sms,
        send_draft,
        call_follow_ups,
        conversation_follow_ups,
        complete_follow_up,
        reassign_follow_up,
    ],
)
