"""The timer worker: claims due timers of its shard and fires them.

Safe to kill at any instant: a claimed timer not completed is due again after its lease,
and firing is idempotent (the timer's own idempotency key), so it takes effect once.
"""

from __future__ import annotations

import logging

from events.scheduler import Scheduler, Timer
from services.config import Settings
from services.errors import DomainError
from services.runtime import Runtime
from services.timers import fire

log = logging.getLogger("outcomes.timers")


class TimerRunner:
    def __init__(self, settings: Settings, lease_ms: int = 30_000) -> None:
        self.runtime = Runtime(settings)
        self.scheduler = Scheduler(self.runtime.client, self.runtime.shard_keys_for(settings.shard), lease_ms)

    def fire(self, timer: Timer) -> None:
        try:
            fire(self.runtime.ledger(timer.tenant_id), timer)
        except DomainError as error:  # nothing left to do (e.g. the call is gone): done
            log.warning("timer %s: %s", timer.key, error.message)
        self.scheduler.complete(timer)

    def run_once(self) -> int:
        """Fire every timer due now; returns how many."""
        timers = self.scheduler.claim()
        for timer in timers:
            self.fire(timer)
        return len(timers)

    def close(self) -> None:
        self.runtime.close()
