"""Which events set which timers, and what a timer does when it fires. One place for both.

Kinds: ``wrap_up`` (mandatory wrap-up with timeout), ``follow_up_due`` (a follow-up task
still open at its due time is overdue). Recall hand-over and waiting-period end join here
as their features arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from events.codec import DomainEvent, now
from events.scheduler import Timer
from events.types import FollowUpOpened, WrapUpTimerSet
from services.idempotency import Idempotency, Receipt
from services.rules import Context
from services.rules import interactions as rules

if TYPE_CHECKING:
    from services.ledger import Ledger


def timers_for(events: Iterable[DomainEvent]) -> list[Timer]:
    timers = []
    for e in events:
        if isinstance(e, WrapUpTimerSet):
            timers.append(Timer.at("wrap_up", e.tenant_id, e.call_id, e.due_at, e.outcome_code))
        elif isinstance(e, FollowUpOpened):
            timers.append(Timer.at("follow_up_due", e.tenant_id, str(e.originator_id), e.due_at))
    return timers


def fire(ledger: Ledger, timer: Timer) -> Receipt:
    """Run the timer's command as ``system``, under the timer's own idempotency key:
    firing twice (a worker died after the command, before completing) does it once."""
    ctx = Context(timer.tenant_id, "system", now())
    key = Idempotency(timer.key, timer.member())
    if timer.kind == "wrap_up":
        due = datetime.fromtimestamp(timer.due_ms / 1000, UTC)
        return ledger.call_fact(
            ctx,
            timer.target,
            lambda cat, call, conv: rules.wrap_up_timed_out(
                cat, call, ctx, due_at=due, outcome_code=timer.detail, conversation=conv
            ),
            key,
        )
    if timer.kind == "follow_up_due":
        return ledger.follow_up_due(ctx, UUID(timer.target), key)
    raise ValueError(f"unknown timer kind {timer.kind!r}")
