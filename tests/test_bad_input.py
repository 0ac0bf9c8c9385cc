"""The bad-input suite (PRODUCT.md §7): every write endpoint, every kind of bad request.

Each case sends one bad request through the real ASGI app and asserts that it gets a 4xx
JSON error whose ``message`` names the problem, and that nothing changed in Redis: every key
under the test's own prefix has the same ``DEBUG DIGEST-VALUE`` and the same consumer-group
state before and after (tests/digest.py; only rate-limit counters, ingest and rejections
streams may move).

The world: tenant ``acme`` (A) with outcomes, projects, calls, conversations and keys of every
role; tenant ``beta`` (B) with ids of its own, some spelled like A's; tenant ``gamma`` whose rate
limit is zero. An id that exists only in B gets, from A, a 404 byte-identical to the one A got
for the same request before B existed -- the only difference between the two requests is
whether another tenant has the id.

``test_every_write_endpoint_is_covered`` compares the operations the cases cover with the
OpenAPI document: a new write endpoint without bad-input cases fails the suite.

A case given ``bug=`` marks a known product bug (xfail, strict): it fails until the bug is
fixed, and the mark must go then. Such a case should act on ids of its own, so the writes the
bug makes cannot disturb the other cases.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from litestar.testing import TestClient

from services.api.app import create_app
from services.config import Settings
from services.interactions import aggregate_id
from services.runtime import Runtime
from tests.digest import diff, snapshot
from workers.actions import FollowUpPlanner, SmsPlanner

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
NO_BODY = object()
#: over the 256 KiB limit (PRODUCT.md §7)
PAD = "x" * (300 * 1024)


def at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


@dataclass(frozen=True)
class Case:
    name: str
    op: str  # the OpenAPI operationId
    method: str
    path: str  # may name world ids: {b_key_id}, {spare_key_id}
    body: Any = NO_BODY  # JSON-able, raw bytes, or NO_BODY
    who: str = "admin"
    status: int | tuple[int, ...] = 400
    error: str | tuple[str, ...] | None = "invalid_request"  # None: any code
    says: tuple[str, ...] = ()  # the message contains each (case-insensitive)
    headers: tuple[tuple[str, str], ...] = ()
    #: "exact": byte-identical to A's answer before B existed; "normalised": the same as the answer for an
    #: id that exists nowhere, with the id in both masked
    same_as_unknown: str | None = None
    bug: str | None = None  # a product bug: xfail(strict=True)


# -- generic cases, per endpoint ---------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One write endpoint and a request that would succeed in tenant A."""

    op: str
    method: str
    path: str
    who: str
    wrong_role: str
    body: dict[str, Any] | None = None  # None: the endpoint takes no body
    mistype: str | None = None  # a field sent as a number
    required: str | None = None  # a required field left out
    enum: str | None = None  # a field sent an unknown enum value
    invalid: tuple[str, Any, str] | None = None  # (field, value, what the message says): a value its rule refuses
    forbidden_says: str = "may not"


CORRECT = {"outcome_code": "NO_SALE", "occurred_at": at(300), "reason": "misclicked"}
WHAT_IF = {"days": 7, "changes": [{"op": "hide_outcome", "code": "SALE", "project_id": "winter"}]}
DISPUTE = {"verdict": "disputed", "should_have_been": "NO_SALE", "note": "the customer declined"}
OPS = [
    # configuration (admin)
    Op("defineGlobalOutcome", "POST", "/v1/outcomes", "admin", "agent", {"code": "FRESH_G", "name": "Fresh global"},
       mistype="name", required="code", enum="availability", invalid=("code", "lower case", "code")),
    Op("changeGlobalOutcome", "PUT", "/v1/outcomes/NO_SALE", "admin", "agent", {"code": "NO_SALE", "name": "No sale"},
       mistype="name", required="name", enum="telephony_status"),
    Op("enableGlobalOutcome", "POST", "/v1/outcomes/OFF_E/enable", "admin", "agent"),
    Op("disableGlobalOutcome", "POST", "/v1/outcomes/SPARE_D/disable", "admin", "agent"),
    Op("retireGlobalOutcome", "POST", "/v1/outcomes/SPARE_R/retire", "admin", "agent"),
    Op("assignOutcome", "PUT", "/v1/outcomes/ASSIGNABLE/assignments/winter", "admin", "agent"),
    Op("unassignOutcome", "DELETE", "/v1/outcomes/ASSIGNABLE/assignments/assigned-p", "admin", "agent"),
    Op("createProject", "POST", "/v1/projects", "admin", "agent",
       {"project_id": "fresh-p", "name": "Fresh", "direction": "outbound"},
       mistype="name", required="project_id", enum="direction", invalid=("project_id", "has space", "project_id")),
    Op("changeProject", "PUT", "/v1/projects/winter", "admin", "agent", {"name": "Winter", "direction": "outbound"},
       mistype="name", required="direction", enum="direction"),
    Op("hideOutcome", "PUT", "/v1/projects/winter/hidden-outcomes/HIDE_ME", "admin", "agent"),
    Op("unhideOutcome", "DELETE", "/v1/projects/winter/hidden-outcomes/HIDDEN_U", "admin", "agent"),
    Op("defineProjectOutcome", "POST", "/v1/projects/winter/outcomes", "admin", "agent",
       {"code": "FRESH_P", "name": "Fresh project"}, mistype="code", required="name", enum="telephony_status"),
    Op("changeProjectOutcome", "PUT", "/v1/projects/winter/outcomes/PSPARE", "admin", "agent",
       {"code": "PSPARE", "name": "P spare"}, mistype="description", required="code", enum="telephony_status"),
    Op("setProjectOutcomeState", "POST", "/v1/projects/winter/outcomes/PSTATE/disable", "admin", "agent"),
    Op("saveSmsTemplate", "PUT", "/v1/sms-templates/fresh", "admin", "agent", {"body": "Hello"},
       mistype="body", required="body", invalid=("body", "", "body")),
    Op("registerAgent", "POST", "/v1/agents", "admin", "agent", {"agent_id": "fresh-agent", "name": "Fresh"},
       mistype="name", required="agent_id", invalid=("agent_id", "has space", "agent_id")),
    Op("createTeam", "POST", "/v1/teams", "admin", "agent", {"team_id": "fresh-team", "name": "Fresh"},
       mistype="team_id", required="name", invalid=("name", "", "name")),
    Op("setAgentTeam", "PUT", "/v1/agents/anna/team", "admin", "agent", {"team_id": "red"},
       mistype="team_id", required="team_id"),
    Op("issueKey", "POST", "/v1/keys", "admin", "supervisor_key", {"role": "agent"},
       mistype="role", required="role", enum="role"),
    Op("revokeKey", "DELETE", "/v1/keys/{spare_key_id}", "admin", "supervisor_key"),
    Op("registerWebhook", "POST", "/v1/webhooks", "admin", "agent",
       {"webhook_id": "fresh-hook", "url": "https://crm.example/fresh"},
       mistype="url", required="url", invalid=("url", "ftp://crm.example/hook", "url")),
    Op("changeWebhook", "PUT", "/v1/webhooks/crm", "admin", "agent", {"url": "https://crm.example/v2"},
       mistype="url", required="url", invalid=("outcome_codes", ["sale"], "outcome_codes")),
    Op("rotateWebhookSecret", "POST", "/v1/webhooks/crm/rotate-secret", "admin", "agent", {"grace_seconds": 60},
       invalid=("grace_seconds", 8 * 86_400, "grace_seconds")),
    Op("deleteWebhook", "DELETE", "/v1/webhooks/spare-hook", "admin", "agent"),
    # interaction facts (platform, acting for an agent)
    Op("startCall", "POST", "/v1/calls", "agent", "manager_key",
       {"call_id": "fresh-call", "project_id": "winter", "direction": "outbound", "occurred_at": at(0)},
       mistype="call_id", required="call_id", enum="direction",
       invalid=("contact_number", "0401234567", "contact_number")),
    Op("callAnswered", "POST", "/v1/calls/c-ringing/answered", "agent", "manager_key", {"occurred_at": at(10)},
       mistype="agent_id", required="occurred_at"),
    Op("agentConnected", "POST", "/v1/calls/c-ringing/agent-connected", "agent", "manager_key",
       {"occurred_at": at(10), "agent_id": "anna"}, mistype="agent_id", required="agent_id"),
    Op("callUnanswered", "POST", "/v1/calls/c-ringing/unanswered", "agent", "manager_key",
       {"occurred_at": at(20), "telephony_status": "no_answer"},
       mistype="telephony_status", required="telephony_status", enum="telephony_status"),
    Op("callEnded", "POST", "/v1/calls/c-ringing/ended", "agent", "manager_key", {"occurred_at": at(60)},
       mistype="termination_reason", required="occurred_at", invalid=("termination_reason", "r" * 101, "termination")),
    Op("selectCallOutcome", "POST", "/v1/calls/c-short/outcome", "agent", "manager_key",
       {"outcome_code": "NO_SALE", "occurred_at": at(15)}, mistype="outcome_code", required="outcome_code",
       invalid=("revenue", "NaN", "finite")),
    Op("correctCallOutcome", "POST", "/v1/calls/c-done/correction", "supervisor", "agent_key", CORRECT,
       mistype="reason", required="reason", invalid=("reason", "", "reason")),
    Op("attachCallReference", "POST", "/v1/calls/c-done/references", "agent", "manager_key",
       {"kind": "recording", "reference": "rec-2", "occurred_at": at(400)},
       mistype="reference", required="kind", enum="kind", invalid=("reference", "", "reference")),
    Op("startConversation", "POST", "/v1/conversations", "agent", "manager_key",
       {"conversation_id": "fresh-conv", "project_id": "winter", "channel": "sms", "occurred_at": at(0)},
       mistype="channel", required="project_id", invalid=("channel", "SMS!", "channel")),
    Op("recordMessage", "POST", "/v1/conversations/v-open/messages", "agent", "manager_key",
       {"direction": "received", "channel": "sms", "occurred_at": at(30), "body": "hello"},
       mistype="body", required="direction", enum="direction"),
    Op("selectConversationOutcome", "POST", "/v1/conversations/v-open/outcome", "agent", "manager_key",
       {"outcome_code": "SALE", "occurred_at": at(40)}, mistype="outcome_code", required="occurred_at",
       invalid=("revenue", "ten euros", "revenue")),
    Op("correctConversationOutcome", "POST", "/v1/conversations/v-closed/correction", "supervisor", "agent_key",
       CORRECT, mistype="outcome_code", required="outcome_code", invalid=("outcome_code", "sale", "outcome_code")),
    Op("closeConversation", "POST", "/v1/conversations/v-open/close", "agent", "manager_key", {"occurred_at": at(50)},
       required="occurred_at"),
    Op("attachConversationReference", "POST", "/v1/conversations/v-open/references", "agent", "manager_key",
       {"kind": "transcript", "reference": "tr-1", "occurred_at": at(55)},
       mistype="kind", required="reference", enum="kind"),
    Op("saveContact", "PUT", "/v1/contacts/k1", "agent", "manager_key",
       {"name": "Ann", "numbers": ["+358401234567"], "time_zone": "Europe/Helsinki"},
       mistype="name", invalid=("numbers", ["12345"], "numbers")),
    Op("eraseContact", "POST", "/v1/contacts/k1/erase", "admin", "agent", forbidden_says="may not erase"),
    Op("contactOptedOut", "POST", "/v1/contacts/k1/opt-out", "agent", "manager_key", {"occurred_at": at(70)},
       mistype="channel", required="occurred_at", enum="channel"),
    Op("flowReturned", "POST", "/v1/conversations/v-flow/flow-returned", "agent", "manager_key",
       {"flow": "bot", "occurred_at": at(80)}, mistype="flow", required="flow", invalid=("flow", "has space", "flow")),
    # follow-up actions
    Op("completeFollowUp", "POST", "/v1/follow-ups/{follow_up}/complete", "agent", "manager_key",
       {"note": "called back"}, mistype="note", invalid=("note", "x" * 2001, "2000")),
    Op("reassignFollowUp", "POST", "/v1/follow-ups/{follow_up}/reassign", "supervisor", "agent_key",
       {"owner_team": "red"}, mistype="owner_team", enum="owner_role",
       invalid=("owner_agent", "has space", "owner_agent")),
    Op("sendSmsDraft", "POST", "/v1/sms/{sms_draft}/send", "agent", "manager_key", {"body": "Hi Ann, see you at 5"},
       mistype="body", required="body", invalid=("body", "", "body")),
    # QA verdicts (reviewer, supervisor)
    Op("recordCallVerdict", "POST", "/v1/calls/c-done/verdicts", "reviewer_key", "agent", DISPUTE,
       mistype="note", required="verdict", enum="verdict", invalid=("should_have_been", "sale", "should_have_been")),
    Op("recordConversationVerdict", "POST", "/v1/conversations/v-closed/verdicts", "reviewer_key", "manager_key",
       DISPUTE, mistype="should_have_been", required="verdict", enum="verdict", invalid=("note", "n" * 2001, "note")),
    # looking back (reads only, but takes a body)
    Op("whatIf", "POST", "/v1/what-if", "admin", "agent", WHAT_IF, mistype="until", required="changes",
       invalid=("days", 0, "days")),
]  # fmt: skip
OP_BY_ID = {o.op: o for o in OPS}


