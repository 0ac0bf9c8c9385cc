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
