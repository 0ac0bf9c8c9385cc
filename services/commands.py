"""Interaction commands, defined once for every entry point (HTTP API and ingest stream).

Each command names its body, the permission it needs, the interaction it acts on, and
the one Ledger call it makes. The HTTP routes and the ingest worker are thin adapters
over this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from services.api import bodies
from services.idempotency import Idempotency, Receipt
from services.ledger import Ledger
from services.permissions import Action
from services.rules import Context
from services.rules import interactions as rules
from services.rules.interactions import Choice

Run = Callable[[Ledger, Context, str, Any, Idempotency | None], Receipt]


@dataclass(frozen=True)
class Command:
    name: str
    body: type[msgspec.Struct]
    action: Action
    #: what the target id names (None: the body creates it and carries its id)
    target: str | None
    run: Run


def _choice(data: bodies.SelectOutcome | bodies.CorrectOutcome) -> Choice:
    agent_id = data.agent_id if isinstance(data, bodies.SelectOutcome) else None
    return Choice(data.outcome_code, data.occurred_at, data.revenue, agent_id)


def _start_call(ledger: Ledger, ctx: Context, _: str, d: bodies.StartCall, key: Idempotency | None) -> Receipt:
    return ledger.start_call(
        ctx,
        call_id=d.call_id,
        project_id=d.project_id,
        direction=d.direction,
        occurred_at=d.occurred_at,
        conversation_id=d.conversation_id,
        agent_id=d.agent_id,
        contact_id=d.contact_id,
        contact_number=d.contact_number,
        idempotency=key,
    )


def _answered(
    ledger: Ledger, ctx: Context, call_id: str, d: bodies.CallAnsweredBody, key: Idempotency | None
) -> Receipt:
    return ledger.call_fact(
        ctx,
        call_id,
        lambda cat, call, conv: rules.answer_call(call, ctx, occurred_at=d.occurred_at, agent_id=d.agent_id),
        key,
    )


def _agent_connected(
    ledger: Ledger, ctx: Context, call_id: str, d: bodies.AgentConnectedBody, key: Idempotency | None
) -> Receipt:
    return ledger.call_fact(
        ctx,
        call_id,
        lambda cat, call, conv: rules.connect_agent(call, ctx, occurred_at=d.occurred_at, agent_id=d.agent_id),
        key,
    )


def _unanswered(
    ledger: Ledger, ctx: Context, call_id: str, d: bodies.CallUnansweredBody, key: Idempotency | None
) -> Receipt:
    return ledger.call_fact(
        ctx,
        call_id,
        lambda cat, call, conv: rules.call_unanswered(
            cat, call, ctx, occurred_at=d.occurred_at, status=d.telephony_status, conversation=conv
        ),
        key,
    )


def _ended(ledger: Ledger, ctx: Context, call_id: str, d: bodies.CallEndedBody, key: Idempotency | None) -> Receipt:
    return ledger.end_call(
        ctx, call_id=call_id, occurred_at=d.occurred_at, termination_reason=d.termination_reason, idempotency=key
    )


def _select_call(
    ledger: Ledger, ctx: Context, call_id: str, d: bodies.SelectOutcome, key: Idempotency | None
) -> Receipt:
    return ledger.select_call_outcome(ctx, call_id=call_id, choice=_choice(d), idempotency=key)


def _correct_call(
    ledger: Ledger, ctx: Context, call_id: str, d: bodies.CorrectOutcome, key: Idempotency | None
) -> Receipt:
    return ledger.call_fact(
        ctx,
        call_id,
        lambda cat, call, conv: rules.correct_outcome(
            cat, call, ctx, _choice(d), reason=d.reason, lift_suppressions=d.lift_suppressions, conversation=conv
        ),
        key,
    )


def _call_reference(
    ledger: Ledger, ctx: Context, call_id: str, d: bodies.ReferenceBody, key: Idempotency | None
) -> Receipt:
    return ledger.call_fact(
        ctx,
        call_id,
        lambda cat, call, conv: rules.attach_reference(
            call, ctx, kind=d.kind, reference=d.reference, occurred_at=d.occurred_at
        ),
        key,
    )


def _start_conversation(
    ledger: Ledger, ctx: Context, _: str, d: bodies.StartConversation, key: Idempotency | None
) -> Receipt:
    return ledger.start_conversation(
        ctx,
        conversation_id=d.conversation_id,
        project_id=d.project_id,
        channel=d.channel,
        occurred_at=d.occurred_at,
        contact_id=d.contact_id,
        idempotency=key,
    )


def _message(
    ledger: Ledger, ctx: Context, conversation_id: str, d: bodies.MessageBody, key: Idempotency | None
) -> Receipt:
    return ledger.conversation_fact(
        ctx,
        conversation_id,
        lambda cat, conv: rules.record_message(
            conv, ctx, direction=d.direction, channel=d.channel, occurred_at=d.occurred_at, body=d.body
        ),
        key,
    )


def _flow_returned(
    ledger: Ledger, ctx: Context, conversation_id: str, d: bodies.FlowReturnedBody, key: Idempotency | None
) -> Receipt:
    return ledger.conversation_fact(
        ctx,
        conversation_id,
        lambda cat, conv: rules.flow_returned(conv, ctx, flow=d.flow, occurred_at=d.occurred_at),
        key,
    )


def _select_conversation(
    ledger: Ledger, ctx: Context, conversation_id: str, d: bodies.SelectOutcome, key: Idempotency | None
) -> Receipt:
    return ledger.conversation_fact(
        ctx, conversation_id, lambda cat, conv: rules.select_outcome(cat, conv, ctx, _choice(d)), key
    )


def _correct_conversation(
    ledger: Ledger, ctx: Context, conversation_id: str, d: bodies.CorrectOutcome, key: Idempotency | None
) -> Receipt:
    return ledger.conversation_fact(
        ctx,
        conversation_id,
        lambda cat, conv: rules.correct_outcome(
            cat, conv, ctx, _choice(d), reason=d.reason, lift_suppressions=d.lift_suppressions
        ),
        key,
    )


def _close(ledger: Ledger, ctx: Context, conversation_id: str, d: bodies.CloseBody, key: Idempotency | None) -> Receipt:
    return ledger.conversation_fact(
        ctx, conversation_id, lambda cat, conv: rules.close_conversation(cat, conv, ctx, occurred_at=d.occurred_at), key
    )


def _conversation_reference(
    ledger: Ledger, ctx: Context, conversation_id: str, d: bodies.ReferenceBody, key: Idempotency | None
) -> Receipt:
    return ledger.conversation_fact(
        ctx,
        conversation_id,
        lambda cat, conv: rules.attach_reference(
            conv, ctx, kind=d.kind, reference=d.reference, occurred_at=d.occurred_at
        ),
        key,
    )


def _save_contact(
    ledger: Ledger, ctx: Context, contact_id: str, d: bodies.ContactBody, key: Idempotency | None
) -> Receipt:
    return ledger.save_contact(
        ctx,
        contact_id=contact_id,
        name=d.name,
        numbers=d.numbers,
        time_zone=d.time_zone,
        company_id=d.company_id,
        contact_list=d.contact_list,
        idempotency=key,
    )


def _opt_out(ledger: Ledger, ctx: Context, contact_id: str, d: bodies.OptOutBody, key: Idempotency | None) -> Receipt:
    return ledger.opt_out(ctx, contact_id=contact_id, channel=d.channel, occurred_at=d.occurred_at, idempotency=key)


_F, _C = Action.REPORT_FACTS, Action.CORRECT
COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command("call.started", bodies.StartCall, _F, None, _start_call),
        Command("call.answered", bodies.CallAnsweredBody, _F, "call_id", _answered),
        Command("call.agent_connected", bodies.AgentConnectedBody, _F, "call_id", _agent_connected),
        Command("call.unanswered", bodies.CallUnansweredBody, _F, "call_id", _unanswered),
        Command("call.ended", bodies.CallEndedBody, _F, "call_id", _ended),
        Command("call.outcome", bodies.SelectOutcome, _F, "call_id", _select_call),
        Command("call.correction", bodies.CorrectOutcome, _C, "call_id", _correct_call),
        Command("call.reference", bodies.ReferenceBody, _F, "call_id", _call_reference),
        Command("conversation.started", bodies.StartConversation, _F, None, _start_conversation),
        Command("conversation.message", bodies.MessageBody, _F, "conversation_id", _message),
        Command("conversation.outcome", bodies.SelectOutcome, _F, "conversation_id", _select_conversation),
        Command("conversation.correction", bodies.CorrectOutcome, _C, "conversation_id", _correct_conversation),
        Command("conversation.closed", bodies.CloseBody, _F, "conversation_id", _close),
        Command("conversation.flow_returned", bodies.FlowReturnedBody, _F, "conversation_id", _flow_returned),
        Command("conversation.reference", bodies.ReferenceBody, _F, "conversation_id", _conversation_reference),
        Command("contact.saved", bodies.ContactBody, _F, "contact_id", _save_contact),
        Command("contact.opted_out", bodies.OptOutBody, _F, "contact_id", _opt_out),
    ]
}