def case(name: str, op: str, method: str, path: str, says: str | tuple[str, ...] = (), **kw: Any) -> Case:
    """A case; by default sent by a key that may use the endpoint."""
    kw.setdefault("who", OP_BY_ID[op].who)
    return Case(name, op, method, path, says=(says,) if isinstance(says, str) else says, **kw)


def generic_cases(o: Op) -> list[Case]:
    kw: dict[str, Any] = {"body": o.body if o.body is not None else NO_BODY}
    cases = [
        Case(f"{o.op}-no-api-key", o.op, o.method, o.path, who="none", status=401, error="unauthorized",
             says=("Authorization",), **kw),
        Case(f"{o.op}-unknown-api-key", o.op, o.method, o.path, who="bad_key", status=401, error="unauthorized",
             says=("unknown or revoked",), **kw),
        Case(f"{o.op}-wrong-role-{o.wrong_role}", o.op, o.method, o.path, who=o.wrong_role, status=403,
             error="forbidden", says=(o.forbidden_says,), **kw),
    ]  # fmt: skip
    if o.body is None:
        cases.append(
            Case(f"{o.op}-oversized", o.op, o.method, o.path, who=o.who, body=b" " * len(PAD), status=413,
                 error="payload_too_large", says=("256 KiB",))
        )  # fmt: skip
        return cases
    body = o.body
    padded = {**body, (o.mistype or next(iter(body))): PAD}
    cases += [
        Case(f"{o.op}-oversized", o.op, o.method, o.path, who=o.who, body=json.dumps(padded).encode(), status=413,
             error="payload_too_large", says=("256 KiB",)),
        Case(f"{o.op}-malformed-json", o.op, o.method, o.path, who=o.who, body=json.dumps(body).encode()[:-3],
             says=("malformed",)),
        Case(f"{o.op}-empty-body", o.op, o.method, o.path, who=o.who, body=b"", says=("empty",)),
        Case(f"{o.op}-not-an-object", o.op, o.method, o.path, who=o.who, body=[body], says=("object", "array")),
        Case(f"{o.op}-unknown-field", o.op, o.method, o.path, who=o.who, body={**body, "surprise": True},
             says=("unknown field", "surprise")),
    ]  # fmt: skip
    if o.required:
        missing = {k: v for k, v in body.items() if k != o.required}
        cases.append(
            Case(f"{o.op}-missing-{o.required}", o.op, o.method, o.path, who=o.who, body=missing,
                 says=("missing required field", f"`{o.required}`"))
        )  # fmt: skip
    if o.mistype:
        cases.append(
            Case(f"{o.op}-wrong-type-{o.mistype}", o.op, o.method, o.path, who=o.who, body={**body, o.mistype: 12345},
                 says=("expected", f"`{o.mistype}`"))
        )  # fmt: skip
    if "occurred_at" in body:
        cases.append(
            Case(f"{o.op}-naive-occurred_at", o.op, o.method, o.path, who=o.who,
                 body={**body, "occurred_at": "2026-11-22T09:00:00"}, says=("timezone", "`occurred_at`"))
        )  # fmt: skip
        cases.append(
            Case(f"{o.op}-not-a-date-occurred_at", o.op, o.method, o.path, who=o.who,
                 body={**body, "occurred_at": "yesterday"}, says=("datetime", "`occurred_at`"))
        )  # fmt: skip
    if o.enum:
        cases.append(
            Case(f"{o.op}-bad-enum-{o.enum}", o.op, o.method, o.path, who=o.who, body={**body, o.enum: "bogus"},
                 says=("bogus", f"`{o.enum}`"))
        )  # fmt: skip
    if o.invalid:
        name, value, says = o.invalid
        cases.append(
            Case(f"{o.op}-invalid-{name}", o.op, o.method, o.path, who=o.who, body={**body, name: value},
                 says=(says,))
        )  # fmt: skip
    return cases


# -- rule violations and unknown ids, per endpoint ------------------------------------------------------

SELECT = "selectCallOutcome"
NOT_FOUND = {"status": 404, "error": "not_found"}
SMS_BODY = {"body": "Hi Ann, see you at 5"}
HOOK = {"webhook_id": "fresh-hook", "url": "https://crm.example/fresh"}


def sel(code: str, **extra: Any) -> dict[str, Any]:
    return {"outcome_code": code, "occurred_at": at(15), **extra}


def corr(code: str, **extra: Any) -> dict[str, Any]:
    return {"outcome_code": code, "occurred_at": at(300), "reason": "misclicked", **extra}


def outcome(code: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "name": name, **extra}


def project(project_id: str, **extra: Any) -> dict[str, Any]:
    return {"project_id": project_id, "name": project_id.title(), "direction": "outbound", **extra}


def call(call_id: str, **extra: Any) -> dict[str, Any]:
    return {"call_id": call_id, "project_id": "winter", "direction": "outbound", "occurred_at": at(0), **extra}


