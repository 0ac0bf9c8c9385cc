"""The stored event types: the contract with everything that reads the log.

Names and versions are stable (see ``events.codec``); a change of shape is a new
version with an upcaster, never an edit of a stored one. The value types below
(``OutcomeDefinition`` and its parts) are embedded in events and versioned with them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

import msgspec

from events.codec import DomainEvent, event_type

# -- value types ----------------------------------------------------------------------------

Seconds = Annotated[int, msgspec.Meta(ge=0, le=10 * 365 * 86_400)]
PositiveSeconds = Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 86_400)]
Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM")]
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6, description="0 = Monday")]
Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Revenue = Literal["none", "optional", "required"]
Polarity = Literal["positive", "neutral", "negative"]
Interaction = Literal["call", "conversation"]
TelephonyStatus = Literal[
    "person", "no_answer", "busy", "answering_machine", "fax_modem", "drop_hang_up", "operator_intercept"
]


class OutcomeFlags(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an outcome means for reporting (PRODUCT.md §1): independent flags, so rates
    stay right whatever the outcome is called."""

    contact: bool = False
    presentation: bool = False
    success: bool = False
    revenue: Revenue = "none"
    polarity: Polarity = "neutral"
    first_call_resolution: bool = False


class FinalSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Not called again until the list is reloaded (project) or by any project (all)."""

    scope: Literal["project", "all"] = "project"
    #: for a business contact: the whole company
    whole_company: bool = False


class DoNotCallSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    numbers: Literal["this", "all"] = "this"
    scope: Literal["project", "tenant"] = "project"


class RecallSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    delay_seconds: Seconds
    max_attempts: Count = 3
    agent_may_change_time: bool = False
    owner: Literal["agent", "anyone"] = "anyone"
    #: an agent-owned recall is handed to anyone after this long without a call-back
    handover_after_seconds: PositiveSeconds | None = None


class WaitingPeriodSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """No automatic calls for a while; longer when the same outcome repeats."""

    seconds: PositiveSeconds
    repeat_seconds: PositiveSeconds | None = None


class FollowUpSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    owner_team: str | None = None
    owner_role: str | None = None
    due_within_seconds: PositiveSeconds = 86_400


class ContactHandling(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    final: FinalSpec | None = None
    list_reload: bool = False
    remove_from_list: bool = False
    move_to_list: str | None = None
    do_not_call: DoNotCallSpec | None = None
    recall: RecallSpec | None = None
    roll_to_project: str | None = None
    waiting_period: WaitingPeriodSpec | None = None
    reset_attempts: bool = False


class OutcomeDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything an outcome is (PRODUCT.md §1, "Outcome definition")."""

    code: str
    name: str
    description: str = ""
    enabled: bool = True
    category: str = ""
    parent: str | None = None
    flags: OutcomeFlags = OutcomeFlags()
    #: by agents; otherwise system-only
    selectable: bool = True
    applies_to: tuple[Interaction, ...] = ("call", "conversation")
    selectable_after_interaction: bool = False
    min_call_seconds: Seconds | None = None
    max_call_seconds: Seconds | None = None
    shortcut_key: str | None = None
    #: telephony status implied for a call whose platform reported none
    telephony_status: TelephonyStatus | None = None
    #: one of the built-in unanswered-call outcomes (never counts toward auto-close)
    unanswered: bool = False
    contact_handling: ContactHandling = ContactHandling()
    sms_template: str | None = None
    auto_send: bool = False
    keeps_conversation_active: bool = False
    close_conversation_with_call: bool = False
    #: project-specific, conversations only; keeps the conversation active
    redirect_to_flow: str | None = None
    follow_up: FollowUpSpec | None = None

    @property
    def length_gated(self) -> bool:
        return self.min_call_seconds is not None or self.max_call_seconds is not None


