"""The webhook dispatcher killed at random moments (SIGKILL) and restarted, against a real
local HTTP server that deduplicates on Idempotency-Key: every outcome event delivered and
recorded (``WebhookDelivered``) exactly once; on the wire, duplicates at most the deliveries
in flight per kill. The same mechanism as the SMS sender (tests/test_sms_crash.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from events.types import OutcomeDefinition, ProjectSettings, WebhookDelivered
from services.ledger import Ledger
from services.rules import Context
from services.rules import webhooks as webhook_rules
from services.webhooks import delivery_id
from tests.helpers import selected_call, wait_until
from tests.receiver import Receiver
from tests.stack import Stack
from tests.test_sms_crash import KILLS, run_with_kills
from workers.webhooks import WebhookDispatcher

TENANT = "hooks"
SELECTIONS = 150


def seed(stack: Stack, url: str) -> tuple[Ledger, list[str]]:
    runtime = stack.runtime()
    runtime.create_tenant(TENANT, "Hooks")
    ledger = runtime.ledger(TENANT)
    admin = Context(TENANT, "admin:test", datetime.now(UTC))
    ledger.define_outcome(admin, OutcomeDefinition(code="SALE", name="Sale"))
    ledger.create_project(admin, "p", ProjectSettings(name="P", direction="outbound"))
    filters = webhook_rules.Filters()
    ledger.configure(
        admin, "webhook", "crm", lambda c: webhook_rules.register_webhook(c, admin, "crm", url, filters, "s3cret")
    )
    event_ids = []
    for n in range(SELECTIONS):
        call_id = f"c{n}"
        selected_call(ledger, TENANT, call_id, "SALE", project_id="p")
        call = ledger.call(TENANT, call_id)
        event_ids.append(f"{call.id}/{call.version}")
    return ledger, event_ids


def test_webhook_dispatcher_killed_at_random_moments(stack: Stack) -> None:
    with Receiver(deduplicate=True) as consumer:
        ledger, event_ids = seed(stack, consumer.url)
        kills = run_with_kills(stack, consumer)

        def recorded(event_id: str) -> list[type]:
            return [type(e) for e in ledger.events.get(delivery_id(TENANT, event_id, "crm"))]

        wait_until(lambda: all(recorded(e) == [WebhookDelivered] for e in event_ids), 120, "every delivery recorded")
        assert len(consumer.accepted) == SELECTIONS  # each event accepted once
        deliveries = Counter(consumer.keys())
        assert set(deliveries) == {f"{e}:crm" for e in event_ids}
        duplicates = sum(n - 1 for n in deliveries.values())
        assert duplicates <= len(kills) * WebhookDispatcher.in_flight()
    print(f"\n{SELECTIONS} webhook deliveries, {KILLS} kills, {duplicates} sent again on the wire")