RULES = [
    # -- global outcomes
    case("define-global-duplicate-code", "defineGlobalOutcome", "POST", "/v1/outcomes", "already exists",
         body=outcome("SALE", "Another sale"), status=409, error="duplicate_outcome"),
    case("define-global-duplicate-name", "defineGlobalOutcome", "POST", "/v1/outcomes",
         ("would both be called", "SALE"), body=outcome("SALE2", "sale"), status=409, error="duplicate_outcome"),
    case("define-global-shortcut-clash", "defineGlobalOutcome", "POST", "/v1/outcomes", "shortcut key",
         body=outcome("SC2", "Shortcut two", shortcut_key="s"), status=409, error="shortcut_key_clash"),
    case("define-global-redirect-to-flow", "defineGlobalOutcome", "POST", "/v1/outcomes", "project-specific",
         body=outcome("FLOW_G", "Flow g", redirect_to_flow="survey", applies_to=["conversation"]), status=422,
         error="invalid_definition"),
    case("define-global-custom-unanswered", "defineGlobalOutcome", "POST", "/v1/outcomes", "unanswered",
         body=outcome("MY_NA", "My no answer", unanswered=True), status=422, error="invalid_definition"),
    case("define-global-min-over-max-seconds", "defineGlobalOutcome", "POST", "/v1/outcomes", "min_call_seconds",
         body=outcome("MINMAX", "Min max", min_call_seconds=60, max_call_seconds=10), status=422,
         error="invalid_definition"),
    case("define-global-applies-to-nothing", "defineGlobalOutcome", "POST", "/v1/outcomes", "must apply",
         body=outcome("NOWHERE", "Nowhere", applies_to=[]), status=422, error="invalid_definition"),
    case("define-global-bad-applies-to", "defineGlobalOutcome", "POST", "/v1/outcomes", ("bogus", "applies_to"),
         body=outcome("BADAPPLY", "Bad apply", applies_to=["bogus"])),
    case("define-global-bad-nested-enum", "defineGlobalOutcome", "POST", "/v1/outcomes", ("bogus", "flags.revenue"),
         body=outcome("BADFLAG", "Bad flag", flags={"revenue": "bogus"})),
    case("define-global-unknown-nested-field", "defineGlobalOutcome", "POST", "/v1/outcomes", "sneaky",
         body=outcome("BADNEST", "Bad nest", contact_handling={"sneaky": 1})),
    case("define-global-integer-over-64-bits", "defineGlobalOutcome", "POST", "/v1/outcomes", "min_call_seconds",
         body=outcome("HUGE", "Huge", min_call_seconds=2**70)),
    case("define-global-string-for-integer", "defineGlobalOutcome", "POST", "/v1/outcomes", "min_call_seconds",
         body=outcome("LAX_INT", "Lax int", min_call_seconds="60")),
    case("define-global-string-for-boolean", "defineGlobalOutcome", "POST", "/v1/outcomes", "enabled",
         body=outcome("LAX_BOOL", "Lax bool", enabled="false")),
    case("define-global-number-for-boolean", "defineGlobalOutcome", "POST", "/v1/outcomes", "selectable",
         body=outcome("LAX_NUM", "Lax num", selectable=0)),
    case("define-global-unknown-template", "defineGlobalOutcome", "POST", "/v1/outcomes", "template 'nope'",
         body=outcome("SMS_X", "Sms x", sms_template="nope"), **NOT_FOUND),
    case("define-global-auto-send-without-template", "defineGlobalOutcome", "POST", "/v1/outcomes", "sms_template",
         body=outcome("SMS_Y", "Sms y", auto_send=True), status=422, error="invalid_definition"),
    case("define-global-auto-send-template-with-tags", "defineGlobalOutcome", "POST", "/v1/outcomes", "message tags",
         body=outcome("SMS_Z", "Sms z", sms_template="tagged", auto_send=True), status=422, error="template_has_tags"),
    case("define-global-unknown-parent", "defineGlobalOutcome", "POST", "/v1/outcomes", "parent outcome 'NOPE'",
         body=outcome("CHILD_X", "Child x", parent="NOPE"), **NOT_FOUND),
    case("define-global-unknown-roll-to-project", "defineGlobalOutcome", "POST", "/v1/outcomes", "project 'nope'",
         body=outcome("ROLL_X", "Roll x", contact_handling={"roll_to_project": "nope"}), **NOT_FOUND),
    case("define-global-negative-min-call-seconds", "defineGlobalOutcome", "POST", "/v1/outcomes", "min_call_seconds",
         body=outcome("NEG_MIN", "Negative minimum", min_call_seconds=-5), status=(400, 422), error=None),
    case("define-global-negative-recall-delay", "defineGlobalOutcome", "POST", "/v1/outcomes", "delay_seconds",
         body=outcome("NEG_RECALL", "Negative recall", contact_handling={"recall": {"delay_seconds": -60}}),
         status=(400, 422), error=None),
    case("change-global-code-mismatch", "changeGlobalOutcome", "PUT", "/v1/outcomes/NO_SALE", "codes do not change",
         body=outcome("SALE", "Sale"), status=422, error="invalid_definition"),
    case("change-global-rename-clash", "changeGlobalOutcome", "PUT", "/v1/outcomes/NO_SALE", "would both be called",
         body=outcome("NO_SALE", "SALE"), status=409, error="duplicate_outcome"),
    case("change-global-retired", "changeGlobalOutcome", "PUT", "/v1/outcomes/RETIRED_X", "retired",
         body=outcome("RETIRED_X", "Retired one"), status=422, error="outcome_retired"),
    case("change-global-parent-cycle", "changeGlobalOutcome", "PUT", "/v1/outcomes/SALE", "cycle",
         body=outcome("SALE", "Sale", shortcut_key="s", parent="SALE_CHILD"), status=422, error="invalid_definition"),
    case("change-global-unknown", "changeGlobalOutcome", "PUT", "/v1/outcomes/NOPE", "outcome 'NOPE' not found",
         body=outcome("NOPE", "Nope"), **NOT_FOUND),
    case("enable-global-duplicate-name", "enableGlobalOutcome", "POST", "/v1/outcomes/NOSALE_OLD/enable",
         "would both be called", status=409, error="duplicate_outcome"),
    case("enable-global-retired", "enableGlobalOutcome", "POST", "/v1/outcomes/RETIRED_X/enable", "retired",
         status=422, error="outcome_retired"),
    case("enable-global-unknown", "enableGlobalOutcome", "POST", "/v1/outcomes/NOPE/enable", "'NOPE' not found",
         **NOT_FOUND),
    case("disable-global-unknown", "disableGlobalOutcome", "POST", "/v1/outcomes/NOPE/disable", "'NOPE' not found",
         **NOT_FOUND),
    case("retire-global-unknown", "retireGlobalOutcome", "POST", "/v1/outcomes/NOPE/retire", "'NOPE' not found",
         **NOT_FOUND),
    case("retire-global-retired", "retireGlobalOutcome", "POST", "/v1/outcomes/RETIRED_X/retire", "retired",
         status=422, error="outcome_retired"),
    case("assign-unknown-outcome", "assignOutcome", "PUT", "/v1/outcomes/NOPE/assignments/winter", "'NOPE' not found",
         **NOT_FOUND),
    case("assign-unknown-project", "assignOutcome", "PUT", "/v1/outcomes/ASSIGNABLE/assignments/nope",
         "project 'nope' not found", **NOT_FOUND),
    case("assign-duplicate-name", "assignOutcome", "PUT", "/v1/outcomes/DUP_ASSIGN/assignments/winter",
         ("would both be called", "Winter deal"), status=409, error="duplicate_outcome"),
    case("unassign-unknown-project", "unassignOutcome", "DELETE", "/v1/outcomes/ASSIGNABLE/assignments/nope",
         "project 'nope' not found", **NOT_FOUND),
    case("unassign-unknown-outcome", "unassignOutcome", "DELETE", "/v1/outcomes/NOPE/assignments/winter",
         "'NOPE' not found", **NOT_FOUND),
    # -- projects
    case("create-project-exists", "createProject", "POST", "/v1/projects", "already exists", body=project("winter"),
         status=409, error="project_exists"),
    case("create-project-hides-unknown-outcome", "createProject", "POST", "/v1/projects", "outcome 'NOPE' not found",
         body=project("hider", hidden_outcomes=["NOPE"]), **NOT_FOUND),
    case("create-project-auto-close-limit", "createProject", "POST", "/v1/projects", "at most one agent outcome",
         body=project("auto2", auto_close_without_outcome=True), status=422, error="auto_close_limit"),
    case("create-project-timeout-without-seconds", "createProject", "POST", "/v1/projects", "timeout_seconds",
         body=project("timeout1", wrap_up={"mode": "mandatory_with_timeout", "timeout_outcome": "NO_SALE"}),
         status=422, error="invalid_definition"),
    case("create-project-bad-wrap-up-mode", "createProject", "POST", "/v1/projects", ("bogus", "wrap_up.mode"),
         body=project("wrap1", wrap_up={"mode": "bogus"})),
    case("create-project-negative-quota", "createProject", "POST", "/v1/projects", "quota",
         body=project("neg-quota", quotas={"SALE": -1}), status=(400, 422), error=None),
    case("create-project-impossible-calling-hours", "createProject", "POST", "/v1/projects", "calling_hours",
         body=project("bad-hours", calling_hours={"start": "25:99", "weekdays": [9]}), status=(400, 422), error=None),
    case("change-project-unknown", "changeProject", "PUT", "/v1/projects/nope", "project 'nope' not found",
         body={"name": "Nope", "direction": "outbound"}, **NOT_FOUND),
    case("change-project-auto-close-limit", "changeProject", "PUT", "/v1/projects/winter", "at most one agent outcome",
         body={"name": "Winter", "direction": "outbound", "auto_close_without_outcome": True}, status=422,
         error="auto_close_limit"),
    case("change-project-auto-close-unhides-busy", "changeProject", "PUT", "/v1/projects/auto", "BUSY",
         body={"name": "Auto", "direction": "outbound", "auto_close_without_outcome": True}, status=422,
         error="auto_close_limit"),
    case("change-project-timeout-outcome-requires-revenue", "changeProject", "PUT", "/v1/projects/winter",
         "requires revenue", body={"name": "Winter", "direction": "outbound",
                                   "wrap_up": {"mode": "mandatory_with_timeout", "timeout_seconds": 30,
                                               "timeout_outcome": "DEAL"}},
         status=422, error="invalid_definition"),
    case("change-project-timeout-outcome-not-in-set", "changeProject", "PUT", "/v1/projects/winter",
         "not in the active outcome set", body={"name": "Winter", "direction": "outbound",
                                                "wrap_up": {"mode": "mandatory_with_timeout", "timeout_seconds": 30,
                                                            "timeout_outcome": "HIDDEN_S"}},
         status=422, error="invalid_definition"),
    case("hide-unknown-outcome", "hideOutcome", "PUT", "/v1/projects/winter/hidden-outcomes/NOPE", "'NOPE' not found",
         **NOT_FOUND),
    case("hide-unknown-project", "hideOutcome", "PUT", "/v1/projects/nope/hidden-outcomes/SALE",
         "project 'nope' not found", **NOT_FOUND),
    case("unhide-duplicate-name", "unhideOutcome", "DELETE", "/v1/projects/p-hid/hidden-outcomes/SALE",
         ("would both be called", "PSALE"), status=409, error="duplicate_outcome"),
    case("unhide-auto-close-limit", "unhideOutcome", "DELETE", "/v1/projects/auto/hidden-outcomes/SALE",
         "at most one agent outcome", status=422, error="auto_close_limit"),
    case("unhide-unknown-project", "unhideOutcome", "DELETE", "/v1/projects/nope/hidden-outcomes/SALE",
         "project 'nope' not found", **NOT_FOUND),
    case("define-project-outcome-global-code", "defineProjectOutcome", "POST", "/v1/projects/winter/outcomes",
         "both a global and a project outcome", body=outcome("SALE", "Project sale"), status=409,
         error="duplicate_outcome"),
    case("define-project-outcome-duplicate-code", "defineProjectOutcome", "POST", "/v1/projects/winter/outcomes",
         "already has an outcome", body=outcome("PSPARE", "P spare again"), status=409, error="duplicate_outcome"),
    case("define-project-outcome-duplicate-name", "defineProjectOutcome", "POST", "/v1/projects/winter/outcomes",
         "would both be called", body=outcome("PNEW", "no sale"), status=409, error="duplicate_outcome"),
    case("define-project-outcome-auto-close-limit", "defineProjectOutcome", "POST", "/v1/projects/auto/outcomes",
         ("at most one agent outcome", "ONLY"), body=outcome("TWO", "Two"), status=422, error="auto_close_limit"),
    case("define-project-outcome-with-sms", "defineProjectOutcome", "POST", "/v1/projects/winter/outcomes",
         "global outcomes only", body=outcome("PSMS", "P sms", sms_template="plain"), status=422,
         error="invalid_definition"),
    case("define-project-outcome-flow-on-calls", "defineProjectOutcome", "POST", "/v1/projects/winter/outcomes",
         "conversations only", body=outcome("PFLOW", "P flow", redirect_to_flow="survey"), status=422,
         error="invalid_definition"),
    case("define-project-outcome-unknown-project", "defineProjectOutcome", "POST", "/v1/projects/nope/outcomes",
         "project 'nope' not found", body=outcome("PX", "P x"), **NOT_FOUND),
    case("change-project-outcome-code-mismatch", "changeProjectOutcome", "PUT", "/v1/projects/winter/outcomes/PSPARE",
         "codes do not change", body=outcome("WDEAL", "P spare"), status=422, error="invalid_definition"),
    case("change-project-outcome-auto-close-applies-to", "changeProjectOutcome", "PUT",
         "/v1/projects/auto/outcomes/ONLY", "both calls and conversations",
         body=outcome("ONLY", "Only one", applies_to=["call"]), status=422, error="auto_close_limit"),
    case("change-project-outcome-auto-close-revenue", "changeProjectOutcome", "PUT", "/v1/projects/auto/outcomes/ONLY",
         "cannot require revenue", body=outcome("ONLY", "Only one", flags={"revenue": "required"}), status=422,
         error="auto_close_limit"),
    case("change-project-outcome-rename-clash", "changeProjectOutcome", "PUT", "/v1/projects/winter/outcomes/PSPARE",
         "would both be called", body=outcome("PSPARE", "Winter deal"), status=409, error="duplicate_outcome"),
    case("change-project-outcome-unknown", "changeProjectOutcome", "PUT", "/v1/projects/winter/outcomes/NOPE",
         "not found in project 'winter'", body=outcome("NOPE", "Nope"), **NOT_FOUND),
    case("project-outcome-enable-auto-close-limit", "setProjectOutcomeState", "POST",
         "/v1/projects/auto/outcomes/OFF_P/enable", "at most one agent outcome", status=422, error="auto_close_limit"),
    case("project-outcome-unknown-verb", "setProjectOutcomeState", "POST", "/v1/projects/winter/outcomes/PSTATE/zap",
         "no action 'zap'", **NOT_FOUND),
    case("project-outcome-unknown", "setProjectOutcomeState", "POST", "/v1/projects/winter/outcomes/NOPE/retire",
         "not found in project 'winter'", **NOT_FOUND),
    case("project-outcome-unknown-project", "setProjectOutcomeState", "POST",
         "/v1/projects/nope/outcomes/PSTATE/retire", "project 'nope' not found", **NOT_FOUND),
    # -- templates, people, keys
    case("template-with-tags-sent-automatically", "saveSmsTemplate", "PUT", "/v1/sms-templates/plain",
         ("SMS_AUTO", "message tags"), body={"body": "Hi {{first_name}}"}, status=422, error="template_has_tags"),
    case("template-id-too-long", "saveSmsTemplate", "PUT", "/v1/sms-templates/" + "t" * 300, "template",
         body={"body": "Hi"}, status=(400, 404, 422), error=None),
    case("team-exists", "createTeam", "POST", "/v1/teams", "team 'red' already exists",
         body={"team_id": "red", "name": "Red"}, status=409, error=None),
    case("team-exists-error-code", "createTeam", "POST", "/v1/teams", "team 'red' already exists",
         body={"team_id": "red", "name": "Red"}, status=409, error=("team_exists", "conflict")),
    case("set-team-unknown-agent", "setAgentTeam", "PUT", "/v1/agents/nobody/team", "agent 'nobody' not found",
         body={"team_id": "red"}, **NOT_FOUND),
    case("set-team-unknown-team", "setAgentTeam", "PUT", "/v1/agents/anna/team", "team 'nope' not found",
         body={"team_id": "nope"}, **NOT_FOUND),
    case("revoke-unknown-key", "revokeKey", "DELETE", "/v1/keys/0123456789ab", "key '0123456789ab' not found",
         **NOT_FOUND),
    case("revoked-api-key", "startCall", "POST", "/v1/calls", "unknown or revoked", body=call("c-revoked"),
         who="revoked", status=401, error="unauthorized"),
    case("basic-auth-instead-of-bearer", "startCall", "POST", "/v1/calls", "Bearer", body=call("c-basic"),
         who="basic", status=401, error="unauthorized"),
    case("rate-limited", "defineGlobalOutcome", "POST", "/v1/outcomes", ("gamma", "limit"), who="limited",
         body=outcome("RATE_X", "Rate x"), status=429, error="rate_limited"),
    # -- calls
    case("start-call-by-admin", "startCall", "POST", "/v1/calls", "may not", body=call("admin-call"), who="admin",
         status=403, error="forbidden"),
    case("start-call-unknown-project", "startCall", "POST", "/v1/calls", "project 'nope' not found",
         body=call("c-x1", project_id="nope"), **NOT_FOUND),
    case("start-call-already-started", "startCall", "POST", "/v1/calls", "already started", body=call("c-done"),
         status=409, error="conflict"),
    case("start-call-unknown-conversation", "startCall", "POST", "/v1/calls", "conversation 'nope' not found",
         body=call("c-x2", conversation_id="nope"), **NOT_FOUND),
    case("start-call-in-closed-conversation", "startCall", "POST", "/v1/calls", "v-closed' is closed",
         body=call("c-x3", conversation_id="v-closed"), status=409, error="conversation_closed"),
    case("start-call-conversation-of-another-project", "startCall", "POST", "/v1/calls", "belongs to project",
         body=call("c-x4", conversation_id="v-strict"), status=422, error="impossible_history"),
    case("start-call-id-with-space", "startCall", "POST", "/v1/calls", "call_id", body=call("c x5")),
    case("start-call-malformed-acting-for", "startCall", "POST", "/v1/calls", "X-Acting-For",
         body=call("c-acting"), headers=(("X-Acting-For", "boss"),), status=400, error="invalid_request"),
    case("start-call-idempotency-key-too-long", "startCall", "POST", "/v1/calls", "Idempotency-Key",
         body=call("c-idem-long"), headers=(("Idempotency-Key", "k" * 201),), status=400, error="invalid_request"),
    case("answered-after-end", "callAnswered", "POST", "/v1/calls/c-ended/answered", "after it ended",
         body={"occurred_at": at(120)}, status=422, error="impossible_history"),
    case("answered-before-start", "callAnswered", "POST", "/v1/calls/c-ringing/answered", "before it started",
         body={"occurred_at": at(-60)}, status=422, error="impossible_history"),
    case("answered-unanswered-call", "callAnswered", "POST", "/v1/calls/c-unans/answered", "unanswered",
         body={"occurred_at": at(30)}, status=422, error="impossible_history"),
    case("answered-again-another-time", "callAnswered", "POST", "/v1/calls/c-done/answered", "already answered",
         body={"occurred_at": at(7)}, status=409, error="fact_conflict"),
    case("answered-unknown-call", "callAnswered", "POST", "/v1/calls/nope/answered", "call 'nope' not found",
         body={"occurred_at": at(7)}, **NOT_FOUND),
    case("agent-connected-before-start", "agentConnected", "POST", "/v1/calls/c-ringing/agent-connected",
         "before it started", body={"occurred_at": at(-5), "agent_id": "anna"}, status=422, error="impossible_history"),
    case("agent-connected-after-end", "agentConnected", "POST", "/v1/calls/c-ended/agent-connected", "after it ended",
         body={"occurred_at": at(200), "agent_id": "anna"}, status=422, error="impossible_history"),
    case("agent-connected-unknown-call", "agentConnected", "POST", "/v1/calls/nope/agent-connected",
         "call 'nope' not found", body={"occurred_at": at(5), "agent_id": "anna"}, **NOT_FOUND),
    case("unanswered-with-person", "callUnanswered", "POST", "/v1/calls/c-ringing/unanswered", "'person'",
         body={"occurred_at": at(20), "telephony_status": "person"}, status=422, error="impossible_history"),
    case("unanswered-answered-call", "callUnanswered", "POST", "/v1/calls/c-done/unanswered", "was answered",
         body={"occurred_at": at(20), "telephony_status": "no_answer"}, status=422, error="impossible_history"),
    case("unanswered-again-other-status", "callUnanswered", "POST", "/v1/calls/c-unans/unanswered", "already reported",
         body={"occurred_at": at(20), "telephony_status": "busy"}, status=409, error="fact_conflict"),
    case("unanswered-before-start", "callUnanswered", "POST", "/v1/calls/c-ringing/unanswered", "before it started",
         body={"occurred_at": at(-5), "telephony_status": "busy"}, status=422, error="impossible_history"),
    case("unanswered-after-end", "callUnanswered", "POST", "/v1/calls/c-bug-unans/unanswered", "ended",
         body={"occurred_at": at(90), "telephony_status": "no_answer"}, status=422, error="impossible_history"),
    case("unanswered-unknown-call", "callUnanswered", "POST", "/v1/calls/nope/unanswered", "call 'nope' not found",
         body={"occurred_at": at(5), "telephony_status": "busy"}, **NOT_FOUND),
    case("ended-before-start", "callEnded", "POST", "/v1/calls/c-ringing/ended", "before it started",
         body={"occurred_at": at(-5)}, status=422, error="impossible_history"),
    case("ended-before-answer", "callEnded", "POST", "/v1/calls/c-live/ended", "before it was answered",
         body={"occurred_at": at(5)}, status=422, error="impossible_history"),
    case("ended-again-another-time", "callEnded", "POST", "/v1/calls/c-done/ended", "already ended",
         body={"occurred_at": at(999)}, status=409, error="fact_conflict"),
    case("ended-unknown-call", "callEnded", "POST", "/v1/calls/nope/ended", "call 'nope' not found",
         body={"occurred_at": at(5)}, **NOT_FOUND),
    case("select-not-in-project", SELECT, "POST", "/v1/calls/c-short/outcome", "not in the active outcome set",
         body=sel("NOPE"), status=422, error="outcome_not_in_project"),
    case("select-hidden-in-project", SELECT, "POST", "/v1/calls/c-short/outcome", "not in the active outcome set",
         body=sel("HIDDEN_S"), status=422, error="outcome_not_in_project"),
    case("select-disabled", SELECT, "POST", "/v1/calls/c-short/outcome", "not in the active outcome set",
         body=sel("NOSALE_OLD"), status=422, error="outcome_not_in_project"),
    case("select-not-applicable", SELECT, "POST", "/v1/calls/c-short/outcome", "does not apply to calls",
         body=sel("CONV_ONLY"), status=422, error="outcome_not_applicable"),
    case("select-system-only-by-agent", SELECT, "POST", "/v1/calls/c-short/outcome", "system-only",
         body=sel("WRAP_UP_TIMEOUT"), status=422, error="outcome_not_selectable"),
    case("select-system-only-by-agent-key", SELECT, "POST", "/v1/calls/c-short/outcome", "system-only",
         body=sel("WRAP_UP_TIMEOUT"), who="agent_key", status=422, error="outcome_not_selectable"),
    case("select-unanswered-outcome-on-answered-call", SELECT, "POST", "/v1/calls/c-short/outcome",
         "no person answered", body=sel("NO_ANSWER"), status=422, error="outcome_not_selectable"),
    case("select-revenue-required-missing", SELECT, "POST", "/v1/calls/c-short/outcome", "requires a revenue",
         body=sel("DEAL"), status=422, error="revenue_required"),
    case("select-revenue-required-zero", SELECT, "POST", "/v1/calls/c-short/outcome", "requires a revenue",
         body=sel("DEAL", revenue="0"), status=422, error="revenue_required"),
    case("select-negative-revenue", SELECT, "POST", "/v1/calls/c-short/outcome", "negative",
         body=sel("TIP", revenue=-5), status=422, error="negative_revenue"),
    case("select-revenue-not-allowed", SELECT, "POST", "/v1/calls/c-short/outcome", "takes no revenue",
         body=sel("NO_SALE", revenue=10), status=422, error="revenue_not_allowed"),
    case("select-call-too-short", SELECT, "POST", "/v1/calls/c-short/outcome", "at least 60s",
         body=sel("LONG_SALE"), status=422, error="call_length_gate"),
    case("select-call-too-long", SELECT, "POST", "/v1/calls/c-short/outcome", "at most 5s",
         body=sel("QUICK"), status=422, error="call_length_gate"),
    case("select-second-outcome", SELECT, "POST", "/v1/calls/c-done/outcome", ("already has outcome", "SALE"),
         body=sel("NO_SALE", occurred_at=at(190)), status=409, error="call_already_has_outcome"),
    case("select-second-outcome-with-idempotency-key", SELECT, "POST", "/v1/calls/c-done/outcome",
         "already has outcome", body=sel("NO_SALE", occurred_at=at(191)), headers=(("Idempotency-Key", "idem-new"),),
         status=409, error="call_already_has_outcome"),  # the refused request's key is not remembered either
    case("select-unknown-call", SELECT, "POST", "/v1/calls/nope/outcome", "call 'nope' not found", body=sel("SALE"),
         **NOT_FOUND),
    case("select-before-call-started", SELECT, "POST", "/v1/calls/c-bug-select/outcome", "before",
         body=sel("NO_SALE", occurred_at=at(-600)), status=422, error="impossible_history"),
    case("correct-by-platform-acting-for-agent", "correctCallOutcome", "POST", "/v1/calls/c-done/correction",
         "acting for a supervisor", body=corr("NO_SALE"), who="agent", status=403, error="forbidden"),
    case("correct-by-platform-as-system", "correctCallOutcome", "POST", "/v1/calls/c-done/correction",
         "acting for a supervisor", body=corr("NO_SALE"), who="system", status=403, error="forbidden"),
    case("correct-nothing-to-correct", "correctCallOutcome", "POST", "/v1/calls/c-short/correction",
         "no outcome to correct", body=corr("NO_SALE"), who="supervisor", status=422, error="nothing_to_correct"),
    case("correct-blank-reason", "correctCallOutcome", "POST", "/v1/calls/c-done/correction", "reason",
         body=corr("NO_SALE", reason="   "), who="supervisor", status=422, error="correction_not_allowed"),
    case("correct-not-in-project", "correctCallOutcome", "POST", "/v1/calls/c-done/correction",
         "not in the active outcome set", body=corr("NOPE"), who="supervisor", status=422,
         error="outcome_not_in_project"),
    case("correct-revenue-required", "correctCallOutcome", "POST", "/v1/calls/c-done/correction", "requires a revenue",
         body=corr("DEAL"), who="supervisor", status=422, error="revenue_required"),
    case("correct-unknown-call", "correctCallOutcome", "POST", "/v1/calls/nope/correction", "call 'nope' not found",
         body=corr("NO_SALE"), who="supervisor", **NOT_FOUND),
    case("reference-unknown-call", "attachCallReference", "POST", "/v1/calls/nope/references", "call 'nope' not found",
         body={"kind": "recording", "reference": "r", "occurred_at": at(5)}, **NOT_FOUND),
    case("idempotency-key-reused-other-body", "attachCallReference", "POST", "/v1/calls/c-done/references",
         ("idem-used", "different request"),
         body={"kind": "recording", "reference": "rec-OTHER", "occurred_at": at(200)},
         headers=(("Idempotency-Key", "idem-used"),), status=422, error="idempotency_key_reused"),
    case("idempotency-key-reused-other-endpoint", "attachConversationReference", "POST",
         "/v1/conversations/v-open/references", ("idem-used", "different request"),
         body={"kind": "recording", "reference": "rec-1", "occurred_at": at(200)},
         headers=(("Idempotency-Key", "idem-used"),), status=422, error="idempotency_key_reused"),
    # -- conversations
    case("start-conversation-exists", "startConversation", "POST", "/v1/conversations", "already started",
         body={"conversation_id": "v-open", "project_id": "winter", "channel": "sms", "occurred_at": at(0)},
         status=409, error="conflict"),
    case("start-conversation-unknown-project", "startConversation", "POST", "/v1/conversations",
         "project 'nope' not found",
         body={"conversation_id": "v-x1", "project_id": "nope", "channel": "sms", "occurred_at": at(0)}, **NOT_FOUND),
    case("message-closed-conversation", "recordMessage", "POST", "/v1/conversations/v-closed/messages", "is closed",
         body={"direction": "received", "channel": "sms", "occurred_at": at(90)}, status=409,
         error="conversation_closed"),
    case("message-before-start", "recordMessage", "POST", "/v1/conversations/v-open/messages", "cannot precede",
         body={"direction": "received", "channel": "sms", "occurred_at": at(-5)}, status=422,
         error="impossible_history"),
    case("message-unknown-conversation", "recordMessage", "POST", "/v1/conversations/nope/messages",
         "conversation 'nope' not found", body={"direction": "received", "channel": "sms", "occurred_at": at(5)},
         **NOT_FOUND),
    case("conversation-select-closed", "selectConversationOutcome", "POST", "/v1/conversations/v-closed/outcome",
         "is closed", body=sel("NO_SALE", occurred_at=at(90)), status=422, error="interaction_closed"),
    case("conversation-select-call-only-outcome", "selectConversationOutcome", "POST",
         "/v1/conversations/v-open/outcome", "does not apply to conversations", body=sel("BUSY"), status=422,
         error="outcome_not_applicable"),
    case("conversation-select-system-only", "selectConversationOutcome", "POST", "/v1/conversations/v-open/outcome",
         "system-only", body=sel("WRAP_UP_TIMEOUT"), status=422, error="outcome_not_selectable"),
    case("conversation-select-revenue-required", "selectConversationOutcome", "POST",
         "/v1/conversations/v-open/outcome", "requires a revenue", body=sel("DEAL", revenue="-0"), status=422,
         error="revenue_required"),
    case("conversation-select-unknown", "selectConversationOutcome", "POST", "/v1/conversations/nope/outcome",
         "conversation 'nope' not found", body=sel("SALE"), **NOT_FOUND),
    case("conversation-select-before-start", "selectConversationOutcome", "POST",
         "/v1/conversations/v-bug-select/outcome", "before", body=sel("SALE", occurred_at=at(-600)), status=422,
         error="impossible_history"),
    case("conversation-correct-nothing", "correctConversationOutcome", "POST", "/v1/conversations/v-open/correction",
         "no outcome to correct", body=corr("NO_SALE"), who="supervisor", status=422, error="nothing_to_correct"),
    case("conversation-correct-by-agent", "correctConversationOutcome", "POST",
         "/v1/conversations/v-closed/correction", "acting for a supervisor", body=corr("NO_SALE"), who="agent",
         status=403, error="forbidden"),
    case("conversation-correct-not-applicable", "correctConversationOutcome", "POST",
         "/v1/conversations/v-closed/correction", "does not apply", body=corr("BUSY"), who="supervisor", status=422,
         error="outcome_not_applicable"),
    case("conversation-correct-unknown", "correctConversationOutcome", "POST", "/v1/conversations/nope/correction",
         "conversation 'nope' not found", body=corr("NO_SALE"), who="supervisor", **NOT_FOUND),
    case("close-closed-conversation", "closeConversation", "POST", "/v1/conversations/v-closed/close",
         "already closed", body={"occurred_at": at(90)}, status=409, error="conversation_closed"),
    case("close-before-start", "closeConversation", "POST", "/v1/conversations/v-open/close", "before it started",
         body={"occurred_at": at(-5)}, status=422, error="impossible_history"),
    case("close-without-outcome-mandatory", "closeConversation", "POST", "/v1/conversations/v-strict/close",
         "needs an outcome", body={"occurred_at": at(90)}, status=422, error="outcome_required"),
    case("close-number-for-occurred_at", "closeConversation", "POST", "/v1/conversations/v-bug-epoch/close",
         "occurred_at", body={"occurred_at": int(T0.timestamp()) + 50}),
    case("close-unknown-conversation", "closeConversation", "POST", "/v1/conversations/nope/close",
         "conversation 'nope' not found", body={"occurred_at": at(90)}, **NOT_FOUND),
    case("conversation-reference-unknown", "attachConversationReference", "POST", "/v1/conversations/nope/references",
         "conversation 'nope' not found", body={"kind": "recording", "reference": "r", "occurred_at": at(5)},
         **NOT_FOUND),
    # -- contacts
    case("contact-unknown-time-zone", "saveContact", "PUT", "/v1/contacts/k2", "Mars/Olympus",
         body={"time_zone": "Mars/Olympus"}, status=422, error="invalid_contact"),
    case("contact-too-many-numbers", "saveContact", "PUT", "/v1/contacts/k2", "numbers",
         body={"numbers": [f"+35840123{i:04d}" for i in range(21)]}),
    case("contact-id-too-long", "saveContact", "PUT", "/v1/contacts/" + "z" * 300, "contact", body={},
         status=(400, 404, 422), error=None),
    case("contact-id-with-space", "saveContact", "PUT", "/v1/contacts/a%20b", "contact", body={},
         status=(400, 404, 422), error=None),
    case("erase-unknown-contact", "eraseContact", "POST", "/v1/contacts/nobody/erase", "contact 'nobody' not found",
         **NOT_FOUND),
    case("erase-contact-id-too-long", "eraseContact", "POST", "/v1/contacts/" + "e" * 300 + "/erase", "contact",
         status=(400, 404), error=None),
    case("opt-out-contact-id-too-long", "contactOptedOut", "POST", "/v1/contacts/" + "y" * 300 + "/opt-out", "contact",
         body={"occurred_at": at(5)}, status=(400, 404, 422), error=None),
    # webhooks
    case("webhook-exists", "registerWebhook", "POST", "/v1/webhooks", "webhook 'crm' already exists",
         body={"webhook_id": "crm", "url": "https://crm.example/again"}, status=409, error="webhook_exists"),
    case("webhook-unknown-project", "registerWebhook", "POST", "/v1/webhooks", "project 'nope' not found",
         body={**HOOK, "project_ids": ["nope"]}, **NOT_FOUND),
    case("webhook-unknown-outcome", "registerWebhook", "POST", "/v1/webhooks", "outcome 'NOPE' not found",
         body={**HOOK, "outcome_codes": ["NOPE"]}, **NOT_FOUND),
    case("webhook-bad-event-type", "registerWebhook", "POST", "/v1/webhooks", "event_types",
         body={**HOOK, "event_types": ["SmsSent"]}),
    case("webhook-url-with-space", "registerWebhook", "POST", "/v1/webhooks", "url",
         body={**HOOK, "url": "https://crm.example/a b"}),
    case("webhook-url-too-long", "registerWebhook", "POST", "/v1/webhooks", "url",
         body={**HOOK, "url": "https://crm.example/" + "a" * 2100}),
    case("webhook-change-unknown", "changeWebhook", "PUT", "/v1/webhooks/nope", "webhook 'nope' not found",
         body={"url": "https://crm.example/v2"}, **NOT_FOUND),
    case("webhook-change-unknown-project", "changeWebhook", "PUT", "/v1/webhooks/crm", "project 'nope' not found",
         body={"url": "https://crm.example/v2", "project_ids": ["nope"]}, **NOT_FOUND),
    case("webhook-rotate-unknown", "rotateWebhookSecret", "POST", "/v1/webhooks/nope/rotate-secret",
         "webhook 'nope' not found", body={}, **NOT_FOUND),
    case("webhook-rotate-negative-grace", "rotateWebhookSecret", "POST", "/v1/webhooks/crm/rotate-secret",
         "grace_seconds", body={"grace_seconds": -1}),
    case("webhook-rotate-grace-as-text", "rotateWebhookSecret", "POST", "/v1/webhooks/crm/rotate-secret",
         ("expected", "grace_seconds"), body={"grace_seconds": "60"}),
    case("webhook-delete-unknown", "deleteWebhook", "DELETE", "/v1/webhooks/nope", "webhook 'nope' not found",
         **NOT_FOUND),
    # sending an SMS draft
    case("send-sms-unknown", "sendSmsDraft", "POST", "/v1/sms/00000000-0000-4000-8000-000000000000/send",
         body=SMS_BODY, says="not found", **NOT_FOUND),
    case("send-sms-not-an-id", "sendSmsDraft", "POST", "/v1/sms/not-an-sms/send", body=SMS_BODY, says="not found",
         **NOT_FOUND),
    case("send-sms-id-of-a-call", "sendSmsDraft", "POST", "/v1/sms/{call_uuid}/send", body=SMS_BODY,
         says="not found", **NOT_FOUND),
    case("send-sms-not-a-draft", "sendSmsDraft", "POST", "/v1/sms/{sms_auto}/send", body=SMS_BODY, status=409,
         error="sms_not_draft", says="not a draft"),
    case("send-sms-tags-left", "sendSmsDraft", "POST", "/v1/sms/{sms_draft}/send", body={"body": "Hi {{offer}}"},
         status=422, error="draft_incomplete", says=("message tag", "{{offer}}")),
    case("send-sms-too-long", "sendSmsDraft", "POST", "/v1/sms/{sms_draft}/send", body={"body": "x" * 1601},
         says=("1600", "`body`")),
    # a flow handing a conversation back
    case("flow-returned-not-with-a-flow", "flowReturned", "POST", "/v1/conversations/v-open/flow-returned",
         body={"flow": "bot", "occurred_at": at(80)}, status=409, error="not_with_flow", says="with no flow"),
    case("flow-returned-another-flow", "flowReturned", "POST", "/v1/conversations/v-flow/flow-returned",
         body={"flow": "other", "occurred_at": at(80)}, status=409, error="not_with_flow", says="not with 'other'"),
    case("flow-returned-unknown", "flowReturned", "POST", "/v1/conversations/nowhere/flow-returned",
         body={"flow": "bot", "occurred_at": at(80)}, says="not found", **NOT_FOUND),
    # follow-up tasks
    case("complete-follow-up-unknown", "completeFollowUp", "POST",
         "/v1/follow-ups/00000000-0000-4000-8000-000000000000/complete", body={}, says="not found", **NOT_FOUND),
    case("complete-follow-up-not-an-id", "completeFollowUp", "POST", "/v1/follow-ups/nope/complete", body={},
         says="not found", **NOT_FOUND),
    case("complete-follow-up-done", "completeFollowUp", "POST", "/v1/follow-ups/{follow_up_done}/complete", body={},
         status=409, error="follow_up_closed", says="completed"),
    case("reassign-follow-up-no-owner", "reassignFollowUp", "POST", "/v1/follow-ups/{follow_up}/reassign", body={},
         status=400, error="invalid_request", says="needs an owner"),
    case("reassign-follow-up-unknown-team", "reassignFollowUp", "POST", "/v1/follow-ups/{follow_up}/reassign",
         body={"owner_team": "nope"}, says="team 'nope' not found", **NOT_FOUND),
    case("reassign-follow-up-done", "reassignFollowUp", "POST", "/v1/follow-ups/{follow_up_done}/reassign",
         body={"owner_agent": "anna"}, status=409, error="follow_up_closed", says="completed"),
    # QA verdicts
    case("verdict-no-outcome", "recordCallVerdict", "POST", "/v1/calls/c-short/verdicts", "no outcome to review",
         body={"verdict": "confirmed"}, status=422, error="nothing_to_review"),
    case("verdict-confirmed-names-another", "recordCallVerdict", "POST", "/v1/calls/c-done/verdicts",
         "confirmed verdict names no", body={"verdict": "confirmed", "should_have_been": "NO_SALE"}, status=422,
         error="invalid_verdict"),
    case("verdict-disputed-names-none", "recordCallVerdict", "POST", "/v1/calls/c-done/verdicts", "should_have_been",
         body={"verdict": "disputed"}, status=422, error="invalid_verdict"),
    case("verdict-should-have-been-itself", "recordCallVerdict", "POST", "/v1/calls/c-done/verdicts",
         ("'SALE'", "under review"), body={"verdict": "disputed", "should_have_been": "SALE"}, status=422,
         error="invalid_verdict"),
    case("verdict-should-have-been-hidden", "recordCallVerdict", "POST", "/v1/calls/c-done/verdicts",
         "not in the active outcome set", body={"verdict": "disputed", "should_have_been": "HIDDEN_S"}, status=422,
         error="outcome_not_in_project"),
    case("verdict-should-have-been-unknown", "recordCallVerdict", "POST", "/v1/calls/c-done/verdicts",
         "'NOPE' is not in the active outcome set", body={"verdict": "disputed", "should_have_been": "NOPE"},
         status=422, error="outcome_not_in_project"),
    case("verdict-by-platform-as-supervisor", "recordCallVerdict", "POST", "/v1/calls/c-done/verdicts", "may not",
         body={"verdict": "confirmed"}, who="supervisor", status=403, error="forbidden"),
    case("verdict-unknown-call", "recordCallVerdict", "POST", "/v1/calls/nope/verdicts", "call 'nope' not found",
         body={"verdict": "confirmed"}, **NOT_FOUND),
    case("conversation-verdict-no-outcome", "recordConversationVerdict", "POST", "/v1/conversations/v-open/verdicts",
         "no outcome to review", body={"verdict": "confirmed"}, status=422, error="nothing_to_review"),
    case("conversation-verdict-disputed-names-none", "recordConversationVerdict", "POST",
         "/v1/conversations/v-closed/verdicts", "should_have_been", body={"verdict": "disputed"}, status=422,
         error="invalid_verdict"),
    # -- what-if: the proposal meets the rules of the real change
    case("what-if-unknown-outcome", "whatIf", "POST", "/v1/what-if",
         "change 1 (change_outcome): outcome 'NOPE' not found",
         body={"changes": [{"op": "change_outcome", "definition": outcome("NOPE", "Nope")}]}, **NOT_FOUND),
    case("what-if-duplicate-code", "whatIf", "POST", "/v1/what-if", ("change 2 (define_outcome)", "already exists"),
         body={"changes": [WHAT_IF["changes"][0], {"op": "define_outcome", "definition": outcome("SALE", "Sale 2")}]},
         status=409, error="duplicate_outcome"),
    case("what-if-unknown-project", "whatIf", "POST", "/v1/what-if", "project 'nowhere' not found",
         body={**WHAT_IF, "project_id": "nowhere"}, **NOT_FOUND),
    case("what-if-unknown-op", "whatIf", "POST", "/v1/what-if", ("invalid value", "op"),
         body={"changes": [{"op": "rename_outcome", "code": "SALE"}]}),
    case("conversation-verdict-unknown", "recordConversationVerdict", "POST", "/v1/conversations/nope/verdicts",
         "conversation 'nope' not found", body={"verdict": "confirmed"}, **NOT_FOUND),
]  # fmt: skip