class WrapUp(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: by default agents must record an outcome (seeds 000, 001)
    mode: Literal["optional", "mandatory", "mandatory_with_timeout"] = "mandatory"
    timeout_seconds: PositiveSeconds | None = None
    timeout_outcome: str | None = None


class CallingHours(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Local time of the contact; weekdays 0 = Monday."""

    start: ClockTime = "08:00"
    end: ClockTime = "20:00"
    weekdays: tuple[Weekday, ...] = (0, 1, 2, 3, 4)


class TargetMix(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    shares: dict[str, Share]  # outcome code -> expected share
    tolerance: Share = 0.05


class ProjectSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    direction: Literal["inbound", "outbound", "blended"]
    contact_list: str | None = None
    hide_busy: bool = False
    auto_close_without_outcome: bool = False
    keep_conversation_active_when_outbound_unanswered: bool = False
    wrap_up: WrapUp = WrapUp()
    quotas: dict[str, Count] = {}
    calling_hours: CallingHours | None = None
    target_mix: TargetMix | None = None


# -- tenant and configuration (the tenant's Catalogue aggregate) ------------------------------


@event_type("TenantCreated", 1)
class TenantCreated(DomainEvent, frozen=True, kw_only=True):
    name: str
    time_zone: str


class _CatalogueChange(DomainEvent, frozen=True, kw_only=True):
    """A configuration change; ``affected_projects`` get a new outcome-set version."""

    affected_projects: tuple[str, ...] = ()


@event_type("OutcomeDefined", 1)
class OutcomeDefined(_CatalogueChange, frozen=True, kw_only=True):
    """A global outcome (``project_id`` None) or a project-specific one was created."""

    definition: OutcomeDefinition
    project_id: str | None = None
    #: global outcomes: available in all projects, or only in those it is assigned to
    availability: Literal["all", "assigned"] = "all"
    #: projects in auto-close mode where the new outcome starts hidden (PRODUCT.md §1)
    hidden_in: tuple[str, ...] = ()


@event_type("OutcomeChanged", 1)
class OutcomeChanged(_CatalogueChange, frozen=True, kw_only=True):
    """The definition was replaced (rename, flags, handling, …); history keeps the old."""

    definition: OutcomeDefinition
    project_id: str | None = None
    hidden_in: tuple[str, ...] = ()
    #: a global outcome's availability, when the change sets it
    availability: Literal["all", "assigned"] | None = None


@event_type("OutcomeRetired", 1)
class OutcomeRetired(_CatalogueChange, frozen=True, kw_only=True):
    """Outcomes are retired, never deleted."""

    code: str
    project_id: str | None = None


@event_type("OutcomeAssigned", 1)
class OutcomeAssigned(_CatalogueChange, frozen=True, kw_only=True):
    code: str
    project_id: str
    assigned: bool = True


@event_type("OutcomeHidden", 1)
class OutcomeHidden(_CatalogueChange, frozen=True, kw_only=True):
    """A global outcome hidden (or unhidden) in one project."""

    code: str
    project_id: str
    hidden: bool = True


@event_type("ProjectCreated", 1)
class ProjectCreated(_CatalogueChange, frozen=True, kw_only=True):
    project_id: str
    settings: ProjectSettings
    #: global outcomes hidden from the start (auto-close projects)
    hidden: tuple[str, ...] = ()


@event_type("ProjectChanged", 1)
class ProjectChanged(_CatalogueChange, frozen=True, kw_only=True):
    project_id: str
    settings: ProjectSettings


@event_type("SmsTemplateSaved", 1)
class SmsTemplateSaved(_CatalogueChange, frozen=True, kw_only=True):
    template_id: str
    body: str


@event_type("AgentRegistered", 1)
class AgentRegistered(_CatalogueChange, frozen=True, kw_only=True):
    agent_id: str
    name: str

    personal: ClassVar[tuple[str, ...]] = ("name",)

    def data_subject(self) -> str | None:
        return f"agent:{self.agent_id}"


@event_type("TeamCreated", 1)
class TeamCreated(_CatalogueChange, frozen=True, kw_only=True):
    team_id: str
    name: str


@event_type("AgentTeamChanged", 1)
class AgentTeamChanged(_CatalogueChange, frozen=True, kw_only=True):
    """Membership is an event: reports attribute each selection to the team of the time."""

    agent_id: str
    team_id: str | None


# -- webhooks (PRODUCT.md §3): configured in the catalogue, delivered by workers/webhooks.py ----------

WebhookEventType = Literal["OutcomeSelected", "OutcomeCorrected"]


class _WebhookChange(_CatalogueChange, frozen=True, kw_only=True):
    webhook_id: str

    def data_subject(self) -> str | None:
        # the signing secret is sealed with this webhook's own key, kept outside the log
        return f"webhook:{self.webhook_id}"


@event_type("WebhookRegistered", 1)
class WebhookRegistered(_WebhookChange, frozen=True, kw_only=True):
    """A URL receives the tenant's outcome events; empty filters match everything."""

    url: str
    project_ids: tuple[str, ...] = ()
    outcome_codes: tuple[str, ...] = ()
    event_types: tuple[WebhookEventType, ...] = ()
    #: the signing secret: sealed in the log (``personal``), shown to the admin once
    secret: str

    personal: ClassVar[tuple[str, ...]] = ("secret",)


@event_type("WebhookChanged", 1)
class WebhookChanged(_WebhookChange, frozen=True, kw_only=True):
    """A new URL or new filters; the secret stays."""

    url: str
    project_ids: tuple[str, ...] = ()
    outcome_codes: tuple[str, ...] = ()
    event_types: tuple[WebhookEventType, ...] = ()


@event_type("WebhookSecretRotated", 1)
class WebhookSecretRotated(_WebhookChange, frozen=True, kw_only=True):
    """A new signing secret; deliveries are signed with the previous one too until
    ``previous_valid_until``, so receivers can switch without losing any."""

    secret: str
    previous_valid_until: datetime

    personal: ClassVar[tuple[str, ...]] = ("secret",)


@event_type("WebhookDeleted", 1)
class WebhookDeleted(_WebhookChange, frozen=True, kw_only=True):
    pass


# -- interactions ------------------------------------------------------------------------------


class _Fact(DomainEvent, frozen=True, kw_only=True):
    #: when the platform says it happened; reports use this, not recorded_at
    occurred_at: datetime


@event_type("CallStarted", 1)
class CallStarted(_Fact, frozen=True, kw_only=True):
    call_id: str
    project_id: str
    direction: Literal["inbound", "outbound"]
    conversation_id: str | None = None
    agent_id: str | None = None
    contact_id: str | None = None
    #: the contact's number (E.164): personal data
    contact_number: str | None = None
    channel: str = "voice"

    personal: ClassVar[tuple[str, ...]] = ("contact_number",)

    def data_subject(self) -> str | None:
        return f"contact:{self.contact_id}" if self.contact_id else f"call:{self.call_id}"


@event_type("CallAnswered", 1)
class CallAnswered(_Fact, frozen=True, kw_only=True):
    """A person answered (telephony status ``person``); an agent may be connected later."""

    call_id: str
    agent_id: str | None = None


@event_type("AgentConnected", 1)
class AgentConnected(_Fact, frozen=True, kw_only=True):
    call_id: str
    agent_id: str


@event_type("CallUnanswered", 1)
class CallUnanswered(_Fact, frozen=True, kw_only=True):
    call_id: str
    telephony_status: TelephonyStatus


@event_type("CallEnded", 1)
class CallEnded(_Fact, frozen=True, kw_only=True):
    call_id: str
    termination_reason: str = ""


@event_type("RecordingAttached", 1)
class RecordingAttached(_Fact, frozen=True, kw_only=True):
    """A recording or transcript reference; may arrive long after the call."""

    interaction_id: str
    kind: Literal["recording", "transcript"]
    reference: str


@event_type("ConversationStarted", 1)
class ConversationStarted(_Fact, frozen=True, kw_only=True):
    conversation_id: str
    project_id: str
    channel: str
    contact_id: str | None = None


@event_type("MessageRecorded", 1)
class MessageRecorded(_Fact, frozen=True, kw_only=True):
    conversation_id: str
    direction: Literal["received", "sent"]
    channel: str
    body: str | None = None
    contact_id: str | None = None

    personal: ClassVar[tuple[str, ...]] = ("body",)

    def data_subject(self) -> str | None:
        return f"contact:{self.contact_id}" if self.contact_id else f"conversation:{self.conversation_id}"


@event_type("ContactSaved", 1)
class ContactSaved(DomainEvent, frozen=True, kw_only=True):
    """A contact as the rules need it: numbers, time zone, company, list."""

    contact_id: str
    name: str | None = None
    #: E.164 numbers: personal data
    numbers: tuple[str, ...] = ()
    time_zone: str = "UTC"
    company_id: str | None = None
    contact_list: str | None = None

    personal: ClassVar[tuple[str, ...]] = ("name", "numbers")

    def data_subject(self) -> str | None:
        return f"contact:{self.contact_id}"


@event_type("ContactErased", 1)
class ContactErased(DomainEvent, frozen=True, kw_only=True):
    """The contact's personal data was erased (docs/erasure.md): its subject key destroyed, so
    every sealed field of its events reads back as ``[erased]``, and what sat outside the log
    purged. Its numbers stay suppressed as keyed hashes, never in clear."""

    contact_id: str
    #: HMAC-SHA256 (hex, the tenant's suppression secret) of each number now never called or texted
    suppressed: tuple[str, ...] = ()


@event_type("ContactOptedOut", 1)
class ContactOptedOut(_Fact, frozen=True, kw_only=True):
    contact_id: str
    channel: str = "sms"


@event_type("OutcomeSelected", 1)
class OutcomeSelected(_Fact, frozen=True, kw_only=True):
    """An outcome for a call or a conversation, as an agent, a supervisor or the system."""

    interaction: Interaction
    interaction_id: str
    project_id: str
    outcome_code: str
    #: the project's outcome-set version the selection was checked against
    outcome_set_version: int
    #: the definition in force when selected: reports "as defined then"
    definition: OutcomeDefinition
    revenue: Decimal | None = None
    agent_id: str | None = None
    #: why the system selected it: "wrap_up_timeout", "auto_close", "close_with_call", "unanswered"
    automatic: str | None = None
    #: a business result attributed after the interaction closed
    late: bool = False


@event_type("OutcomeCorrected", 1)
class OutcomeCorrected(_Fact, frozen=True, kw_only=True):
    """A supervisor's correction; keeps the previous value."""

    interaction: Interaction
    interaction_id: str
    project_id: str
    previous_code: str | None
    outcome_code: str
    outcome_set_version: int
    definition: OutcomeDefinition
    reason: str
    #: lift the do-not-call / final the corrected selection created
    lift_suppressions: bool = False
    revenue: Decimal | None = None


@event_type("QaVerdictRecorded", 1)
class QaVerdictRecorded(DomainEvent, frozen=True, kw_only=True):
    """A QA reviewer's verdict on the outcome an interaction shows (PRODUCT.md §4); the
    reviewer is the actor. Recorded on the interaction's own aggregate; a later verdict by
    the same reviewer replaces theirs in reports (one verdict per reviewer per interaction)."""

    interaction: Interaction
    interaction_id: str
    project_id: str
    #: the outcome reviewed: the one that stood when the verdict was given
    outcome_code: str
    verdict: Literal["confirmed", "disputed"]
    #: the outcome it should have been (disputed only)
    should_have_been: str | None = None
    note: str = ""


@event_type("ConversationClosed", 1)
class ConversationClosed(_Fact, frozen=True, kw_only=True):
    conversation_id: str
    #: "agent" (the Close button), "outcome", "call", "unanswered", "auto_close"
    cause: str
    outcome_code: str | None = None


@event_type("FlowRedirected", 1)
class FlowRedirected(_Fact, frozen=True, kw_only=True):
    conversation_id: str
    flow: str


@event_type("FlowReturned", 1)
class FlowReturned(_Fact, frozen=True, kw_only=True):
    """The flow (bot, survey) handed the conversation back: its messages are the agents' again."""

    conversation_id: str
    flow: str


@event_type("WrapUpTimerSet", 1)
class WrapUpTimerSet(_Fact, frozen=True, kw_only=True):
    """The wrap-up clock started; the system selects ``outcome_code`` at ``due_at``."""

    call_id: str
    due_at: datetime
    outcome_code: str


@event_type("QuotaReached", 1)
class QuotaReached(_Fact, frozen=True, kw_only=True):
    project_id: str
    outcome_code: str
    quota: int


AlertRule = Literal["rare_negative_rise", "positive_without_success", "off_target"]


@event_type("OutcomeAlertRaised", 1)
class OutcomeAlertRaised(DomainEvent, frozen=True, kw_only=True):
    """The outcome mix of a project's week looks unhealthy (PRODUCT.md §4 alerts; the rules are
    in ``services/rules/alerts.py``). One aggregate per project, interaction kind, week, rule
    and outcome, at version 1: an alert can be recorded only once."""

    project_id: str
    interaction: Interaction
    rule: AlertRule
    #: the outcome it is about; None for ``positive_without_success`` (about the whole mix)
    outcome_code: str | None = None
    #: the tenant-local ISO week ("2026-W44")
    period: str
    #: interactions of the project (of that kind) in the week
    interactions: int
    #: the share seen in the week (0..1)
    observed_share: float
    #: the share it is compared with: the baseline weeks' or the target's (0..1)
    expected_share: float
    #: the rule's threshold that was crossed (0..1; the target's tolerance for off_target)
    threshold: float
    message: str


# -- follow-up actions (PRODUCT.md §3): each requested by an event and completed by one ----------


class _SmsEvent(DomainEvent, frozen=True, kw_only=True):
    """An event of one SMS: its aggregate is named after the selection that asked for it."""

    contact_id: str | None = None

    def data_subject(self) -> str | None:
        return f"contact:{self.contact_id}" if self.contact_id else None


# -- follow-up tasks -----------------------------------------------------------------------------


class _FollowUpEvent(DomainEvent, frozen=True, kw_only=True):
    """An event of one follow-up task: its aggregate is named after the selection that opened it."""


@event_type("FollowUpOpened", 1)
class FollowUpOpened(_FollowUpEvent, frozen=True, kw_only=True):
    """The outcome asks for a follow-up: owned by a team or a role, due by ``due_at``."""

    source: str
    interaction: Interaction
    interaction_id: str
    project_id: str
    outcome_code: str
    owner_team: str | None = None
    owner_role: str | None = None
    due_at: datetime


@event_type("FollowUpReassigned", 1)
class FollowUpReassigned(_FollowUpEvent, frozen=True, kw_only=True):
    owner_team: str | None = None
    owner_role: str | None = None
    owner_agent: str | None = None


@event_type("FollowUpCompleted", 1)
class FollowUpCompleted(_FollowUpEvent, frozen=True, kw_only=True):
    note: str = ""


@event_type("FollowUpOverdue", 1)
class FollowUpOverdue(_FollowUpEvent, frozen=True, kw_only=True):
    """Still open at its due time (the shared durable scheduler fired)."""

    due_at: datetime


@event_type("FollowUpCancelled", 1)
class FollowUpCancelled(_FollowUpEvent, frozen=True, kw_only=True):
    """The selection that opened it was corrected to an outcome that asks for none."""

    reason: str


@event_type("SmsRequested", 1)
class SmsRequested(_SmsEvent, frozen=True, kw_only=True):
    """An outcome asked for an SMS: rendered from its template for the contact."""

    #: the selection or correction that asked for it: "<aggregate id>/<version>"
    source: str
    interaction: Interaction
    interaction_id: str
    project_id: str
    outcome_code: str
    template_id: str
    #: E.164; None when neither the call nor the contact has a number
    to_number: str | None = None
    body: str
    #: an outbound call's outcome without auto-send: the agent completes and sends it
    draft: bool = False

    personal: ClassVar[tuple[str, ...]] = ("to_number", "body")


@event_type("SmsSent", 1)
class SmsSent(_SmsEvent, frozen=True, kw_only=True):
    gateway: str
    #: the gateway's own id for the message, when it gives one
    gateway_message_id: str | None = None
    attempts: int = 1


@event_type("SmsFailed", 1)
class SmsFailed(_SmsEvent, frozen=True, kw_only=True):
    gateway: str
    reason: str
    attempts: int


@event_type("SmsDraftApproved", 1)
class SmsDraftApproved(_SmsEvent, frozen=True, kw_only=True):
    """The agent completed and edited the draft and sent it: it goes with this text."""

    body: str

    personal: ClassVar[tuple[str, ...]] = ("body",)


@event_type("SmsCancelled", 1)
class SmsCancelled(_SmsEvent, frozen=True, kw_only=True):
    """Not sent after all: the selection that asked for it was corrected."""

    reason: str


@event_type("SmsSuppressed", 1)
class SmsSuppressed(_SmsEvent, frozen=True, kw_only=True):
    """No SMS went, on purpose: "opted_out" (the contact replied STOP), "no_number", "erased"
    (the contact was erased, or the number is an erased contact's)."""

    reason: Literal["opted_out", "no_number", "erased"]


# -- contact lists and dialing (PRODUCT.md §1 "Contact handling", §3 "Contact lists") -------------
#
# What an outcome's contact handling does to the contact, recorded on the contact's dialing
# record (one aggregate per tenant and contact), on its company's record (a whole-company
# final) or on a contact list's record (a list reload). Each names its ``source``: the
# selection or correction ("<aggregate id>/<version>") -- or, for attempts, the call -- that
# caused it, so a correction can find and undo exactly what one selection did.


class DialingEvent(DomainEvent, frozen=True, kw_only=True):
    contact_id: str
    #: the selection, correction or call that caused it: "<aggregate id>/<version>"
    source: str
    #: the project the selection (or call) was in
    project_id: str
    #: when the cause happened (the selection's or call's ``occurred_at``)
    occurred_at: datetime

    def data_subject(self) -> str | None:
        return f"contact:{self.contact_id}"


@event_type("ContactRemovedFromList", 1)
class ContactRemovedFromList(DialingEvent, frozen=True, kw_only=True):
    #: the list it left (the project's list, else the contact's own); None when neither is known
    contact_list: str | None


@event_type("ContactMovedToList", 1)
class ContactMovedToList(DialingEvent, frozen=True, kw_only=True):
    from_list: str | None
    to_list: str


@event_type("ContactFinalised", 1)
class ContactFinalised(DialingEvent, frozen=True, kw_only=True):
    """Not called again: by this project until its list is reloaded, or by any project.
    Recorded on the contact's record and, for a whole company, on the company's too."""

    scope: Literal["project", "all"]
    #: set when the final covers the contact's whole company
    company_id: str | None = None


@event_type("ListReloadRequested", 1)
class ListReloadRequested(DialingEvent, frozen=True, kw_only=True):
    """The project's contact list is reloaded: its project-scope finals made before lapse."""

    contact_list: str


@event_type("DoNotCallAdded", 1)
class DoNotCallAdded(DialingEvent, frozen=True, kw_only=True):
    #: the number (E.164) when only this one is suppressed; personal data
    number: str | None = None
    all_numbers: bool = False
    scope: Literal["project", "tenant"] = "project"

    personal: ClassVar[tuple[str, ...]] = ("number",)


@event_type("RecallScheduled", 1)
class RecallScheduled(DialingEvent, frozen=True, kw_only=True):
    """A call-back; replaces the contact's open recall in the project."""

    due_at: datetime
    #: the contact's time zone the due time was computed in
    time_zone: str
    max_attempts: int
    agent_may_change_time: bool = False
    #: the agent who owns it; None: anyone
    owner_agent: str | None = None
    #: when an agent-owned recall not yet called back passes to anyone; None: never
    handover_at: datetime | None = None


@event_type("RecallCalledBack", 1)
class RecallCalledBack(DialingEvent, frozen=True, kw_only=True):
    """A call linked to the open recall reached a person: the recall is done."""

    call_id: str
    recall: str


@event_type("RolledToProject", 1)
class RolledToProject(DialingEvent, frozen=True, kw_only=True):
    to_project: str


@event_type("WaitingPeriodStarted", 1)
class WaitingPeriodStarted(DialingEvent, frozen=True, kw_only=True):
    """No automatic calls in the project until ``until``."""

    outcome_code: str
    until: datetime
    #: the same outcome started the previous waiting period: the repeat duration applies
    repeated: bool = False


@event_type("AttemptsReset", 1)
class AttemptsReset(DialingEvent, frozen=True, kw_only=True):
    pass


@event_type("CallAttemptCounted", 1)
class CallAttemptCounted(DialingEvent, frozen=True, kw_only=True):
    """An outbound call to the contact in the project: one more attempt; linked to the
    open recall when there is one."""

    call_id: str
    #: the contact's attempts in the project, this one included
    attempts: int
    #: the recall (its source) this call counts toward
    recall: str | None = None
    #: attempts used on that recall, this one included
    recall_attempts: int = 0


@event_type("RecallHandedOver", 1)
class RecallHandedOver(DialingEvent, frozen=True, kw_only=True):
    """An agent's recall not yet called back reached its hand-over time: anyone's now.
    ``source`` is the ``RecallScheduled`` event it hands over (the durable timer it set)."""

    #: the recall (its source: the selection that scheduled it)
    recall: str
    #: the agent who owned it until now
    from_agent: str


# -- a correction undoing what its corrected selection caused (PRODUCT.md §2) ---------------------
#
# ``source`` names the correction; ``undoes`` the undone event ("<aggregate id>/<version>"),
# ``replaced`` the corrected selection (the undone entry's own ``source``), which is how the
# record finds the entry to take away.


class DialingUndo(DialingEvent, frozen=True, kw_only=True):
    undoes: str
    replaced: str


@event_type("RecallCancelled", 1)
class RecallCancelled(DialingUndo, frozen=True, kw_only=True):
    """The corrected selection's recall, still open, will not be made."""


@event_type("ContactListChangeReverted", 1)
class ContactListChangeReverted(DialingUndo, frozen=True, kw_only=True):
    """A move or removal undone: the contact is back where it was before it."""

    #: the list it is back on (None: none)
    contact_list: str | None
    #: back on the list it was saved with (no outcome had changed it yet)
    as_saved: bool = False


@event_type("RollToProjectReverted", 1)
class RollToProjectReverted(DialingUndo, frozen=True, kw_only=True):
    """The contact is this project's again."""

    to_project: str


@event_type("WaitingPeriodLifted", 1)
class WaitingPeriodLifted(DialingUndo, frozen=True, kw_only=True):
    pass


@event_type("AttemptsResetReverted", 1)
class AttemptsResetReverted(DialingUndo, frozen=True, kw_only=True):
    """The reset undone: the attempts before it count again, with those made since."""

    attempts: int


@event_type("FinalLifted", 1)
class FinalLifted(DialingUndo, frozen=True, kw_only=True):
    """Only on a correction's explicit ``lift_suppressions``: the selection's own final."""


@event_type("DoNotCallLifted", 1)
class DoNotCallLifted(DialingUndo, frozen=True, kw_only=True):
    """Only on a correction's explicit ``lift_suppressions``: the selection's own entry."""


# -- webhook deliveries: one aggregate per (outcome event, webhook), named after both ---------------


class _WebhookDeliveryEvent(DomainEvent, frozen=True, kw_only=True):
    #: the outcome event delivered: "<aggregate id>/<version>"
    source: str
    webhook_id: str
    event_type: str
    url: str
    attempts: int


@event_type("WebhookDelivered", 1)
class WebhookDelivered(_WebhookDeliveryEvent, frozen=True, kw_only=True):
    """The receiver answered 2xx."""

    status: int


@event_type("WebhookFailed", 1)
class WebhookFailed(_WebhookDeliveryEvent, frozen=True, kw_only=True):
    """Refused (a 4xx other than 408/429) or still failing after the retries."""

    reason: str
