"""The stored event types: the contract with everything that reads the log.

Names and versions are stable (see ``events.codec``); a change of shape is a new
version with an upcaster, never an edit of a stored one.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar

import msgspec

from events.codec import DomainEvent, event_type


class OutcomeFlags(msgspec.Struct, frozen=True, kw_only=True):
    """What an outcome means for reporting (PRODUCT.md §1)."""

    contact: bool = False
    presentation: bool = False
    success: bool = False
    revenue: str = "none"  # none | optional | required
    polarity: str = "neutral"  # positive | neutral | negative
    first_call_resolution: bool = False


@event_type("TenantCreated", 1)
class TenantCreated(DomainEvent, frozen=True, kw_only=True):
    name: str
    time_zone: str


@event_type("OutcomeDefined", 1)
class OutcomeDefined(DomainEvent, frozen=True, kw_only=True):
    """A global outcome was added to the tenant's catalogue."""

    code: str
    name: str
    description: str = ""
    category: str = ""
    flags: OutcomeFlags = OutcomeFlags()
    selectable: bool = True
    applies_to: tuple[str, ...] = ("call", "conversation")


@event_type("ProjectCreated", 1)
class ProjectCreated(DomainEvent, frozen=True, kw_only=True):
    project_id: str
    name: str
    direction: str  # inbound | outbound | blended


@event_type("ProjectOutcomeSetChanged", 1)
class ProjectOutcomeSetChanged(DomainEvent, frozen=True, kw_only=True):
    """The project's active outcome set changed; its version is this event's version."""

    codes: tuple[str, ...]


@event_type("CallStarted", 1)
class CallStarted(DomainEvent, frozen=True, kw_only=True):
    call_id: str
    project_id: str
    direction: str  # inbound | outbound
    occurred_at: datetime
    agent_id: str | None = None
    contact_id: str | None = None
    #: the contact's number (E.164): personal data
    contact_number: str | None = None

    personal: ClassVar[tuple[str, ...]] = ("contact_number",)

    def data_subject(self) -> str | None:
        return f"contact:{self.contact_id}" if self.contact_id else f"call:{self.call_id}"


@event_type("CallEnded", 1)
class CallEnded(DomainEvent, frozen=True, kw_only=True):
    call_id: str
    occurred_at: datetime
    termination_reason: str = ""


@event_type("OutcomeSelected", 1)
class OutcomeSelected(DomainEvent, frozen=True, kw_only=True):
    call_id: str
    project_id: str
    outcome_code: str
    #: the project's outcome-set version the selection was checked against
    outcome_set_version: int
    #: the outcome's reporting flags in force when selected ("as defined then")
    flags: OutcomeFlags
    occurred_at: datetime
    revenue: Decimal | None = None
    agent_id: str | None = None
