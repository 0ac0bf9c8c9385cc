"""Follow-up actions (PRODUCT.md §3), as followers of the shard log with tracking positions.

Each follower reads the log after its own position in the shard's tracking hash and saves
what it decides together with the position of the entry that caused it, in one script
(``Ledger.save_tracked``). A worker killed at any instant resumes from the last position
written; a twin that gets there first makes the second write fail whole. So what is
recorded happens exactly once. What leaves the building cannot be taken back: an SMS
sent just before a kill is sent again on restart, carrying the same idempotency key (the
SMS id), so a gateway that deduplicates sees it once, and one that does not sees at most
one duplicate per kill (a follower sends one SMS at a time).

- ``SmsPlanner``: for each selection or correction whose outcome has an SMS template,
  records ``SmsRequested`` (and ``SmsSuppressed`` when the contact opted out or has no
  number).
- ``SmsSender``: for each ``SmsRequested`` not yet settled and not a draft, sends it
  through the gateway and records ``SmsSent`` or ``SmsFailed`` (``SmsSuppressed`` when the
  contact opted out in between).

One follower of each kind per shard does the work; more processes on a shard only race to
the same positions (safe, not faster).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import cast

import redis
from eventsourcing.persistence import IntegrityError, Tracking

from events.codec import DomainEvent, StructMapper, now
from events.keys import ShardKeys
from events.store import StreamEntries, xrange
from events.types import OutcomeCorrected, OutcomeSelected, SmsRequested
from services.config import Settings
from services.ledger import Ledger
from services.rules import Context
from services.rules import sms as sms_rules
from services.runtime import Runtime
from services.sms_gateway import Gateway

log = logging.getLogger("outcomes.actions")

#: their positions in the shard's tracking hash
PLANNER, SENDER = "actions.sms-planner", "actions.sms-sender"


class LogFollower:
    """Reads the shard log after its tracking position and decides, entry by entry."""

    name = ""
    #: the event types this follower acts on; the rest only move its position
    wanted: frozenset[bytes] = frozenset()

    def __init__(self, settings: Settings, batch_size: int = 100) -> None:
        self.runtime = Runtime(settings)
        self.keys = ShardKeys(settings.shard, settings.key_prefix)
        self.ledger: Ledger = self.runtime.ledger_for_shard(settings.shard)
        self.client: redis.Redis = self.runtime.client
        self.batch_size = batch_size

    @property
    def mapper(self) -> StructMapper:
        return cast(StructMapper, self.ledger.mapper)

    def position(self) -> int:
        value = self.client.hget(self.keys.tracking, self.name)
        return int(cast(bytes, value)) if value is not None else 0

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        """(tenant, events to record) for one wanted event."""
        raise NotImplementedError

    def run_once(self) -> int:
        """Handle the next batch of log entries; returns how many entries it covered."""
        position = self.position()
        entries: StreamEntries = xrange(self.client, self.keys.log, f"{position + 1}-0", "+", self.batch_size)
        if not entries:
            return 0
        recorded = position
        try:
            for entry_id, fields in entries:
                if fields[b"t"] not in self.wanted:
                    continue
                nid = int(entry_id.split(b"-")[0])
                tenant, events = self.decide(self.mapper.decode(fields[b"t"].decode(), fields[b"s"]))
                if events:
                    self.ledger.save_tracked(tenant, events, Tracking(self.name, nid))
                    recorded = nid
            last = int(entries[-1][0].split(b"-")[0])
            if last > recorded:  # nothing to record at the end of the batch: move the position alone
                self.ledger.save_tracked(None, [], Tracking(self.name, last))
        except IntegrityError:
            return 0  # a twin follower recorded this position first: read the position again
        return len(entries)


class SmsPlanner(LogFollower):
    name = PLANNER
    wanted = frozenset({b"OutcomeSelected", b"OutcomeCorrected"})

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        assert isinstance(event, OutcomeSelected | OutcomeCorrected)
        return event.tenant_id, self.ledger.sms_requests(event)


class SmsSender(LogFollower):
    name = SENDER
    wanted = frozenset({b"SmsRequested"})

    def __init__(self, settings: Settings, gateway: Gateway, batch_size: int = 100) -> None:
        super().__init__(settings, batch_size)
        self.gateway = gateway

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        assert isinstance(event, SmsRequested)
        tenant_id = event.tenant_id
        sms = self.ledger.sms(tenant_id, event.originator_id)
        if sms.settled or sms.status == "draft":
            return tenant_id, []
        ctx = Context(tenant_id, "system", now())
        contact = self.ledger.contact(tenant_id, event.contact_id) if event.contact_id else None
        refused = sms_rules.opted_out_since(sms, contact, ctx)
        if refused:
            return tenant_id, refused
        assert event.to_number is not None  # a request without a number is suppressed when made
        delivery = self.gateway.send(str(sms.id), event.to_number, event.body)
        if not delivery.ok:
            log.warning("SMS %s failed after %d attempts: %s", sms.id, delivery.attempts, delivery.reason)
        return tenant_id, sms_rules.delivered(
            sms,
            ctx,
            gateway=self.gateway.name,
            ok=delivery.ok,
            attempts=delivery.attempts,
            message_id=delivery.message_id,
            reason=delivery.reason,
        )


def followers(settings: Settings, gateway: Gateway) -> list[Callable[[], int]]:
    """The run-once functions of this shard's action followers, in the order to run them."""
    return [SmsPlanner(settings).run_once, SmsSender(settings, gateway).run_once]
