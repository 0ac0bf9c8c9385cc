"""Domain errors, each named after the rule it enforces; mapped to HTTP once (api/errors.py)."""

from __future__ import annotations


class DomainError(Exception):
    """A rule was broken; nothing was written."""

    status = 422
    code = "rule_violation"

    def __init__(self, message: str, **detail: object) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(DomainError):
    """Unknown id -- or another tenant's: the two are indistinguishable by design."""

    status = 404
    code = "not_found"


class Conflict(DomainError):
    """Someone else changed it first (optimistic concurrency), or it already exists."""

    status = 409
    code = "conflict"


class DuplicateOutcome(Conflict):
    code = "duplicate_outcome"


class ProjectExists(Conflict):
    code = "project_exists"


class CallAlreadyStarted(Conflict):
    code = "call_already_started"


class CallAlreadyHasOutcome(Conflict):
    code = "call_already_has_outcome"


class OutcomeSetChanged(Conflict):
    code = "outcome_set_changed"


class IdempotencyKeyReused(DomainError):
    status = 422
    code = "idempotency_key_reused"


class OutcomeNotInProject(DomainError):
    code = "outcome_not_in_project"


class OutcomeNotSelectable(DomainError):
    code = "outcome_not_selectable"


class RevenueRequired(DomainError):
    code = "revenue_required"


class NegativeRevenue(DomainError):
    code = "negative_revenue"


class CallNotEnded(DomainError):
    code = "call_not_ended"


class ImpossibleHistory(DomainError):
    code = "impossible_history"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class ShortcutKeyClash(Conflict):
    code = "shortcut_key_clash"


class AutoCloseLimit(DomainError):
    """auto_close_without_outcome allows at most one agent outcome, fit for both kinds."""

    code = "auto_close_limit"


class InvalidDefinition(DomainError):
    code = "invalid_definition"


class OutcomeRetiredError(DomainError):
    code = "outcome_retired"


class TemplateHasTags(DomainError):
    code = "template_has_tags"


class FollowUpClosed(Conflict):
    code = "follow_up_closed"


class NotWithFlow(Conflict):
    code = "not_with_flow"


class SmsNotDraft(Conflict):
    code = "sms_not_draft"


class DraftIncomplete(DomainError):
    code = "draft_incomplete"


class ConversationIsClosed(Conflict):
    code = "conversation_closed"


class InteractionIsClosed(DomainError):
    """A closed interaction takes only corrections and late business results."""

    code = "interaction_closed"


class OutcomeNotApplicable(DomainError):
    code = "outcome_not_applicable"


class RevenueNotAllowed(DomainError):
    code = "revenue_not_allowed"


class CallTooShort(DomainError):
    code = "call_length_gate"


class OutcomeRequired(DomainError):
    code = "outcome_required"


class CorrectionNotAllowed(DomainError):
    code = "correction_not_allowed"


class NothingToCorrect(DomainError):
    code = "nothing_to_correct"


class FactConflict(Conflict):
    """The fact contradicts one already recorded (e.g. a second, different end time)."""

    code = "fact_conflict"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"


class InvalidContact(DomainError):
    code = "invalid_contact"


class TeamExists(Conflict):
    code = "team_exists"


class WebhookExists(Conflict):
    code = "webhook_exists"


class BadRequest(DomainError):
    """A malformed request header (the body's own faults are validation errors)."""

    status = 400
    code = "invalid_request"


class NothingToReview(DomainError):
    code = "nothing_to_review"


class InvalidVerdict(DomainError):
    code = "invalid_verdict"