# -- another tenant's ids: A asks for ids that exist only in tenant B -------------------------------------

B_CALL = {"occurred_at": at(20)}
CROSS = [
    case("change-global", "changeGlobalOutcome", "PUT", "/v1/outcomes/B_ONLY", body=outcome("B_ONLY", "B")),
    case("enable-global", "enableGlobalOutcome", "POST", "/v1/outcomes/B_ONLY/enable"),
    case("disable-global", "disableGlobalOutcome", "POST", "/v1/outcomes/B_ONLY/disable"),
    case("retire-global", "retireGlobalOutcome", "POST", "/v1/outcomes/B_ONLY/retire"),
    case("assign-outcome", "assignOutcome", "PUT", "/v1/outcomes/B_ONLY/assignments/winter"),
    case("assign-to-project", "assignOutcome", "PUT", "/v1/outcomes/ASSIGNABLE/assignments/b-proj"),
    case("unassign-from-project", "unassignOutcome", "DELETE", "/v1/outcomes/ASSIGNABLE/assignments/b-proj"),
    case("define-global-parent", "defineGlobalOutcome", "POST", "/v1/outcomes",
         body=outcome("KID", "Kid", parent="B_ONLY")),
    case("define-global-template", "defineGlobalOutcome", "POST", "/v1/outcomes",
         body=outcome("SMS_B", "Sms b", sms_template="b-tmpl")),
    case("define-global-roll-to-project", "defineGlobalOutcome", "POST", "/v1/outcomes",
         body=outcome("ROLL_B", "Roll b", contact_handling={"roll_to_project": "b-proj"})),
    case("create-project-hiding", "createProject", "POST", "/v1/projects",
         body=project("hider-b", hidden_outcomes=["B_ONLY"])),
    case("change-project", "changeProject", "PUT", "/v1/projects/b-proj", body={"name": "B", "direction": "inbound"}),
    case("hide-in-project", "hideOutcome", "PUT", "/v1/projects/b-proj/hidden-outcomes/SALE"),
    case("hide-outcome", "hideOutcome", "PUT", "/v1/projects/winter/hidden-outcomes/B_ONLY"),
    case("unhide-in-project", "unhideOutcome", "DELETE", "/v1/projects/b-proj/hidden-outcomes/SALE"),
    case("unhide-outcome", "unhideOutcome", "DELETE", "/v1/projects/winter/hidden-outcomes/B_ONLY"),
    case("define-project-outcome", "defineProjectOutcome", "POST", "/v1/projects/b-proj/outcomes",
         body=outcome("PB", "P b")),
    case("change-project-outcome", "changeProjectOutcome", "PUT", "/v1/projects/b-proj/outcomes/BP_ONLY",
         body=outcome("BP_ONLY", "Bp")),
    case("change-project-outcome-same-project-name", "changeProjectOutcome", "PUT",
         "/v1/projects/winter/outcomes/BW_ONLY", body=outcome("BW_ONLY", "Bw")),
    case("project-outcome-state", "setProjectOutcomeState", "POST", "/v1/projects/b-proj/outcomes/BP_ONLY/disable"),
    case("project-outcome-state-same-project-name", "setProjectOutcomeState", "POST",
         "/v1/projects/winter/outcomes/BW_ONLY/retire"),
    case("set-agent-team", "setAgentTeam", "PUT", "/v1/agents/b-agent/team", body={"team_id": None}),
    case("set-agent-team-to", "setAgentTeam", "PUT", "/v1/agents/anna/team", body={"team_id": "b-team"}),
    case("start-call-in-project", "startCall", "POST", "/v1/calls", who="agent",
         body=call("c-y1", project_id="b-proj")),
    case("start-call-in-conversation", "startCall", "POST", "/v1/calls", who="agent",
         body=call("c-y2", conversation_id="b-conv")),
    case("call-answered", "callAnswered", "POST", "/v1/calls/b-call/answered", who="agent", body=B_CALL),
    case("agent-connected", "agentConnected", "POST", "/v1/calls/b-call/agent-connected", who="agent",
         body={**B_CALL, "agent_id": "anna"}),
    case("call-unanswered", "callUnanswered", "POST", "/v1/calls/b-call/unanswered", who="agent",
         body={**B_CALL, "telephony_status": "busy"}),
    case("call-ended", "callEnded", "POST", "/v1/calls/b-call/ended", who="agent", body=B_CALL),
    case("select-call-outcome", SELECT, "POST", "/v1/calls/b-call/outcome", who="agent", body=sel("SALE")),
    case("select-outcome-code", SELECT, "POST", "/v1/calls/c-short/outcome", who="agent", body=sel("B_ONLY"),
         status=422, error="outcome_not_in_project"),
    case("correct-call-outcome", "correctCallOutcome", "POST", "/v1/calls/b-call/correction", who="supervisor",
         body=corr("SALE")),
    case("call-reference", "attachCallReference", "POST", "/v1/calls/b-call/references", who="agent",
         body={"kind": "recording", "reference": "r", "occurred_at": at(20)}),
    case("start-conversation", "startConversation", "POST", "/v1/conversations", who="agent",
         body={"conversation_id": "v-y1", "project_id": "b-proj", "channel": "sms", "occurred_at": at(0)}),
    case("message", "recordMessage", "POST", "/v1/conversations/b-conv/messages", who="agent",
         body={"direction": "received", "channel": "sms", "occurred_at": at(20)}),
    case("select-conversation-outcome", "selectConversationOutcome", "POST", "/v1/conversations/b-conv/outcome",
         who="agent", body=sel("SALE")),
    case("correct-conversation-outcome", "correctConversationOutcome", "POST", "/v1/conversations/b-conv/correction",
         who="supervisor", body=corr("SALE")),
    case("close-conversation", "closeConversation", "POST", "/v1/conversations/b-conv/close", who="agent",
         body=B_CALL),
    case("conversation-reference", "attachConversationReference", "POST", "/v1/conversations/b-conv/references",
         who="agent", body={"kind": "recording", "reference": "r", "occurred_at": at(20)}),
    case("send-sms-draft", "sendSmsDraft", "POST", "/v1/sms/{b_sms}/send", who="agent", body=SMS_BODY),
    case("flow-returned", "flowReturned", "POST", "/v1/conversations/b-conv/flow-returned", who="agent",
         body={"flow": "bot", "occurred_at": at(80)}),
    case("change-webhook", "changeWebhook", "PUT", "/v1/webhooks/b-hook", body={"url": "https://crm.example/v2"}),
    case("rotate-webhook-secret", "rotateWebhookSecret", "POST", "/v1/webhooks/b-hook/rotate-secret", body={}),
    case("delete-webhook", "deleteWebhook", "DELETE", "/v1/webhooks/b-hook"),
    case("erase-contact", "eraseContact", "POST", "/v1/contacts/b-contact/erase"),
    case("register-webhook-project", "registerWebhook", "POST", "/v1/webhooks",
         body={**HOOK, "project_ids": ["b-proj"]}),
    case("register-webhook-outcome", "registerWebhook", "POST", "/v1/webhooks",
         body={**HOOK, "outcome_codes": ["B_ONLY"]}),
    case("complete-follow-up", "completeFollowUp", "POST", "/v1/follow-ups/{b_follow_up}/complete", who="agent",
         body={}),
    case("reassign-follow-up", "reassignFollowUp", "POST", "/v1/follow-ups/{b_follow_up}/reassign",
         who="supervisor", body={"owner_agent": "anna"}),
    case("call-verdict", "recordCallVerdict", "POST", "/v1/calls/b-call/verdicts", who="reviewer_key",
         body={"verdict": "confirmed"}),
    case("call-verdict-should-have-been", "recordCallVerdict", "POST", "/v1/calls/c-done/verdicts",
         who="reviewer_key", body={"verdict": "disputed", "should_have_been": "B_ONLY"}, status=422,
         error="outcome_not_in_project"),
    case("conversation-verdict", "recordConversationVerdict", "POST", "/v1/conversations/b-conv/verdicts",
         who="reviewer_key", body={"verdict": "confirmed"}),
    case("what-if-hide", "whatIf", "POST", "/v1/what-if",
         body={"changes": [{"op": "hide_outcome", "code": "B_ONLY", "project_id": "winter"}]}),
    case("what-if-project", "whatIf", "POST", "/v1/what-if", body={**WHAT_IF, "project_id": "b-proj"}),
]  # fmt: skip
CROSS = [
    Case(
        f"other-tenant-{c.name}",
        c.op,
        c.method,
        c.path,
        body=c.body,
        who=c.who,
        status=c.status if c.status != 400 else 404,
        error=c.error if c.error != "invalid_request" else "not_found",
        says=("not found",) if c.status == 400 else ("not in the active outcome set",),
        same_as_unknown="exact",
    )
    for c in CROSS
] + [
    Case("other-tenant-revoke-key", "revokeKey", "DELETE", "/v1/keys/{b_key_id}", status=404, error="not_found",
         says=("not found",), same_as_unknown="normalised"),
]  # fmt: skip

