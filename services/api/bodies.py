"""Request bodies: msgspec Structs, validated on the way in (Litestar decodes with msgspec)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from events.types import OutcomeFlags
from services.permissions import Role

Code = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9_]{1,32}$", description="Outcome code, e.g. SALE")]
ExternalId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]{1,128}$", description="Platform-supplied id")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Moment = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with a time zone offset")]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164 number")]


class Flags(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    contact: bool = False
    presentation: bool = False
    success: bool = False
    revenue: Literal["none", "optional", "required"] = "none"
    polarity: Literal["positive", "neutral", "negative"] = "neutral"
    first_call_resolution: bool = False

    def to_event(self) -> OutcomeFlags:
        return OutcomeFlags(**msgspec.structs.asdict(self))


class DefineOutcome(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Name
    description: Text = ""
    category: Annotated[str, msgspec.Meta(max_length=100)] = ""
    flags: Flags = Flags()
    selectable: bool = True
    applies_to: tuple[Literal["call", "conversation"], ...] = ("call", "conversation")


class CreateProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ExternalId
    name: Name
    direction: Literal["inbound", "outbound", "blended"]


class StartCall(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    call_id: ExternalId
    project_id: ExternalId
    direction: Literal["inbound", "outbound"]
    occurred_at: Moment
    agent_id: ExternalId | None = None
    contact_id: ExternalId | None = None
    contact_number: Phone | None = None


class EndCall(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    occurred_at: Moment
    termination_reason: Annotated[str, msgspec.Meta(max_length=100)] = ""


class SelectOutcome(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    outcome_code: Code
    occurred_at: Moment
    revenue: Decimal | None = None
    agent_id: ExternalId | None = None


class IssueKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    role: Role


class IssuedKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    role: Role
    #: shown once; only its hash is stored
    secret: str


class OutcomeCounts(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    counts: dict[str, int]
    #: the log position the counts include (the view's tracking position)
    position: int
