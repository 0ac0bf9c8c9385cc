"""Contact-list effects (PRODUCT.md §3 "Contact lists"), as a follower of the shard log.

``ContactListPlanner`` reads the log after its own tracking position, like the SMS
followers (``workers.actions.LogFollower``):

- a selection or correction whose outcome has contact handling records its effects on the
  contact's dialing record (``services.rules.contact_lists.plan``);
- an outbound call to a known contact counts an attempt in its project and is linked to the
  open recall; a person answering a linked call records the recall called back.

Each decision is saved with the log position that caused it in one script, together with
the entries of the tenant's published stream of contact-list changes (docs/actions.md): a
worker killed at any instant resumes from the last position written, and a twin's write
fails whole, so every effect -- and every published change -- is recorded exactly once.
All effects go through one follower per shard, in log order, so they reach each contact in
the order their causes were recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

from events.codec import DomainEvent
from events.types import CallAnswered, CallStarted, OutcomeCorrected, OutcomeSelected
from workers.actions import LogFollower

#: its position in the shard's tracking hash
PLANNER = "actions.contact-lists"


class ContactListPlanner(LogFollower):
    name = PLANNER
    wanted = frozenset({b"OutcomeSelected", b"OutcomeCorrected", b"CallStarted", b"CallAnswered"})

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        if isinstance(event, CallStarted | CallAnswered):
            return event.tenant_id, self.ledger.call_attempts(event)
        assert isinstance(event, OutcomeSelected | OutcomeCorrected)
        return event.tenant_id, self.ledger.contact_list_effects(event)