# -- queries with bad input (their own list: the coverage check below is for writes) --------------
DIAL = "/v1/contacts/k1/dialability?project_id=winter"
QUERIES = [
    Case("dialability-no-api-key", "getDialability", "GET", DIAL, who="none", status=401, error="unauthorized",
         says=("Authorization",)),
    Case("dialability-bad-mode", "getDialability", "GET", DIAL + "&mode=bogus", who="agent", says=("mode",)),
    Case("dialability-bad-number", "getDialability", "GET", DIAL + "&number=12345", who="agent", says=("number",)),
    Case("dialability-missing-project", "getDialability", "GET", "/v1/contacts/k1/dialability", who="agent",
         says=("project_id",)),
    Case("dialability-unknown-project", "getDialability", "GET", "/v1/contacts/k1/dialability?project_id=nope",
         who="agent", says=("project 'nope' not found",), **NOT_FOUND),
    Case("dialability-unknown-contact", "getDialability", "GET", "/v1/contacts/nobody/dialability?project_id=winter",
         who="agent", says=("contact 'nobody' not found",), **NOT_FOUND),
    Case("as-of-no-moment", "getCallAsOf", "GET", "/v1/as-of/calls/c-done", says=("give the moment",)),
    Case("as-of-naive-time", "getCallAsOf", "GET", "/v1/as-of/calls/c-done?at=2026-11-22T09:00:00",
         says=("time zone",)),
    Case("as-of-bad-position", "getOutcomeSetAsOf", "GET", "/v1/as-of/projects/winter/outcome-set?position=0",
         says=("position",)),
    Case("as-of-wrong-role", "getConversationAsOf", "GET", "/v1/as-of/conversations/v-closed?position=1", who="agent",
         status=403, error="forbidden", says=("may not",)),
    Case("as-of-other-tenants-call", "getCallAsOf", "GET", "/v1/as-of/calls/b-call?position=100000",
         says=("call 'b-call' not found",), **NOT_FOUND),
    Case("as-of-other-tenants-project", "getOutcomeSetAsOf", "GET",
         "/v1/as-of/projects/b-proj/outcome-set?position=100000", says=("project 'b-proj' not found",), **NOT_FOUND),
    # history export (auditor only; docs/audit.md)
    Case("export-log-no-api-key", "exportTenantLog", "GET", "/v1/audit/log", who="none", status=401,
         error="unauthorized", says=("Authorization",)),
    Case("export-log-wrong-role-admin", "exportTenantLog", "GET", "/v1/audit/log", status=403, error="forbidden",
         says=("may not export history",)),
    Case("export-log-negative-after", "exportTenantLog", "GET", "/v1/audit/log?after=-1", who="auditor_key",
         says=("after",)),
    Case("export-log-after-not-a-number", "exportTenantLog", "GET", "/v1/audit/log?after=ten", who="auditor_key",
         says=("after",)),
    Case("export-log-zero-limit", "exportTenantLog", "GET", "/v1/audit/log?limit=0", who="auditor_key",
         says=("limit",)),
    Case("export-history-wrong-role-manager", "exportAggregateHistory", "GET", "/v1/audit/history?kind=call&id=c1",
         who="manager_key", status=403, error="forbidden", says=("may not export history",)),
    Case("export-history-missing-kind", "exportAggregateHistory", "GET", "/v1/audit/history?id=c1", who="auditor_key",
         says=("kind",)),
    Case("export-history-bad-kind", "exportAggregateHistory", "GET", "/v1/audit/history?kind=bogus&id=c1",
         who="auditor_key", says=("kind",)),
    Case("export-history-missing-id", "exportAggregateHistory", "GET", "/v1/audit/history?kind=call",
         who="auditor_key", says=("call's id", "parameter id")),
    Case("export-history-catalogue-with-id", "exportAggregateHistory", "GET",
         "/v1/audit/history?kind=catalogue&id=x", who="auditor_key", says=("give no id",)),
    Case("export-history-bad-after", "exportAggregateHistory", "GET", "/v1/audit/history?kind=call&id=c1&after=-5",
         who="auditor_key", says=("after",)),
    Case("export-history-limit-too-big", "exportAggregateHistory", "GET",
         "/v1/audit/history?kind=call&id=c1&limit=9999999", who="auditor_key", says=("limit",)),
    Case("export-history-unknown-call", "exportAggregateHistory", "GET", "/v1/audit/history?kind=call&id=nobody",
         who="auditor_key", says=("call 'nobody' not found",), **NOT_FOUND),
]  # fmt: skip

