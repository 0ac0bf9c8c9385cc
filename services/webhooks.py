"""Webhook deliveries (PRODUCT.md §3 "Webhooks"): which webhooks an outcome event goes to,
the JSON it goes as, and with which secrets it is signed. Pure; the worker that posts
is ``workers.webhooks``. docs/actions.md "Webhooks" documents the format for receivers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from events.types import OutcomeCorrected, OutcomeSelected
from services.catalogue import Webhook
from services.interactions import aggregate_id, source_of

OutcomeEvent = OutcomeSelected | OutcomeCorrected


def matches(hook: Webhook, event: OutcomeEvent) -> bool:
    """The event passes every non-empty filter, and was recorded after the webhook was registered."""
    return (
        event.recorded_at >= hook.registered_at
        and (not hook.project_ids or event.project_id in hook.project_ids)
        and (not hook.outcome_codes or event.outcome_code in hook.outcome_codes)
        and (not hook.event_types or event.type_name in hook.event_types)
    )


def delivery_id(tenant_id: str, event_id: str, webhook_id: str) -> UUID:
    """The delivery's aggregate: one per (outcome event, webhook), so it is recorded once."""
    return aggregate_id(tenant_id, "webhook-delivery", f"{event_id}:{webhook_id}")


def idempotency_key(event_id: str, webhook_id: str) -> str:
    return f"{event_id}:{webhook_id}"


def payload(event: OutcomeEvent, webhook_id: str) -> bytes:
    """The body a webhook receives: compact JSON, keys sorted (the bytes the signature covers)."""
    body: dict[str, Any] = {
        "type": event.type_name,
        "event_id": source_of(event),
        "webhook_id": webhook_id,
        "tenant": event.tenant_id,
        "interaction": event.interaction,
        "interaction_id": event.interaction_id,
        "project_id": event.project_id,
        "outcome_code": event.outcome_code,
        "outcome_name": event.definition.name,
        "revenue": str(event.revenue) if event.revenue is not None else None,
        **_specific(event),
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "actor": event.actor,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def _specific(event: OutcomeEvent) -> dict[str, Any]:
    """The fields one kind has and the other does not: every payload has every key."""
    if isinstance(event, OutcomeCorrected):
        return {"previous_code": event.previous_code, "reason": event.reason, "agent_id": None, "automatic": None}
    return {"previous_code": None, "reason": None, "agent_id": event.agent_id, "automatic": event.automatic}


def signing_secrets(hook: Webhook, at: datetime) -> list[str]:
    """The current secret, and the previous one while its grace period lasts."""
    previous = hook.previous_secret
    if previous is not None and hook.previous_valid_until is not None and at < hook.previous_valid_until:
        return [hook.secret, previous]
    return [hook.secret]
