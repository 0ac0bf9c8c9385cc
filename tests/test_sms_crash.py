"""The SMS worker killed at random moments (SIGKILL) and restarted, against a real local
HTTP server standing in for the gateway (issue: "Follow-up action workers", must show):

- against a receiver that deduplicates on Idempotency-Key: every SMS accepted exactly
  once, every SMS's history ending in ``SmsSent``;
- against one that does not: every delivery counted -- at least one per SMS, duplicates
  at most one per SMS in flight per kill (``SmsPlanner.in_flight``: the worker's planner
  sends auto-sent SMS itself, recording request and answer together), each duplicate's
  deliveries straddling a kill.

Scaled down for CI (``SMS_CRASH_SELECTIONS``, default 240; the issue's full run is 1,000).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from events.types import OutcomeDefinition, ProjectSettings, SmsRequested, SmsSent
from services.ledger import Ledger
from services.rules import Context
from services.rules import config as config_rules
from tests.helpers import selected_call, wait_until
from tests.receiver import Receiver
from tests.stack import Stack
from workers.actions import SmsPlanner

SELECTIONS = int(os.environ.get("SMS_CRASH_SELECTIONS", "240"))
KILLS = 6
TENANT = "crash"


def seed(stack: Stack) -> Ledger:
    runtime = stack.runtime()
    runtime.create_tenant(TENANT, "Crash")
    ledger = runtime.ledger(TENANT)
    admin = Context(TENANT, "admin:test", datetime.now(UTC))
    ledger.configure(admin, "sms-template", "t", lambda c: config_rules.save_template(c, admin, "t", "Thank you"))
    ledger.define_outcome(admin, OutcomeDefinition(code="THANKS", name="Thanks", sms_template="t", auto_send=True))
    ledger.create_project(admin, "p", ProjectSettings(name="P", direction="outbound"))
    one = timedelta(minutes=1)
    for n in range(SELECTIONS):
        selected_call(
            ledger, TENANT, f"c{n}", "THANKS", project_id="p", contact_number=f"+35840{n:07d}",
            ended_after=one, selected_after=one,
        )  # fmt: skip
    return ledger


def sms_histories(stack: Stack, ledger: Ledger) -> dict[str, list[type]]:
    """SMS id -> its event types, for every SmsRequested in the log."""
    found: dict[str, list[type]] = {}
    for notification in ledger.recorder.select_notifications(start=1, limit=1_000_000):
        if notification.topic == "SmsRequested":
            events = ledger.events.get(notification.originator_id)
            found[str(notification.originator_id)] = [type(e) for e in events]
    return found


def run_with_kills(stack: Stack, gateway: Receiver) -> list[float]:
    """Start the worker, SIGKILL it KILLS times while it sends, restart it each time; then
    let it finish. Returns when each kill happened."""
    rng = random.Random(7)
    kills: list[float] = []
    stack.start_worker()
    for _ in range(KILLS):
        seen = len(gateway.deliveries)
        wait_until(lambda seen=seen: len(gateway.deliveries) > seen, 60, "the worker to send")  # type: ignore[misc]
        time.sleep(rng.uniform(0, 0.05))
        assert stack.worker is not None
        stack.worker.send_signal(signal.SIGKILL)
        stack.worker.wait()
        # what the killed worker had sent may still be handled by the receiver's threads:
        # the kill counts from when that is done (else such a send, stamped just after the
        # kill, would look like one sent twice by the next worker)
        quiet(gateway)
        kills.append(time.monotonic())
        stack.start_worker()
    return kills


def quiet(gateway: Receiver, settle: float = 0.3) -> None:
    """Until no delivery has arrived for ``settle`` seconds (nothing sends meanwhile)."""
    while True:
        seen = len(gateway.deliveries)
        time.sleep(settle)
        if len(gateway.deliveries) == seen:
            return


@pytest.mark.parametrize("deduplicate", [True, False], ids=["deduplicating", "counting"])
def test_sms_worker_killed_at_random_moments(stack: Stack, deduplicate: bool) -> None:
    ledger = seed(stack)
    with Receiver(deduplicate=deduplicate) as gateway:
        stack.env["OUTCOMES_SMS_GATEWAY"] = gateway.url
        kills = run_with_kills(stack, gateway)

        def all_sent() -> bool:
            histories = sms_histories(stack, ledger)
            return len(histories) == SELECTIONS and all(h[-1] is SmsSent for h in histories.values())

        wait_until(all_sent, 120, "every SMS to be recorded sent")
        histories = sms_histories(stack, ledger)
        assert all(h == [SmsRequested, SmsSent] for h in histories.values())  # each recorded exactly once
        deliveries = Counter(gateway.keys())
        assert set(deliveries) == set(histories)  # every SMS reached the gateway, nothing else did
        duplicates = {key: n for key, n in deliveries.items() if n > 1}
        assert sum(deliveries.values()) - SELECTIONS == sum(n - 1 for n in duplicates.values())
        assert sum(n - 1 for n in duplicates.values()) <= KILLS * SmsPlanner.in_flight()  # unrecorded per kill
        for key in duplicates:  # each duplicate straddles a kill: sent, killed before recorded, sent again
            at = [t for k, t in zip(gateway.keys(), gateway.times, strict=True) if k == key]
            assert any(at[0] < kill < at[-1] for kill in kills), key
        if deduplicate:
            assert len(gateway.accepted) == SELECTIONS
        else:
            assert len(gateway.accepted) == sum(deliveries.values()) >= SELECTIONS
    receiver = "deduplicated" if deduplicate else "counted"
    print(f"\n{SELECTIONS} SMS, {KILLS} kills, {len(duplicates)} sent twice on the wire ({receiver})")