CASES: list[Case] = [c for o in OPS for c in generic_cases(o)] + RULES + CROSS + QUERIES
assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"


# -- the world -----------------------------------------------------------------------------------------------


@dataclass
class World:
    runtime: Runtime
    client: TestClient[Any]
    redis: redis.Redis
    prefix: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    #: A's answers, before tenant B existed, to the requests that name B's ids
    unknown: dict[str, bytes] = field(default_factory=dict)

    def send(self, c: Case, path: str | None = None) -> httpx.Response:
        headers = {**self.headers[c.who], **dict(c.headers)}
        kwargs: dict[str, Any] = {}
        if isinstance(c.body, bytes):
            kwargs["content"] = c.body
            headers["Content-Type"] = "application/json"
        elif c.body is not NO_BODY:
            kwargs["json"] = c.body
        return self.client.request(c.method, path or c.path.format(**self.ids), headers=headers, **kwargs)


def _ok(r: httpx.Response) -> dict[str, Any]:
    assert 200 <= r.status_code < 300, f"setup: {r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    body: dict[str, Any] = r.json()
    return body


def _build_acme(w: World, post: Any, put: Any) -> None:
    a, p = "admin", "agent"
    for role in ("platform", "agent", "supervisor", "manager", "reviewer", "auditor"):
        w.headers[f"{role}_key"] = {"Authorization": f"Bearer {post(a, '/v1/keys', {'role': role})['secret']}"}
    w.ids["spare_key_id"] = post(a, "/v1/keys", {"role": "reviewer"})["key_id"]
    revoked = post(a, "/v1/keys", {"role": "platform"})
    w.client.delete(f"/v1/keys/{revoked['key_id']}", headers=w.headers[a])
    w.headers["revoked"] = {"Authorization": f"Bearer {revoked['secret']}"}
    w.headers["basic"] = {"Authorization": "Basic YWRtaW46YWRtaW4="}
    platform = w.headers.pop("platform_key")["Authorization"]
    w.headers["agent"] = {"Authorization": platform, "X-Acting-For": "agent:anna"}
    w.headers["supervisor"] = {"Authorization": platform, "X-Acting-For": "supervisor:sue"}
    w.headers["system"] = {"Authorization": platform}

    # an auto-close project first: global outcomes defined later are left hidden in it (PRODUCT.md §1)
    post(a, "/v1/projects", project("auto", auto_close_without_outcome=True, hide_busy=True))
    post(a, "/v1/projects/auto/outcomes", outcome("ONLY", "Only one"))
    post(a, "/v1/projects/auto/outcomes", outcome("OFF_P", "Off in auto", enabled=False))
    put(a, "/v1/sms-templates/plain", {"body": "Thanks for calling"})
    put(a, "/v1/sms-templates/tagged", {"body": "Hi {{name}}"})
    for body in (
        outcome("SALE", "Sale", shortcut_key="s", flags={"contact": True, "success": True}),
        outcome("NO_SALE", "No sale"),
        outcome("DEAL", "Deal", flags={"revenue": "required"}),
        outcome("TIP", "Tip", flags={"revenue": "optional"}),
        outcome("LONG_SALE", "Long sale", min_call_seconds=60),
        outcome("QUICK", "Quick", max_call_seconds=5),
        outcome("CONV_ONLY", "Conversation only", applies_to=["conversation"]),
        outcome("SALE_CHILD", "Sale child", parent="SALE"),
        outcome("SMS_AUTO", "Sms auto", sms_template="plain", auto_send=True),
        outcome("SPARE_D", "Spare to disable"),
        outcome("SPARE_R", "Spare to retire"),
        outcome("RETIRED_X", "Retired one"),
        outcome("OFF_E", "Spare to enable", enabled=False),
        outcome("NOSALE_OLD", "NO SALE", enabled=False),
        outcome("HIDE_ME", "Hide me"),
        outcome("HIDDEN_U", "Hidden to unhide"),
        outcome("HIDDEN_S", "Hidden from selection"),
        outcome("ASSIGNABLE", "Assignable", availability="assigned"),
        outcome("DUP_ASSIGN", "Winter deal", availability="assigned"),
    ):
        post(a, "/v1/outcomes", body)
    post(a, "/v1/outcomes/RETIRED_X/retire")
    post(a, "/v1/projects", project("winter"))
    post(a, "/v1/projects", project("strict", direction="inbound", wrap_up={"mode": "mandatory"}))
    post(a, "/v1/projects", project("assigned-p"))
    post(a, "/v1/projects", project("p-hid", hidden_outcomes=["SALE"]))
    post(a, "/v1/projects/p-hid/outcomes", outcome("PSALE", "Sale"))
    for code in ("PSPARE", "PSTATE", "WDEAL"):
        post(a, "/v1/projects/winter/outcomes", outcome(code, {"WDEAL": "Winter deal"}.get(code, code.title())))
    put(a, "/v1/outcomes/ASSIGNABLE/assignments/assigned-p")
    put(a, "/v1/projects/winter/hidden-outcomes/HIDDEN_U")
    put(a, "/v1/projects/winter/hidden-outcomes/HIDDEN_S")
    post(a, "/v1/agents", {"agent_id": "anna", "name": "Anna"})
    post(a, "/v1/teams", {"team_id": "red", "name": "Red"})
    for hook in ("crm", "spare-hook"):
        post(a, "/v1/webhooks", {"webhook_id": hook, "url": f"https://crm.example/{hook}"})
    put(p, "/v1/contacts/k1", {"name": "Ann", "numbers": ["+358401234567"]})

    def conversation(conversation_id: str, project_id: str = "winter") -> None:
        post(p, "/v1/conversations", {"conversation_id": conversation_id, "project_id": project_id, "channel": "sms",
                                      "occurred_at": at(0)})  # fmt: skip

    for call_id, facts in {
        "c-ringing": [],
        "c-live": [("answered", 10)],
        "c-done": [("answered", 5), ("ended", 180)],
        "c-short": [("answered", 1), ("ended", 10)],
        "c-ended": [("ended", 60)],
        "c-bug-select": [("ended", 30)],
        "c-bug-unans": [("ended", 30)],
    }.items():
        post(p, "/v1/calls", call(call_id))
        for fact, seconds in facts:
            post(p, f"/v1/calls/{call_id}/{fact}", {"occurred_at": at(seconds)})
    post(p, "/v1/calls", call("c-unans"))
    post(p, "/v1/calls/c-unans/unanswered", {"occurred_at": at(20), "telephony_status": "no_answer"})
    post(p, "/v1/calls/c-done/outcome", sel("SALE", occurred_at=at(185)))
    reference = {"kind": "recording", "reference": "rec-1", "occurred_at": at(200)}
    post(p, "/v1/calls/c-done/references", reference, {"Idempotency-Key": "idem-used"})
    for conversation_id in ("v-open", "v-closed", "v-bug-select", "v-bug-epoch"):
        conversation(conversation_id)
    conversation("v-strict", "strict")
    post(p, "/v1/conversations/v-closed/outcome", sel("SALE", occurred_at=at(60)))

    # a conversation with a flow (a bot)
    post(a, "/v1/projects", project("p-flow"))
    bot = outcome("TO_BOT", "To bot", redirect_to_flow="bot", applies_to=["conversation"])
    post(a, "/v1/projects/p-flow/outcomes", bot)
    conversation("v-flow", "p-flow")
    post(p, "/v1/conversations/v-flow/outcome", sel("TO_BOT", occurred_at=at(70)))

    # follow-up tasks: one open, one done
    post(a, "/v1/outcomes", outcome("FOLLOW", "Follow", follow_up={"owner_team": "red", "due_within_seconds": 3600}))
    for call_id in ("c-follow", "c-follow-done"):
        post(p, "/v1/calls", call(call_id))
        post(p, f"/v1/calls/{call_id}/ended", {"occurred_at": at(60)})
        post(p, f"/v1/calls/{call_id}/outcome", sel("FOLLOW", occurred_at=at(65)))
    FollowUpPlanner(w.runtime.settings).run_once()
    for name, call_id in (("follow_up", "c-follow"), ("follow_up_done", "c-follow-done")):
        w.ids[name] = caused("acme", "follow-up", call_id)
    post(p, f"/v1/follow-ups/{w.ids['follow_up_done']}/complete", {"note": "done"})
    w.ids["b_follow_up"] = caused("beta", "follow-up", "b-follow-call")

    # SMS: a draft waiting for the agent, and one that goes by itself
    put(a, "/v1/sms-templates/draftable", {"body": "Hi {{contact.name}}, {{offer}}"})
    post(a, "/v1/outcomes", outcome("SMS_DRAFT", "Sms draft", sms_template="draftable"))
    for call_id, code in (("c-sms-draft", "SMS_DRAFT"), ("c-sms-auto", "SMS_AUTO")):
        post(p, "/v1/calls", call(call_id, contact_id="k1", contact_number="+358401234567"))
        post(p, f"/v1/calls/{call_id}/ended", {"occurred_at": at(60)})
        post(p, f"/v1/calls/{call_id}/outcome", sel(code, occurred_at=at(65)))
    SmsPlanner(w.runtime.settings).run_once()
    for name, call_id in (("sms_draft", "c-sms-draft"), ("sms_auto", "c-sms-auto")):
        w.ids[name] = caused("acme", "sms", call_id)
    w.ids["call_uuid"] = str(aggregate_id("acme", "call", "c-sms-draft"))
    w.ids["b_sms"] = caused("beta", "sms", "b-sms-call")  # named before tenant B exists: the same for any reader


