"""Webhooks (PRODUCT.md §3): each outcome event (a selection or a correction) POSTed to
every webhook of its tenant whose filters it matches, signed (services/webhook_signing.py),
with the event id and webhook id as its idempotency key; docs/actions.md "Webhooks".

``WebhookDispatcher`` follows the shard log like the other action workers: for one log
entry it delivers to every matching webhook (retrying with backoff on timeouts, connection
errors, 408, 429 and 5xx), then records one ``WebhookDelivered`` or ``WebhookFailed`` per
webhook -- each on its own delivery aggregate, named after the event and the webhook, at
version 1 -- together with its position, in one write. So each delivery is recorded once
(a twin's write fails whole), and is at-least-once on the wire: a dispatcher killed after
posting and before recording posts again on restart, with the same idempotency key.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import httpx

from events.codec import DomainEvent, now
from events.store import StreamEntries
from events.types import OutcomeCorrected, OutcomeSelected, WebhookDelivered, WebhookFailed
from services.catalogue import Catalogue, Webhook
from services.config import Settings
from services.errors import NotFound
from services.interactions import source_of
from services.rules import Context, make
from services.sms_gateway import Delivery, httpx_post, post_with_retries
from services.webhook_signing import signature_header
from services.webhooks import OutcomeEvent, delivery_id, idempotency_key, matches, payload, signing_secrets
from workers.actions import LogFollower

log = logging.getLogger("outcomes.webhooks")

DISPATCHER = "actions.webhook-dispatcher"


class WebhookSender:
    """POSTs a signed body to one webhook, retrying with exponential backoff."""

    def __init__(self, *, timeout: float = 5.0, retries: int = 3, backoff: float = 0.5) -> None:
        self.retries = retries
        self.backoff = backoff
        self.client = httpx.Client(timeout=timeout)

    @classmethod
    def from_env(cls) -> WebhookSender:
        return cls(
            timeout=float(os.environ.get("OUTCOMES_WEBHOOK_TIMEOUT", "5")),
            retries=int(os.environ.get("OUTCOMES_WEBHOOK_RETRIES", "3")),
            backoff=float(os.environ.get("OUTCOMES_WEBHOOK_BACKOFF", "0.5")),
        )

    def send(self, hook: Webhook, key: str, body: bytes) -> Delivery:
        def headers() -> dict[str, str]:
            # signed afresh for every attempt: a retry after a long backoff is not a "replay"
            stamp = int(time.time())
            return {
                "Content-Type": "application/json",
                "Idempotency-Key": key,
                "X-Outcomes-Timestamp": str(stamp),
                "X-Outcomes-Signature": signature_header(signing_secrets(hook, now()), stamp, body),
            }

        delivery, _ = post_with_retries(
            lambda: httpx_post(self.client, hook.url, body, headers()), retries=self.retries, backoff=self.backoff
        )
        return delivery


def delivery_event(
    event: OutcomeEvent, hook: Webhook, delivery: Delivery, ctx: Context
) -> WebhookDelivered | WebhookFailed:
    """What became of one delivery, as its aggregate's one event."""
    fields = {
        "source": source_of(event),
        "webhook_id": hook.webhook_id,
        "event_type": event.type_name,
        "url": hook.url,
        "attempts": delivery.attempts,
    }
    aggregate = delivery_id(event.tenant_id, source_of(event), hook.webhook_id)
    if delivery.ok:
        return make(WebhookDelivered, aggregate, 1, ctx, status=delivery.status or 200, **fields)
    return make(WebhookFailed, aggregate, 1, ctx, reason=delivery.reason, **fields)


class WebhookDispatcher(LogFollower):
    name = DISPATCHER
    wanted = frozenset({b"OutcomeSelected", b"OutcomeCorrected"})
    #: by interaction: its deliveries depend on its own event and the catalogue only
    partitioned = True

    def __init__(self, settings: Settings, sender: WebhookSender | None = None, **options: int) -> None:
        super().__init__(settings, **options)
        self.sender = sender or WebhookSender.from_env()
        #: the tenants' catalogues as read for this batch (once each, not once per entry)
        self._catalogues: dict[str, Catalogue] = {}

    def run_once(self, *, lazy: bool = False) -> int:
        self._catalogues.clear()  # a webhook registered meanwhile counts from the next batch on
        return super().run_once(lazy=lazy)

    def _catalogue(self, tenant_id: str) -> Catalogue:
        if (catalogue := self._catalogues.get(tenant_id)) is None:
            catalogue = self._catalogues[tenant_id] = self.ledger.catalogue(tenant_id)
        return catalogue

    def select(self, entries: StreamEntries) -> list[tuple[int, dict[bytes, bytes]]]:
        # a tenant without webhooks: its selections are passed over undecoded
        return [(nid, f) for nid, f in super().select(entries) if b"n" not in f or self._hooked(f[b"n"].decode())]

    def _hooked(self, tenant_id: str) -> bool:
        try:
            return bool(self._catalogue(tenant_id).webhooks)
        except NotFound:  # no such tenant (any more): decided, and dead-lettered, as before
            return True

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        assert isinstance(event, OutcomeSelected | OutcomeCorrected)
        tenant_id = event.tenant_id
        hooks = [h for h in self._catalogue(tenant_id).webhooks.values() if matches(h, event)]
        recorded: list[DomainEvent] = []
        for hook in sorted(hooks, key=lambda h: h.webhook_id):
            if self._recorded(event, hook):
                continue  # a twin (or a requeue) delivered it already: do not post again
            body = payload(event, hook.webhook_id)
            delivery = self.sender.send(hook, idempotency_key(source_of(event), hook.webhook_id), body)
            if not delivery.ok:
                log.warning("webhook %s: %s failed after %d attempts: %s", hook.webhook_id, source_of(event),
                            delivery.attempts, delivery.reason)  # fmt: skip
            recorded.append(delivery_event(event, hook, delivery, Context(tenant_id, "system", now())))
        return tenant_id, recorded

    def _recorded(self, event: OutcomeEvent, hook: Webhook) -> bool:
        found = self.ledger.events.get(delivery_id(event.tenant_id, source_of(event), hook.webhook_id), limit=1)
        return bool(list(found))
