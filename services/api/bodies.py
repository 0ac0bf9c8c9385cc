"""Request and response bodies: msgspec Structs, validated on the way in."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

import msgspec

from events.types import OutcomeDefinition, ProjectSettings, TelephonyStatus
from services.permissions import Role

Code = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9_]{1,32}$", description="Outcome code, e.g. SALE")]
ExternalId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]{1,128}$", description="Platform-supplied id")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Moment = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with a time zone offset")]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164 number")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class _Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


# -- configuration ---------------------------------------------------------------------------------


class OutcomeBody(OutcomeDefinition, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An outcome definition (PRODUCT.md §1); the code is fixed once created."""

    code: Code
    name: Name


class GlobalOutcomeBody(OutcomeBody, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: available in all projects (unless hidden), or only in the projects it is assigned to
    availability: Literal["all", "assigned"] = "all"


class ChangeGlobalOutcomeBody(OutcomeBody, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: all projects, or only those it is assigned to; omitted: unchanged
    availability: Literal["all", "assigned"] | None = None


V = TypeVar("V", bound=msgspec.Struct)


def narrow(body: msgspec.Struct, value_type: type[V]) -> V:
    """A body as the value type it extends, without the body's own extra fields."""
    fields = msgspec.structs.asdict(body)
    return msgspec.convert({k: fields[k] for k in value_type.__struct_fields__}, value_type)


class ProjectBody(ProjectSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ExternalId
    name: Name
    #: global outcomes hidden in the project from the start
    hidden_outcomes: tuple[Code, ...] = ()


class ProjectSettingsBody(ProjectSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name


class TemplateBody(_Body, frozen=True, kw_only=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=1600)]


class SendSmsDraftBody(_Body, frozen=True, kw_only=True):
    """The draft's text as the agent completed and edited it."""

    body: Annotated[str, msgspec.Meta(min_length=1, max_length=1600)]


class SmsView(msgspec.Struct, frozen=True, kw_only=True):
    """An SMS an outcome asked for, and where it stands."""

    sms_id: str
    status: str
    outcome_code: str
    template_id: str
    to_number: str | None
    body: str
    draft: bool


class CompleteFollowUpBody(_Body, frozen=True, kw_only=True):
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class RecordVerdictBody(_Body, frozen=True, kw_only=True):
    """A QA verdict on the outcome the interaction shows (PRODUCT.md §4)."""

    verdict: Literal["confirmed", "disputed"]
    #: the outcome it should have been: required when disputed, absent when confirmed
    should_have_been: Code | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class ReassignFollowUpBody(_Body, frozen=True, kw_only=True):
    """The new owner: a team, a role, or a named agent (at least one)."""

    owner_team: ExternalId | None = None
    owner_role: Role | None = None
    owner_agent: ExternalId | None = None


class FollowUpView(msgspec.Struct, frozen=True, kw_only=True):
    """A follow-up task an outcome opened, and where it stands."""

    follow_up_id: str
    status: str
    overdue: bool
    outcome_code: str
    interaction: str
    interaction_id: str
    owner_team: str | None
    owner_role: str | None
    owner_agent: str | None
    due_at: datetime
    completed_by: str | None
    completed_at: datetime | None


class AgentBody(_Body, frozen=True, kw_only=True):
    agent_id: ExternalId
    name: Name


class TeamBody(_Body, frozen=True, kw_only=True):
    team_id: ExternalId
    name: Name


class MembershipBody(_Body, frozen=True, kw_only=True):
    team_id: ExternalId | None


# -- webhooks --------------------------------------------------------------------------------------

Url = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2048, description="http(s) URL")]
WebhookEvent = Literal["OutcomeSelected", "OutcomeCorrected"]


class WebhookTargetBody(_Body, frozen=True, kw_only=True):
    """Where a webhook posts and what it receives; an empty filter matches everything."""

    url: Url
    project_ids: Annotated[tuple[ExternalId, ...], msgspec.Meta(max_length=100)] = ()
    outcome_codes: Annotated[tuple[Code, ...], msgspec.Meta(max_length=200)] = ()
    event_types: tuple[WebhookEvent, ...] = ()


class WebhookBody(WebhookTargetBody, frozen=True, kw_only=True):
    webhook_id: ExternalId


class RotateSecretBody(_Body, frozen=True, kw_only=True):
    #: how long deliveries are signed with the old secret as well (default a day, at most a week)
    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 86_400)] = 86_400