def _build_beta(w: World, post: Any, put: Any) -> None:
    b, bp = "b_admin", "b_agent"
    w.ids["b_key_id"] = post(b, "/v1/keys", {"role": "manager"})["key_id"]
    w.headers[bp] = {"Authorization": f"Bearer {post(b, '/v1/keys', {'role': 'platform'})['secret']}",
                     "X-Acting-For": "agent:bob"}  # fmt: skip
    post(b, "/v1/outcomes", outcome("B_ONLY", "B only"))
    post(b, "/v1/projects", project("b-proj"))
    post(b, "/v1/projects", project("winter"))  # the same project id as A's
    post(b, "/v1/projects/b-proj/outcomes", outcome("BP_ONLY", "Bp only"))
    post(b, "/v1/projects/winter/outcomes", outcome("BW_ONLY", "Bw only"))
    put(b, "/v1/sms-templates/b-tmpl", {"body": "B says hi"})
    post(b, "/v1/agents", {"agent_id": "b-agent", "name": "Bob"})
    post(b, "/v1/teams", {"team_id": "b-team", "name": "Blue"})
    post(b, "/v1/webhooks", {"webhook_id": "b-hook", "url": "https://crm.example/b"})
    put(bp, "/v1/contacts/b-contact", {"name": "Bea", "numbers": ["+358401234599"]})
    post(bp, "/v1/calls", call("b-call", project_id="b-proj"))
    post(bp, "/v1/calls/b-call/ended", {"occurred_at": at(60)})
    post(bp, "/v1/calls/b-call/outcome", sel("B_ONLY", occurred_at=at(65)))
    post(bp, "/v1/conversations", {"conversation_id": "b-conv", "project_id": "b-proj", "channel": "sms",
                                   "occurred_at": at(0)})  # fmt: skip
    post(bp, "/v1/conversations/b-conv/outcome", sel("B_ONLY", occurred_at=at(30)))
    post(b, "/v1/outcomes", outcome("B_SMS", "B sms", sms_template="b-tmpl"))
    post(bp, "/v1/calls", call("b-sms-call", project_id="b-proj", contact_number="+358401234567"))
    post(bp, "/v1/calls/b-sms-call/ended", {"occurred_at": at(60)})
    post(bp, "/v1/calls/b-sms-call/outcome", sel("B_SMS", occurred_at=at(65)))
    post(b, "/v1/outcomes", outcome("B_FOLLOW", "B follow", follow_up={"owner_team": "b-team"}))
    post(bp, "/v1/calls", call("b-follow-call", project_id="b-proj"))
    post(bp, "/v1/calls/b-follow-call/ended", {"occurred_at": at(60)})
    post(bp, "/v1/calls/b-follow-call/outcome", sel("B_FOLLOW", occurred_at=at(65)))
    SmsPlanner(w.runtime.settings).run_once()
    FollowUpPlanner(w.runtime.settings).run_once()
    ledger = w.runtime.ledger("beta")
    assert ledger.sms("beta", uuid.UUID(w.ids["b_sms"])).status == "draft"
    assert ledger.follow_up("beta", uuid.UUID(w.ids["b_follow_up"])).status == "open"


