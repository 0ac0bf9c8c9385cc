"""Flow redirects (PRODUCT.md §3): a conversation handed to a flow (a bot, a survey) is
published on the flow's stream, then the customer's messages, until the flow hands it back
(``POST /v1/conversations/{id}/flow-returned``); docs/actions.md gives the entry format.

The publisher follows the shard log like the other action workers; each entry is added to
the flow's stream in the same script that moves the publisher's position
(lua/publish.lua), so a flow sees each hand-over and message exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import IntegrityError

from events.codec import DomainEvent
from events.store import register_lua
from events.types import FlowRedirected, FlowReturned, MessageRecorded
from services.config import Settings
from services.interactions import Conversation, project_conversation, source_of
from workers.actions import LogFollower

PUBLISHER = "actions.flow-publisher"


def flow_entry(
    event: FlowRedirected | MessageRecorded | FlowReturned, flow: str, conversation: Conversation
) -> dict[str, str]:
    """The stream entry for a hand-over, a message the flow takes over, or a hand-back."""
    kind = {FlowRedirected: "redirected", MessageRecorded: "message", FlowReturned: "returned"}[type(event)]
    entry = {
        "type": kind,
        "event_id": source_of(event),
        "tenant": event.tenant_id,
        "flow": flow,
        "conversation_id": conversation.conversation_id,
        "project_id": conversation.project_id,
        "channel": conversation.channel,
        "contact_id": conversation.contact_id or "",
        "occurred_at": event.occurred_at.isoformat(),
    }
    if isinstance(event, MessageRecorded):
        entry["body"] = event.body or ""
    return entry


class FlowPublisher(LogFollower):
    name = PUBLISHER
    wanted = frozenset({b"FlowRedirected", b"MessageRecorded", b"FlowReturned"})

    def __init__(self, settings: Settings, **options: int) -> None:
        super().__init__(settings, **options)
        self._publish = register_lua(self.client, "workers", "publish.lua")

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        return event.tenant_id, []  # publishes instead (act); records no events

    def act(self, fields: dict[bytes, bytes], nid: int) -> bool:
        event = self.decode(fields)
        # the conversation as the event found it: whose messages they are is decided by then
        before: Conversation = self.ledger.repository.get(
            event.originator_id, version=event.originator_version - 1, projector_func=project_conversation
        )
        if isinstance(event, FlowRedirected | FlowReturned):
            flow: str | None = event.flow
        elif isinstance(event, MessageRecorded) and event.direction == "received":
            flow = before.flow
        else:
            flow = None
        if flow is None:
            return False
        assert isinstance(event, FlowRedirected | MessageRecorded | FlowReturned)
        entry = flow_entry(event, flow, before)
        flat = [item for pair in entry.items() for item in pair]
        stream = self.keys.flow(event.tenant_id, flow)
        if not self._publish(keys=[self.keys.tracking, stream], args=[self.name, nid, *flat]):
            raise IntegrityError(f"{self.name}: position {nid} already published")  # a twin was first
        return True
