"""SMS follow-ups (PRODUCT.md §1 "Message", §3 "SMS"): pure functions, state in, events out.

- An outcome with an ``sms_template`` asks for one SMS per selection (or correction to it).
- On a conversation it always goes automatically; on a call ``auto_send`` decides, and
  without it the agent gets a draft to complete, edit and send (the seeds say "outbound";
  an inbound call's agent is treated alike).
- The number is the call's own, else the contact's first.
- The agent sends a draft through the API once no message tag is left in it.
- A correction cancels the corrected selection's SMS if it has not gone yet.
- A contact who opted out of SMS (replied STOP) gets none: the refusal is recorded, both
  when the SMS is requested and, should the STOP arrive in between, when it would be sent.
- An erased contact, or any contact's number an erased contact had, gets none either: the
  sender refuses it just before sending (``SmsSuppressed`` "erased", docs/erasure.md).
"""

from __future__ import annotations

import re
from typing import Literal

from events.codec import DomainEvent
from events.types import (
    OutcomeCorrected,
    OutcomeSelected,
    SmsCancelled,
    SmsDraftApproved,
    SmsFailed,
    SmsRequested,
    SmsSent,
    SmsSuppressed,
)
from services.catalogue import Catalogue
from services.errors import DraftIncomplete, SmsNotDraft
from services.interactions import Call, Contact, Selection, aggregate_id, source_of
from services.rules import Context, make
from services.rules.config import MESSAGE_TAG
from services.sms import Sms

#: the message tags a draft is pre-filled with; the agent completes any other
_FILLED = {"contact.name", "contact.id"}


def render(body: str, contact: Contact | None) -> str:
    values = {
        "contact.name": (contact.name or "") if contact else "",
        "contact.id": contact.contact_id if contact else "",
    }

    def fill(match: re.Match[str]) -> str:
        tag = match.group(0).strip("{} ")
        return values[tag] if tag in _FILLED and values[tag] else match.group(0)

    return MESSAGE_TAG.sub(fill, body)


def request_sms(
    selection: OutcomeSelected | OutcomeCorrected,
    catalogue: Catalogue,
    ctx: Context,
    *,
    call: Call | None,
    contact: Contact | None,
) -> list[DomainEvent]:
    """What the selection's outcome asks for: nothing, or an SMS request (settled at once
    when the contact opted out or has no number)."""
    definition = selection.definition
    if definition.sms_template is None:
        return []
    template = catalogue.templates.get(definition.sms_template, "")
    source = source_of(selection)
    sms_id = aggregate_id(ctx.tenant_id, "sms", source)
    number = (call.contact_number if call else None) or (contact.numbers[0] if contact and contact.numbers else None)
    contact_id = contact.contact_id if contact else (call.contact_id if call else None)
    request = make(
        SmsRequested,
        sms_id,
        1,
        ctx,
        contact_id=contact_id,
        source=source,
        interaction=selection.interaction,
        interaction_id=selection.interaction_id,
        project_id=selection.project_id,
        outcome_code=selection.outcome_code,
        template_id=definition.sms_template,
        to_number=number,
        body=render(template, contact),
        draft=selection.interaction == "call" and not definition.auto_send,
    )
    if contact is not None and "sms" in contact.opted_out:
        return [request, make(SmsSuppressed, sms_id, 2, ctx, contact_id=contact_id, reason="opted_out")]
    if number is None:
        return [request, make(SmsSuppressed, sms_id, 2, ctx, contact_id=contact_id, reason="no_number")]
    return [request]


def cancel_replaced(replaced: Selection | None, sms: Sms | None, ctx: Context) -> list[DomainEvent]:
    """A correction undoes what the corrected selection caused and the new outcome does
    not ask for: its SMS, if not sent yet (a draft or pending), is cancelled. (The new
    outcome's own SMS, if any, is a new request.)"""
    if replaced is None or sms is None or sms.settled:
        return []
    contact_id = sms.request.contact_id
    return [make(SmsCancelled, sms.id, sms.version + 1, ctx, contact_id=contact_id, reason="outcome corrected")]


def approve_draft(sms: Sms, ctx: Context, body: str) -> list[DomainEvent]:
    """The agent sends a draft, completed and edited: only a draft, with no tag left."""
    if sms.status != "draft":
        raise SmsNotDraft(f"SMS {sms.id} is not a draft (it is {sms.status}); only drafts are sent by hand")
    if tag := MESSAGE_TAG.search(body):
        raise DraftIncomplete(f"the text still has the message tag {tag.group(0)!r}: complete it before sending")
    return [make(SmsDraftApproved, sms.id, sms.version + 1, ctx, contact_id=sms.request.contact_id, body=body)]


def refused_before_sending(sms: Sms, contact: Contact | None, ctx: Context, *, erased: bool) -> list[DomainEvent]:
    """Just before sending: the refusal, if the contact or its number was erased (docs/erasure.md)
    or the contact opted out since the request."""
    if erased:
        reason: Literal["erased", "opted_out"] = "erased"
    elif contact is not None and "sms" in contact.opted_out:
        reason = "opted_out"
    else:
        return []
    return [make(SmsSuppressed, sms.id, sms.version + 1, ctx, contact_id=sms.request.contact_id, reason=reason)]


def delivered(
    sms: Sms, ctx: Context, *, gateway: str, ok: bool, attempts: int, message_id: str | None, reason: str
) -> list[DomainEvent]:
    """The gateway's answer, as the SMS's last event."""
    contact_id = sms.request.contact_id
    if ok:
        return [
            make(
                SmsSent,
                sms.id,
                sms.version + 1,
                ctx,
                contact_id=contact_id,
                gateway=gateway,
                gateway_message_id=message_id,
                attempts=attempts,
            )
        ]
    fields = {"contact_id": contact_id, "gateway": gateway, "attempts": attempts}
    return [make(SmsFailed, sms.id, sms.version + 1, ctx, reason=reason, **fields)]
