"""Who may do what: PRODUCT.md §1's table, in one place."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PLATFORM = "platform"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    MANAGER = "manager"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"


class Action(StrEnum):
    CONFIGURE = "configure outcomes, projects, templates, people, keys, webhooks"
    REPORT_FACTS = "report facts and select outcomes"
    CORRECT = "correct outcomes, reassign follow-ups, lift a suppression"
    WORK_FOLLOW_UPS = "edit and send SMS drafts, change recall times, complete follow-ups"
    READ_REPORTS = "read reports, dashboard, history table, samples"
    RECORD_VERDICTS = "record QA verdicts"
    AUDIT = "export history, read any aggregate's events, verify"
    LOOK_BACK = "read state as of a past moment, try a definition change on past days (what-if)"
    ERASE = "erase a contact's personal data"


_R = Role
ALLOWED: dict[Action, frozenset[Role]] = {
    Action.CONFIGURE: frozenset({_R.ADMIN}),
    Action.REPORT_FACTS: frozenset({_R.PLATFORM, _R.SUPERVISOR, _R.AGENT}),
    Action.CORRECT: frozenset({_R.PLATFORM, _R.SUPERVISOR}),
    Action.WORK_FOLLOW_UPS: frozenset({_R.PLATFORM, _R.SUPERVISOR, _R.AGENT}),
    Action.READ_REPORTS: frozenset({_R.ADMIN, _R.PLATFORM, _R.SUPERVISOR, _R.MANAGER, _R.REVIEWER, _R.AUDITOR}),
    Action.RECORD_VERDICTS: frozenset({_R.SUPERVISOR, _R.REVIEWER}),
    Action.AUDIT: frozenset({_R.AUDITOR}),
    Action.LOOK_BACK: frozenset({_R.ADMIN, _R.SUPERVISOR, _R.MANAGER, _R.AUDITOR}),
    Action.ERASE: frozenset({_R.ADMIN}),
}


def may(role: Role, action: Action) -> bool:
    return role in ALLOWED[action]
