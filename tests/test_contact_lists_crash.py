"""The worker killed (SIGKILL) while it records contact-list effects, and restarted
(issue "Follow-up action workers": internal effects exactly once, PRODUCT.md §3).

Selections arrive in rounds; in each round the worker is started, killed at a random
moment once it has recorded something of the round, and the next round comes in. At the
end every contact's dialing record holds each effect once, in version order, and the
published stream of contact-list changes holds each change once -- with no help from the
reader (no deduplication): the entries are written by the same script as the events.

Scaled down for CI (``LISTS_CRASH_SELECTIONS``, default 160).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import cast

from events.keys import ShardKeys
from events.store import StreamEntries
from events.types import (
    CallAttemptCounted,
    ContactHandling,
    DoNotCallSpec,
    OutcomeDefinition,
    ProjectSettings,
    RecallScheduled,
    RecallSpec,
)
from events.types import DoNotCallAdded as Dnc
from services.ledger import Ledger
from services.rules import Context
from services.rules.contact_lists import dialing_id
from services.runtime import Runtime
from tests.helpers import selected_for_contacts, wait_until
from tests.stack import Stack

SELECTIONS = int(os.environ.get("LISTS_CRASH_SELECTIONS", "160"))
KILLS = 5
TENANT = "lcrash"


def seed(stack: Stack) -> tuple[Runtime, Ledger]:
    runtime = stack.runtime()
    runtime.create_tenant(TENANT, "Lists crash")
    ledger = runtime.ledger(TENANT)
    admin = Context(TENANT, "admin:test", datetime.now(UTC))
    handling = ContactHandling(recall=RecallSpec(delay_seconds=3_600), do_not_call=DoNotCallSpec(scope="project"))
    ledger.define_outcome(admin, OutcomeDefinition(code="LATER", name="Later", contact_handling=handling))
    ledger.create_project(admin, "p", ProjectSettings(name="P", direction="outbound"))
    return runtime, ledger


def select(ledger: Ledger, numbers: range) -> None:
    selected_for_contacts(ledger, TENANT, "LATER", numbers)


def test_contact_list_effects_exactly_once_through_kills(stack: Stack) -> None:
    runtime, ledger = seed(stack)
    stream = ShardKeys(runtime.settings.shard, runtime.settings.key_prefix).published("contact-lists", TENANT)

    def published() -> int:
        return int(runtime.client.xlen(stream))

    rng = random.Random(11)
    chunk = SELECTIONS // KILLS
    mid_round = 0
    for round_ in range(KILLS):
        select(ledger, range(round_ * chunk, (round_ + 1) * chunk))
        seen = published()
        stack.start_worker()
        wait_until(lambda seen=seen: published() > seen, 60, "the worker to record")  # type: ignore[misc]
        time.sleep(rng.uniform(0, 0.03))
        assert stack.worker is not None
        stack.worker.send_signal(signal.SIGKILL)
        stack.worker.wait()
        mid_round += published() < 3 * (round_ + 1) * chunk  # killed before the round was done
    stack.start_worker()
    total = 3 * KILLS * chunk  # per selection: an attempt, a do-not-call, a recall
    wait_until(lambda: published() >= total, 120, "every effect to be recorded")
    time.sleep(0.3)  # anything extra would show up now

    for n in range(KILLS * chunk):
        events = list(ledger.events.get(dialing_id(TENANT, f"k{n}")))
        assert [type(e) for e in events] == [CallAttemptCounted, Dnc, RecallScheduled], n
    entries = cast(StreamEntries, runtime.client.xrange(stream))
    ids = Counter(fields[b"id"] for _, fields in entries)
    assert len(entries) == total and all(count == 1 for count in ids.values())
    print(f"\n{KILLS * chunk} selections, {KILLS} kills ({mid_round} mid-round), {total} changes, each once")
    assert mid_round >= 1  # at least one kill landed while the worker was recording
