"""An SMS an outcome asked for: its state, folded from its events (PRODUCT.md §3)."""

from __future__ import annotations

from functools import singledispatch
from typing import Literal
from uuid import UUID

import msgspec

from events.codec import DomainEvent
from events.types import SmsCancelled, SmsDraftApproved, SmsFailed, SmsRequested, SmsSent, SmsSuppressed
from services.interactions import Projector, _projector

SmsStatus = Literal["draft", "pending", "sent", "failed", "suppressed", "cancelled"]


class Sms(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    tenant_id: str
    request: SmsRequested
    status: SmsStatus
    #: the text that goes: the rendered template, or the agent's completed draft
    body: str

    @property
    def settled(self) -> bool:
        """Sent, failed, suppressed or cancelled: nothing more will be done."""
        return self.status in ("sent", "failed", "suppressed", "cancelled")


@singledispatch
def _sms(event: DomainEvent, state: Sms | None) -> Sms:
    raise TypeError(f"an SMS does not apply {type(event).__name__}")


@_sms.register
def _(event: SmsRequested, state: Sms | None) -> Sms:
    status: SmsStatus = "draft" if event.draft else "pending"
    return Sms(
        id=event.originator_id, version=1, tenant_id=event.tenant_id, request=event, status=status, body=event.body
    )


@_sms.register
def _(event: SmsDraftApproved, state: Sms | None) -> Sms:
    assert state is not None
    return msgspec.structs.replace(state, status="pending", body=event.body)


@_sms.register
def _(event: SmsSent, state: Sms | None) -> Sms:
    assert state is not None
    return msgspec.structs.replace(state, status="sent")


@_sms.register
def _(event: SmsFailed, state: Sms | None) -> Sms:
    assert state is not None
    return msgspec.structs.replace(state, status="failed")


@_sms.register
def _(event: SmsSuppressed, state: Sms | None) -> Sms:
    assert state is not None
    return msgspec.structs.replace(state, status="suppressed")


@_sms.register
def _(event: SmsCancelled, state: Sms | None) -> Sms:
    assert state is not None
    return msgspec.structs.replace(state, status="cancelled")


project_sms: Projector[Sms] = _projector(_sms)