def caused(tenant: str, kind: str, call_id: str) -> str:
    """The id of what a call's outcome caused (an SMS, a follow-up): named after the
    selection, the call's third event (started, ended, outcome)."""
    return str(aggregate_id(tenant, kind, f"{aggregate_id(tenant, 'call', call_id)}/3"))


@pytest.fixture(scope="module")
def world(redis_url: str) -> Iterator[World]:
    prefix = "bad" + uuid.uuid4().hex[:8]
    runtime = Runtime(Settings(redis_url=redis_url, shard="s" + uuid.uuid4().hex[:10], key_prefix=prefix))
    _, acme_admin = runtime.create_tenant("acme", "Acme")
    _, gamma_admin = runtime.create_tenant("gamma", "Gamma")
    runtime.registry.set_rate_limit("gamma", 0)
    try:
        with TestClient(create_app(runtime)) as client:
            w = World(runtime, client, runtime.client, prefix + ":")
            w.headers |= {
                "none": {},
                "bad_key": {"Authorization": "Bearer olk_000000000000_not-a-key"},
                "admin": {"Authorization": f"Bearer {acme_admin}"},
                "limited": {"Authorization": f"Bearer {gamma_admin}"},
            }

            def post(who: str, path: str, body: Any = NO_BODY, headers: dict[str, str] | None = None) -> Any:
                kwargs = {} if body is NO_BODY else {"json": body}
                return _ok(client.post(path, headers={**w.headers[who], **(headers or {})}, **kwargs))

            def put(who: str, path: str, body: Any = NO_BODY) -> Any:
                kwargs = {} if body is NO_BODY else {"json": body}
                return _ok(client.put(path, headers=w.headers[who], **kwargs))

            _build_acme(w, post, put)
            # A's answers while B's ids exist nowhere
            for c in CASES:
                if c.same_as_unknown == "exact":
                    r = w.send(c)
                    assert r.status_code == c.status, f"{c.name} before tenant B existed: {r.status_code} {r.text}"
                    w.unknown[c.name] = r.content
            _, beta_admin = runtime.create_tenant("beta", "Beta")
            w.headers["b_admin"] = {"Authorization": f"Bearer {beta_admin}"}
            _build_beta(w, post, put)
            yield w
    finally:
        runtime.close()


def _params() -> list[Any]:
    return [
        pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []) for c in CASES
    ]


@pytest.mark.parametrize("c", _params())
def test_bad_input_is_refused_and_writes_nothing(world: World, c: Case) -> None:
    before = snapshot(world.redis, world.prefix)
    r = world.send(c)
    changes = diff(before, snapshot(world.redis, world.prefix))
    statuses = c.status if isinstance(c.status, tuple) else (c.status,)
    assert r.status_code in statuses, f"expected {statuses}, got {r.status_code}: {r.text[:500]}; Redis: {changes}"
    assert 400 <= r.status_code < 500
    assert not changes, "a refused request changed Redis:\n" + "\n".join(changes)
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    body = r.json()
    assert body["status"] == r.status_code
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert isinstance(body["error"], str) and body["error"], body
    if c.error is not None:
        assert body["error"] in ((c.error,) if isinstance(c.error, str) else c.error), body
    for words in c.says:
        assert words.lower() in body["message"].lower(), f"the message does not say {words!r}: {body['message']!r}"
    if c.same_as_unknown == "exact":
        assert r.content == world.unknown[c.name], (
            "another tenant's id is told apart from an unknown one:\n"
            f"  unknown: {world.unknown[c.name]!r}\n  other's: {r.content!r}"
        )
    elif c.same_as_unknown == "normalised":
        other_id = world.ids["b_key_id"]
        nowhere = uuid.uuid4().hex[:12]
        unknown = world.send(c, c.path.format(**{**world.ids, "b_key_id": nowhere}))
        assert (r.status_code, r.text.replace(other_id, "<id>")) == (
            unknown.status_code,
            unknown.text.replace(nowhere, "<id>"),
        )


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def test_every_write_endpoint_is_covered(world: World) -> None:
    """A write endpoint without bad-input cases fails the suite."""
    document = world.client.get("/schema/openapi.json").json()
    writes = {
        op["operationId"]: (method.upper(), path, "requestBody" in op)
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method, op in item.items()
        if method in {"post", "put", "delete", "patch"}
    }
    written = [c for c in CASES if c not in QUERIES]
    assert {c.op for c in written} == set(writes), "write operations without bad-input cases, or cases of none"
    assert set(OP_BY_ID) == set(writes), "every write operation needs an Op (its generic bad-input cases)"
    for c in written:
        method, path, _ = writes[c.op]
        concrete = c.path.format(**world.ids).split("?")[0]
        assert c.method == method and _template(path).match(concrete), f"{c.name}: {c.method} {concrete} is not {c.op}"
    for o in OPS:
        assert writes[o.op][2] == (o.body is not None), f"{o.op}: the document and the Op disagree about a body"
        kinds = {c.name.removeprefix(o.op + "-").split("-")[0] for c in CASES if c.name.startswith(o.op + "-")}
        needed = {"no", "unknown", "wrong", "oversized"}
        needed |= {"malformed", "empty", "not"} if o.body is not None else set()
        needed |= {"missing"} if o.required else set()
        assert needed <= kinds, f"{o.op} lacks {needed - kinds}"


def test_another_tenants_ids_do_not_block_or_leak(world: World) -> None:
    """Ids and idempotency keys live in the tenant's namespace: the same ones in another tenant never refuse
    a write (a refusal would tell one tenant that another has the id)."""
    c = world.client
    tenants = {}
    for tenant in ("delta", "epsilon"):
        _, secret = world.runtime.create_tenant(tenant, tenant.title())
        admin = {"Authorization": f"Bearer {secret}"}
        platform = _ok(c.post("/v1/keys", headers=admin, json={"role": "platform"}))["secret"]
        tenants[tenant] = admin, {"Authorization": f"Bearer {platform}", "X-Acting-For": "agent:anna"}
    for tenant, (admin, agent) in tenants.items():  # the second tenant sends what the first sent
        for path, body in (
            ("/v1/outcomes", outcome("SHARED", "Shared")),
            ("/v1/projects", project("shared")),
            ("/v1/projects/shared/outcomes", outcome("SHARED_P", "Shared p")),
            ("/v1/teams", {"team_id": "shared-team", "name": "Shared"}),
            ("/v1/keys", {"role": "manager"}),
        ):
            r = c.post(path, headers=admin, json=body)
            assert r.status_code == 201, f"{tenant} {path}: {r.status_code} {r.text}"
        keyed = {**agent, "Idempotency-Key": "shared-key"}  # the same key, another body (agent_id) per tenant
        for path, body in (
            ("/v1/calls", call("shared-call", project_id="shared", agent_id=tenant)),
            ("/v1/conversations", {"conversation_id": "shared-conv", "project_id": "shared", "channel": "sms",
                                   "occurred_at": at(0)}),
        ):  # fmt: skip
            r = c.post(path, headers=keyed if path == "/v1/calls" else agent, json=body)
            assert r.status_code == 201, f"{tenant} {path}: {r.status_code} {r.text}"
        r = c.post("/v1/calls/shared-call/outcome", headers=agent, json=sel("SHARED_P"))
        assert r.status_code == 201, f"{tenant}: {r.status_code} {r.text}"
