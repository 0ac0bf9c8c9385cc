"""Which events set which timers, and what a timer does when it fires. One place for both.

Kinds: ``wrap_up`` (mandatory wrap-up with timeout), ``follow_up_due`` (a follow-up task
still open at its due time is overdue), ``recall_handover`` (an agent's recall not called
back by its hand-over time is anyone's: ``RecallHandedOver``). Waiting-period end joins here
as its feature arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from events.codec import DomainEvent, now
from events.scheduler import Timer
from events.types import FollowUpOpened, RecallScheduled, WrapUpTimerSet
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
        elif isinstance(e, RecallScheduled) and e.owner_agent is not None and e.handover_at is not None:
            # the target is the recall's source (unique per selection), so two recalls of one
            # contact handed over at the same instant are two timers, each fired once
            timers.append(Timer.at("recall_handover", e.tenant_id, e.source, e.handover_at, e.contact_id))
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
    if timer.kind == "recall_handover":
        return ledger.recall_handover(ctx, timer.detail, timer.target, key)
    raise ValueError(f"unknown timer kind {timer.kind!r}")
