"""The outcome rules: pure functions, state in, events out, a named error when broken."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from events.codec import DomainEvent

Ev = TypeVar("Ev", bound=DomainEvent)


@dataclass(frozen=True)
class Context:
    """Who acts, for which tenant, and when we record it."""

    tenant_id: str
    actor: str
    recorded_at: datetime
    #: the API key the request came with (recorded on every event with the actor)
    key_id: str | None = None

    @property
    def is_agent(self) -> bool:
        return self.actor.startswith("agent:")

    @property
    def is_supervisor(self) -> bool:
        return self.actor.startswith("supervisor:")

    @property
    def is_system(self) -> bool:
        return self.actor == "system"


def make(cls: type[Ev], originator_id: UUID, version: int, ctx: Context, **fields: Any) -> Ev:
    """An event with the common fields stamped from the context."""
    return cls(
        originator_id=originator_id,
        originator_version=version,
        recorded_at=ctx.recorded_at,
        tenant_id=ctx.tenant_id,
        actor=ctx.actor,
        key_id=ctx.key_id,
        **fields,
    )