class WebhookSecretView(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a registration or a rotation: the secret is shown this once (a repeat
    of the request with the same Idempotency-Key answers ``secret: null``)."""

    webhook_id: str
    version: int
    secret: str | None


class WebhookView(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook as configured; never its secrets."""

    webhook_id: str
    url: str
    project_ids: tuple[str, ...]
    outcome_codes: tuple[str, ...]
    event_types: tuple[str, ...]
    registered_at: datetime
    #: during a rotation's grace period: until when the previous secret still signs
    previous_secret_valid_until: datetime | None


class IssueKey(_Body, frozen=True, kw_only=True):
    role: Role


class IssuedKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    role: Role
    #: shown once; only its hash is stored
    secret: str


# -- interaction facts -------------------------------------------------------------------------------


class StartCall(_Body, frozen=True, kw_only=True):
    call_id: ExternalId
    project_id: ExternalId
    direction: Literal["inbound", "outbound"]
    occurred_at: Moment
    conversation_id: ExternalId | None = None
    agent_id: ExternalId | None = None
    contact_id: ExternalId | None = None
    contact_number: Phone | None = None


class CallAnsweredBody(_Body, frozen=True, kw_only=True):
    occurred_at: Moment
    agent_id: ExternalId | None = None


class AgentConnectedBody(_Body, frozen=True, kw_only=True):
    occurred_at: Moment
    agent_id: ExternalId


class CallUnansweredBody(_Body, frozen=True, kw_only=True):
    occurred_at: Moment
    telephony_status: TelephonyStatus


class CallEndedBody(_Body, frozen=True, kw_only=True):
    occurred_at: Moment
    termination_reason: Annotated[str, msgspec.Meta(max_length=100)] = ""


class StartConversation(_Body, frozen=True, kw_only=True):
    conversation_id: ExternalId
    project_id: ExternalId
    channel: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,32}$")]
    occurred_at: Moment
    contact_id: ExternalId | None = None


class MessageBody(_Body, frozen=True, kw_only=True):
    direction: Literal["received", "sent"]
    channel: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,32}$")]
    occurred_at: Moment
    body: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None


class CloseBody(_Body, frozen=True, kw_only=True):
    occurred_at: Moment


class FlowReturnedBody(_Body, frozen=True, kw_only=True):
    #: the flow handing the conversation back (the one it was redirected to)
    flow: ExternalId
    occurred_at: Moment


class ReferenceBody(_Body, frozen=True, kw_only=True):
    kind: Literal["recording", "transcript"]
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    occurred_at: Moment


class ContactBody(_Body, frozen=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    numbers: Annotated[tuple[Phone, ...], msgspec.Meta(max_length=20)] = ()
    time_zone: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"
    company_id: ExternalId | None = None
    contact_list: ExternalId | None = None


class OptOutBody(_Body, frozen=True, kw_only=True):
    channel: Literal["sms", "voice", "email", "all"] = "sms"
    occurred_at: Moment


def _finite_revenue(revenue: Decimal | None) -> None:
    # msgspec decodes "NaN", "sNaN" and "Infinity" into Decimals; no amount of money is one
    if revenue is not None and not revenue.is_finite():
        raise ValueError("revenue must be a finite decimal number")


class SelectOutcome(_Body, frozen=True, kw_only=True):
    outcome_code: Code
    occurred_at: Moment
    revenue: Decimal | None = None
    agent_id: ExternalId | None = None

    def __post_init__(self) -> None:
        _finite_revenue(self.revenue)


class CorrectOutcome(_Body, frozen=True, kw_only=True):
    outcome_code: Code
    occurred_at: Moment
    reason: Reason
    revenue: Decimal | None = None
    #: lift the do-not-call / final the corrected selection created
    lift_suppressions: bool = False

    def __post_init__(self) -> None:
        _finite_revenue(self.revenue)


class OutcomeCounts(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    counts: dict[str, int]
    #: the log position the counts include (the view's tracking position)
    position: int
