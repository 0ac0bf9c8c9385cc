"""Rules of PRODUCT.md §1-2 not covered elsewhere: interaction rules with plain values, then the
rules that live in the application and API layers (tenants, keys, roles, rate limits, search, the
picker, outcome-set conflicts, the CLI) against a real Redis. docs/rules.md maps the seed
statements and PRODUCT rules to these tests."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from events.codec import DomainEvent
from events.types import (
    AgentTeamChanged,
    ContactHandling,
    ConversationClosed,
    DoNotCallSpec,
    FlowRedirected,
    MessageRecorded,
    OutcomeCorrected,
    OutcomeDefinition,
    OutcomeFlags,
    OutcomeSelected,
    ProjectSettings,
    RecordingAttached,
    WrapUp,
)
from projections.base import current
from projections.outcome_counts import outcome_counts
from services.api.app import create_app
from services.catalogue import Catalogue, apply
from services.cli import main as cli
from services.errors import (
    CallAlreadyHasOutcome,
    CallTooShort,
    ConversationIsClosed,
    ImpossibleHistory,
    InteractionIsClosed,
    NegativeRevenue,
    OutcomeNotInProject,
    OutcomeNotSelectable,
    OutcomeRequired,
    OutcomeSetChanged,
)
from services.interactions import Call, Conversation, aggregate_id, project_call, project_conversation
from services.permissions import Action, Role, may
from services.rules import Context
from services.rules import config as config_rules
from services.rules import interactions as rules
from services.rules.interactions import Choice
from services.runtime import Runtime
from tests.helpers import call_with_outcome, new_runtime, seed_project
from workers.projections import ProjectionRunner

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ADMIN = Context("acme", "admin:k1", T0)
PLATFORM = Context("acme", "system", T0)
AGENT = Context("acme", "agent:anna", T0)
SUPERVISOR = Context("acme", "supervisor:sam", T0)
BUILT_INS = {"BUSY", "NO_ANSWER", "ANSWERING_MACHINE", "FAX_MODEM", "DROPPED", "OPERATOR_INTERCEPT", "WRAP_UP_TIMEOUT"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# == interaction rules, plain values ================================================================


def build(catalogue: Catalogue | None, events: Sequence[DomainEvent]) -> Catalogue:
    for e in events:
        catalogue = apply(e, catalogue)
    assert catalogue is not None
    return catalogue


def world(
    settings: ProjectSettings | None = None,
    *outcomes: OutcomeDefinition,
    project_outcomes: Sequence[OutcomeDefinition] = (),
    hidden: Sequence[str] = (),
) -> Catalogue:
    c = build(None, config_rules.create_tenant(uuid.uuid4(), ADMIN, "Acme", "UTC"))
    for d in outcomes:
        c = build(c, config_rules.define_outcome(c, ADMIN, d))
    project = settings or ProjectSettings(name="P", direction="outbound")
    c = build(c, config_rules.create_project(c, ADMIN, "p1", project, hidden))
    for d in project_outcomes:
        c = build(c, config_rules.define_outcome(c, ADMIN, d, project_id="p1"))
    return c


def fold_call(call: Call, events: Sequence[DomainEvent]) -> Call:
    folded = project_call(call, [e for e in events if e.originator_id == call.id])
    assert folded is not None
    return folded


def fold_conv(conv: Conversation, events: Sequence[DomainEvent]) -> Conversation:
    folded = project_conversation(conv, [e for e in events if e.originator_id == conv.id])
    assert folded is not None
    return folded


def new_call(
    c: Catalogue,
    *,
    answered: bool = True,
    ended: float | None = 120,
    conv: Conversation | None = None,
    call_id: str = "c1",
    agent_id: str | None = "anna",
) -> Call:
    call = project_call(
        None,
        rules.start_call(
            c,
            PLATFORM,
            call_id=call_id,
            project_id="p1",
            direction="outbound",
            occurred_at=T0,
            conversation=conv,
            agent_id=agent_id,
        ),
    )
    assert call is not None
    if answered:
        call = fold_call(call, rules.answer_call(call, PLATFORM, occurred_at=at(5), agent_id=agent_id))
    if ended is not None:
        call = fold_call(
            call,
            rules.end_call(
                c, call, PLATFORM, occurred_at=at(ended), termination_reason="agent_hangup", conversation=conv
            ),
        )
    return call


def new_conversation(c: Catalogue, channel: str = "sms") -> Conversation:
    conv = project_conversation(
        None,
        rules.start_conversation(
            c, PLATFORM, conversation_id="v1", project_id="p1", channel=channel, occurred_at=T0, contact_id="k1"
        ),
    )
    assert conv is not None
    return conv


SALE = OutcomeDefinition(
    code="SALE", name="Sale", flags=OutcomeFlags(contact=True, success=True, revenue="optional"), max_call_seconds=600
)
CLOSER = OutcomeDefinition(code="RESOLVED", name="Resolved", close_conversation_with_call=True)
KEEP = OutcomeDefinition(code="INFO", name="Info given", keeps_conversation_active=True)
LATE = OutcomeDefinition(code="ACCEPTED", name="Client accepted", selectable_after_interaction=True)
CALLBACK = OutcomeDefinition(code="CALLBACK", name="Callback")


def test_a_conversation_holds_calls_and_messages_on_any_channel() -> None:
    c = world()
    conv = new_conversation(c, channel="whatsapp")
    for i, channel in enumerate(("whatsapp", "sms", "email")):
        [msg] = rules.record_message(
            conv, PLATFORM, direction="received", channel=channel, occurred_at=at(i), body="hello"
        )
        assert isinstance(msg, MessageRecorded) and msg.channel == channel
        conv = fold_conv(conv, [msg])
    call = new_call(c, conv=conv)
    assert call.conversation_id == "v1" and not conv.closed


def test_a_call_joins_only_an_open_conversation_of_its_own_project() -> None:
    c = world(ProjectSettings(name="P", direction="outbound", wrap_up=WrapUp(mode="optional")))
    c = build(c, config_rules.create_project(c, ADMIN, "p2", ProjectSettings(name="P2", direction="inbound")))
    conv = new_conversation(c)
    with pytest.raises(ImpossibleHistory, match="belongs to project 'p1'"):
        rules.start_call(
            c, PLATFORM, call_id="c9", project_id="p2", direction="inbound", occurred_at=T0, conversation=conv
        )
    closed = fold_conv(conv, rules.close_conversation(c, conv, AGENT, occurred_at=at(10)))
    with pytest.raises(ConversationIsClosed):
        rules.start_call(
            c, PLATFORM, call_id="c9", project_id="p1", direction="inbound", occurred_at=at(20), conversation=closed
        )


def test_an_outbound_call_may_have_no_agent_until_one_is_connected() -> None:
    c = world()
    call = new_call(c, ended=None, agent_id=None)  # predictive dialling: the dialer answers first
    assert call.agent_id is None and call.answered
    call = fold_call(call, rules.connect_agent(call, PLATFORM, occurred_at=at(8), agent_id="anna"))
    assert call.agent_id == "anna" and call.agent_connected_at == at(8)
    with pytest.raises(ImpossibleHistory, match="before it started"):
        rules.connect_agent(call, PLATFORM, occurred_at=at(-1), agent_id="bob")


def test_the_call_keeps_its_termination_reason() -> None:
    c = world()
    call = new_call(c)
    assert call.termination_reason == "agent_hangup" and call.ended_at == at(120)


def test_recordings_and_transcripts_may_arrive_after_close() -> None:
    c = world(ProjectSettings(name="P", direction="outbound", wrap_up=WrapUp(mode="optional")), SALE)
    conv = new_conversation(c)
    conv = fold_conv(conv, rules.close_conversation(c, conv, AGENT, occurred_at=at(30)))
    [ref] = rules.attach_reference(conv, PLATFORM, kind="transcript", reference="s3://t/v1.txt", occurred_at=at(900))
    assert isinstance(ref, RecordingAttached) and fold_conv(conv, [ref]).references == ("s3://t/v1.txt",)
    call = new_call(c)
    call = fold_call(call, rules.select_outcome(c, call, AGENT, Choice("SALE", at(130))))
    [rec] = rules.attach_reference(call, PLATFORM, kind="recording", reference="rec-1", occurred_at=at(3600))
    assert fold_call(call, [rec]).references == ("rec-1",)


def test_the_telephony_status_comes_from_the_facts_and_from_the_outcome_only_when_none_was_reported() -> None:
    gated = OutcomeDefinition(code="MACHINE_MSG", name="Left message", telephony_status="answering_machine")
    c = world(None, gated, SALE)
    # reported by the platform: the facts win over what the outcome implies
    answered = new_call(c)
    answered = fold_call(answered, rules.select_outcome(c, answered, AGENT, Choice("MACHINE_MSG", at(130))))
    assert answered.telephony_status == "person"
    unanswered = new_call(c, answered=False, ended=None, call_id="c2")
    unanswered = fold_call(
        unanswered,
        rules.call_unanswered(c, unanswered, PLATFORM, occurred_at=at(20), status="busy", conversation=None),
    )
    assert unanswered.telephony_status == "busy"
    # none reported: the outcome's implied status, kept apart from the business result
    silent = new_call(c, answered=False, ended=60, call_id="c3")
    assert silent.telephony_status is None
    silent = fold_call(silent, rules.select_outcome(c, silent, AGENT, Choice("MACHINE_MSG", at(70))))
    assert silent.telephony_status == "answering_machine" and silent.outcome is not None
    assert silent.outcome.code == "MACHINE_MSG"


def test_the_dialer_applies_unanswered_call_outcomes_as_system_on_calls_without_an_agent() -> None:
    c = world()
    call = new_call(c, answered=False, ended=None, agent_id=None)
    call = fold_call(
        call, rules.call_unanswered(c, call, PLATFORM, occurred_at=at(25), status="no_answer", conversation=None)
    )
    [selected] = rules.select_outcome(c, call, PLATFORM, Choice("NO_ANSWER", at(26)))
    assert isinstance(selected, OutcomeSelected) and selected.actor == "system" and selected.agent_id is None
    assert selected.definition.unanswered


def test_only_outcomes_in_the_active_set_now_can_be_selected() -> None:
    c = world(None, SALE, CALLBACK, project_outcomes=[OutcomeDefinition(code="LOCAL", name="Local")])
    c = build(c, config_rules.create_project(c, ADMIN, "p2", ProjectSettings(name="P2", direction="inbound")))
    c = build(c, config_rules.define_outcome(c, ADMIN, OutcomeDefinition(code="OTHER", name="Other"), project_id="p2"))
    call = new_call(c)
    assert rules.select_outcome(c, call, AGENT, Choice("LOCAL", at(130)))
    with pytest.raises(OutcomeNotInProject):
        rules.select_outcome(c, call, AGENT, Choice("OTHER", at(130)))  # another project's outcome
    disabled = build(c, config_rules.set_enabled(c, ADMIN, "SALE", False))
    with pytest.raises(OutcomeNotInProject):
        rules.select_outcome(disabled, call, AGENT, Choice("SALE", at(130)))
    hidden = build(c, config_rules.hide_outcome(c, ADMIN, "CALLBACK", "p1"))
    with pytest.raises(OutcomeNotInProject):
        rules.select_outcome(hidden, call, AGENT, Choice("CALLBACK", at(130)))
    retired = build(c, config_rules.retire_outcome(c, ADMIN, "LOCAL", project_id="p1"))
    with pytest.raises(OutcomeNotInProject):
        rules.select_outcome(retired, call, AGENT, Choice("LOCAL", at(130)))


def test_optional_revenue_may_be_given_or_left_out_but_is_never_negative() -> None:
    c = world(None, SALE)
    assert rules.select_outcome(c, new_call(c), AGENT, Choice("SALE", at(130)))
    [event] = rules.select_outcome(c, new_call(c), AGENT, Choice("SALE", at(130), revenue=Decimal("120.50")))
    assert isinstance(event, OutcomeSelected) and event.revenue == Decimal("120.50")
    with pytest.raises(NegativeRevenue):
        rules.select_outcome(c, new_call(c), AGENT, Choice("SALE", at(130), revenue=Decimal("-1")))


def test_call_length_gating_has_a_maximum_too() -> None:
    c = world(None, SALE)  # at most 600 s
    long = new_call(c, ended=900)  # answered at 5 s: 895 s of talk
    with pytest.raises(CallTooShort, match="at most 600s"):
        rules.select_outcome(c, long, AGENT, Choice("SALE", at(905)))
    assert rules.select_outcome(c, new_call(c, ended=300), AGENT, Choice("SALE", at(305)))


def test_the_selection_records_who_selected_it_and_for_which_agent() -> None:
    c = world(None, SALE)
    [event] = rules.select_outcome(c, new_call(c), AGENT, Choice("SALE", at(130), agent_id="anna"))
    assert isinstance(event, OutcomeSelected)
    assert event.actor == "agent:anna" and event.agent_id == "anna" and event.automatic is None
    assert event.definition.flags.success and event.project_id == "p1" and event.interaction == "call"


def test_a_call_outcome_leaves_the_conversation_open_unless_it_closes_it() -> None:
    c = world(None, CALLBACK, CLOSER)
    conv = new_conversation(c)
    call = new_call(c, conv=conv)
    events = rules.select_outcome(c, call, AGENT, Choice("CALLBACK", at(130)), conversation=conv)
    assert [type(e).__name__ for e in events] == ["OutcomeSelected"]  # the agent picks again for the conversation
    assert not fold_conv(conv, events).closed


def test_close_conversation_with_call_selected_for_a_conversation_behaves_like_any_other_outcome() -> None:
    c = world(None, CLOSER)
    conv = new_conversation(c)
    events = rules.select_outcome(c, conv, AGENT, Choice("RESOLVED", at(30)))
    assert [type(e).__name__ for e in events] == ["OutcomeSelected", "ConversationClosed"]
    assert events[0].automatic is None  # type: ignore[attr-defined]
    assert isinstance(events[1], ConversationClosed) and events[1].cause == "outcome"


def test_the_auto_close_outcome_that_closes_the_conversation_closes_it_when_the_call_ends() -> None:
    done = OutcomeDefinition(code="DONE", name="Done", close_conversation_with_call=True)
    c = world(ProjectSettings(name="P", direction="inbound", auto_close_without_outcome=True, hide_busy=True), done)
    conv = new_conversation(c)
    call = new_call(c, ended=None, conv=conv)
    events = rules.end_call(c, call, PLATFORM, occurred_at=at(60), termination_reason="", conversation=conv)
    assert [type(e).__name__ for e in events] == [
        "CallEnded",
        "OutcomeSelected",
        "OutcomeSelected",
        "ConversationClosed",
    ]
    assert all(e.actor == "system" for e in events[1:])
    closed = fold_conv(conv, events)
    assert closed.closed and closed.closing_outcome is not None and closed.closing_outcome.code == "DONE"


def test_a_kept_active_conversation_takes_new_messages_and_further_outcomes() -> None:
    c = world(None, KEEP, SALE)
    conv = new_conversation(c)
    conv = fold_conv(conv, rules.select_outcome(c, conv, AGENT, Choice("INFO", at(10))))
    [msg] = rules.record_message(conv, PLATFORM, direction="received", channel="sms", occurred_at=at(20), body="ok")
    conv = fold_conv(conv, [msg])
    conv = fold_conv(conv, rules.select_outcome(c, conv, AGENT, Choice("INFO", at(30))))
    conv = fold_conv(conv, rules.select_outcome(c, conv, AGENT, Choice("SALE", at(40))))
    assert conv.closed and [s.code for s in conv.outcomes] == ["INFO", "INFO", "SALE"]


def test_an_unanswered_call_kept_active_lets_the_agent_follow_up_in_the_same_conversation() -> None:
    kept = ProjectSettings(name="P", direction="outbound", keep_conversation_active_when_outbound_unanswered=True)
    c = world(kept)
    conv = new_conversation(c)
    call = new_call(c, answered=False, ended=None, conv=conv)
    events = rules.call_unanswered(c, call, PLATFORM, occurred_at=at(30), status="no_answer", conversation=conv)
    assert not fold_conv(conv, events).closed
    [sms] = rules.record_message(conv, AGENT, direction="sent", channel="sms", occurred_at=at(40), body="We called")
    assert isinstance(sms, MessageRecorded)


def test_redirect_to_flow_keeps_the_conversation_active_even_without_keeps_active() -> None:
    bot = OutcomeDefinition(
        code="BOT",
        name="Back to bot",
        redirect_to_flow="bot",
        applies_to=("conversation",),
        keeps_conversation_active=False,
    )
    c = world(None, project_outcomes=[bot])
    conv = new_conversation(c)
    events = rules.select_outcome(c, conv, AGENT, Choice("BOT", at(10)))
    assert [type(e) for e in events] == [OutcomeSelected, FlowRedirected]
    conv = fold_conv(conv, events)
    assert not conv.closed and conv.flow == "bot"
    assert rules.record_message(conv, PLATFORM, direction="received", channel="sms", occurred_at=at(20), body="5")


def test_closing_without_an_outcome_is_allowed_when_wrap_up_is_optional() -> None:
    c = world(ProjectSettings(name="P", direction="inbound", wrap_up=WrapUp(mode="optional")))
    [closed] = rules.close_conversation(c, new_conversation(c), AGENT, occurred_at=at(30))
    assert isinstance(closed, ConversationClosed) and closed.outcome_code is None and closed.cause == "agent"
    timed = WrapUp(mode="mandatory_with_timeout", timeout_seconds=30, timeout_outcome="WRAP_UP_TIMEOUT")
    c2 = world(ProjectSettings(name="P", direction="inbound", wrap_up=timed))
    with pytest.raises(OutcomeRequired):
        rules.close_conversation(c2, new_conversation(c2), AGENT, occurred_at=at(30))


def test_a_correction_is_allowed_after_close_and_records_whether_it_lifts_suppressions() -> None:
    dnc = OutcomeDefinition(
        code="DNC", name="Do not call", contact_handling=ContactHandling(do_not_call=DoNotCallSpec())
    )
    c = world(None, SALE, CALLBACK, dnc)
    conv = new_conversation(c)
    conv = fold_conv(conv, rules.select_outcome(c, conv, AGENT, Choice("CALLBACK", at(10))))
    assert conv.closed
    with pytest.raises(InteractionIsClosed):
        rules.select_outcome(c, conv, AGENT, Choice("SALE", at(20)))
    [corrected] = rules.correct_outcome(
        c, conv, SUPERVISOR, Choice("DNC", at(3600)), reason="customer asked", lift_suppressions=False
    )
    assert isinstance(corrected, OutcomeCorrected) and corrected.previous_code == "CALLBACK"
    assert corrected.lift_suppressions is False and corrected.actor == "supervisor:sam"
    conv = fold_conv(conv, [corrected])
    [lifted] = rules.correct_outcome(
        c, conv, SUPERVISOR, Choice("CALLBACK", at(7200)), reason="wrong number", lift_suppressions=True
    )
    assert isinstance(lifted, OutcomeCorrected) and lifted.lift_suppressions and lifted.previous_code == "DNC"


# -- rules the first pass missed (see docs/rules.md) -----------------------------------------------------


def test_only_the_system_selects_system_only_outcomes() -> None:
    c = world(None, SALE)
    with pytest.raises(OutcomeNotSelectable, match="system-only"):
        rules.select_outcome(c, new_call(c), SUPERVISOR, Choice("WRAP_UP_TIMEOUT", at(130)))
    call = new_call(c)
    call = fold_call(call, rules.select_outcome(c, call, AGENT, Choice("SALE", at(130))))
    with pytest.raises(OutcomeNotSelectable, match="system-only"):
        rules.correct_outcome(c, call, SUPERVISOR, Choice("WRAP_UP_TIMEOUT", at(200)), reason="r")


def test_by_default_closing_a_conversation_needs_an_outcome() -> None:
    c = world(ProjectSettings(name="P", direction="inbound"))
    with pytest.raises(OutcomeRequired):
        rules.close_conversation(c, new_conversation(c), AGENT, occurred_at=at(30))


def test_a_call_with_an_outcome_accepts_a_late_business_result() -> None:
    c = world(None, CALLBACK, LATE)
    call = new_call(c)
    call = fold_call(call, rules.select_outcome(c, call, AGENT, Choice("CALLBACK", at(130))))
    with pytest.raises(CallAlreadyHasOutcome):
        rules.select_outcome(c, call, AGENT, Choice("BUSY", at(140)))
    [late] = rules.select_outcome(c, call, AGENT, Choice("ACCEPTED", at(86_400)))
    assert isinstance(late, OutcomeSelected) and late.late


def test_a_late_business_result_does_not_replace_the_closing_outcome() -> None:
    c = world(None, CALLBACK, LATE)
    conv = new_conversation(c)
    conv = fold_conv(conv, rules.select_outcome(c, conv, AGENT, Choice("CALLBACK", at(10))))
    conv = fold_conv(conv, rules.select_outcome(c, conv, AGENT, Choice("ACCEPTED", at(86_400))))
    assert [s.code for s in conv.outcomes] == ["CALLBACK", "ACCEPTED"]
    assert conv.closing_outcome is not None and conv.closing_outcome.code == "CALLBACK"


# == the permissions table (§1) ======================================================================

_A = Action
#: PRODUCT.md §1, row by row: who may ...
PERMISSIONS: dict[Action, set[str]] = {
    _A.CONFIGURE: {"admin"},
    _A.REPORT_FACTS: {"platform", "supervisor", "agent"},
    _A.CORRECT: {"platform", "supervisor"},
    _A.WORK_FOLLOW_UPS: {"platform", "supervisor", "agent"},
    _A.READ_REPORTS: {"admin", "platform", "supervisor", "manager", "reviewer", "auditor"},
    _A.RECORD_VERDICTS: {"supervisor", "reviewer"},
    _A.AUDIT: {"auditor"},
    # not a row of §1: reading state as of a past moment and what-if (docs/look-back.md)
    _A.LOOK_BACK: {"admin", "supervisor", "manager", "auditor"},
    _A.ERASE: {"admin"},  # the tenant admin erases a contact (PRODUCT.md §5, docs/erasure.md)
}


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.name.lower())
def test_the_permissions_table(action: Action) -> None:
    assert {r.value for r in Role if may(r, action)} == PERMISSIONS[action]


# == application and API layer, real Redis ==============================================================


@dataclass
class Api:
    http: TestClient[Any]
    runtime: Runtime
    admin: dict[str, dict[str, str]]
    admin_key_id: dict[str, str]

    def key(self, tenant: str, role: str) -> tuple[str, dict[str, str]]:
        r = self.http.post("/v1/keys", headers=self.admin[tenant], json={"role": role})
        assert r.status_code == 201, r.text
        return r.json()["key_id"], {"Authorization": f"Bearer {r.json()['secret']}"}

    def events(self, tenant: str, kind: str, external_id: str = "") -> list[DomainEvent]:
        ledger = self.runtime.ledger(tenant)
        return list(ledger.events.get(aggregate_id(tenant, kind, external_id)))  # type: ignore[arg-type]


@pytest.fixture()
def api(redis_url: str, shard: str) -> Iterator[Api]:
    runtime = new_runtime(redis_url, shard)
    admin: dict[str, dict[str, str]] = {}
    ids: dict[str, str] = {}
    with TestClient(create_app(runtime)) as http:
        for tenant in ("acme", "globex"):
            record, secret = runtime.create_tenant(tenant, tenant.title())
            admin[tenant], ids[tenant] = {"Authorization": f"Bearer {secret}"}, record.key_id
            sale = {"code": "SALE", "name": "Sale", "description": "The customer bought it", "shortcut_key": "s"}
            assert http.post("/v1/outcomes", headers=admin[tenant], json=sale).status_code == 201
            project = {"project_id": "p1", "name": "P", "direction": "outbound"}
            assert http.post("/v1/projects", headers=admin[tenant], json=project).status_code == 201
        yield Api(http, runtime, admin, ids)
    runtime.close()


def start(call_id: str, project_id: str = "p1", **kw: Any) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "project_id": project_id,
        "direction": "outbound",
        "occurred_at": "2026-11-22T09:00:00Z",
        **kw,
    }


def select(code: str, **kw: Any) -> dict[str, Any]:
    return {"outcome_code": code, "occurred_at": "2026-11-22T09:05:00Z", **kw}


def test_tenants_never_see_each_others_ids_and_the_same_id_names_two_things(api: Api) -> None:
    http = api.http
    _, acme = api.key("acme", "platform")
    _, globex = api.key("globex", "platform")
    anna = {**acme, "X-Acting-For": "agent:anna"}
    # the same external id in two tenants names two different calls
    assert http.post("/v1/calls", headers=acme, json=start("c1")).status_code == 201
    assert http.post("/v1/calls", headers=globex, json=start("c1")).status_code == 201
    assert http.post("/v1/calls/c1/outcome", headers=anna, json=select("SALE")).status_code == 201
    assert http.get("/v1/calls/c1", headers=acme).json()["outcome"]["code"] == "SALE"
    assert http.get("/v1/calls/c1", headers=globex).json()["outcome"] is None
    # another tenant's id answers exactly like an unknown id
    assert http.post("/v1/calls", headers=acme, json=start("acme-only")).status_code == 201
    conv = {"conversation_id": "acme-conv", "project_id": "p1", "channel": "sms", "occurred_at": "2026-11-22T09:00:00Z"}
    assert http.post("/v1/conversations", headers=acme, json=conv).status_code == 201
    assert http.put("/v1/contacts/acme-contact", headers=acme, json={"time_zone": "UTC"}).status_code == 200
    admin = api.admin["acme"]
    project = {"project_id": "acme-project", "name": "A", "direction": "inbound"}
    assert http.post("/v1/projects", headers=admin, json=project).status_code == 201
    theirs_by_path = {
        "/v1/calls/{}": "acme-only",
        "/v1/conversations/{}": "acme-conv",
        "/v1/contacts/{}": "acme-contact",
        "/v1/projects/{}/outcome-set": "acme-project",
        "/v1/projects/{}/outcome-counts": "acme-project",
    }
    for path, existing in theirs_by_path.items():
        theirs = http.get(path.format(existing), headers=globex)
        unknown = http.get(path.format("never-seen"), headers=globex)
        assert theirs.status_code == unknown.status_code == 404, (path, theirs.text)
        assert theirs.json()["message"].replace(existing, "?") == unknown.json()["message"].replace("never-seen", "?")
    # ... and globex cannot act on it either
    ended = http.post("/v1/calls/acme-only/ended", headers=globex, json={"occurred_at": "2026-11-22T09:03:00Z"})
    assert ended.status_code == 404
    # idempotency keys are the tenant's own: the same key in another tenant neither repeats nor clashes
    key = {"Idempotency-Key": "start-1"}
    assert http.post("/v1/calls", headers={**acme, **key}, json=start("i-acme")).status_code == 201
    r = http.post("/v1/calls", headers={**globex, **key}, json=start("i-globex"))
    assert r.status_code == 201 and r.json()["id"] == "i-globex"
    assert http.get("/v1/calls/i-globex", headers=globex).status_code == 200


def test_api_keys_are_stored_hashed_shown_once_revocable_and_carry_a_role(api: Api) -> None:
    http, runtime = api.http, api.runtime
    issued = http.post("/v1/keys", headers=api.admin["acme"], json={"role": "manager"}).json()
    secret = issued["secret"]
    assert issued["role"] == "manager" and secret.startswith("olk_")
    # stored hashed: the secret is nowhere in Redis, its SHA-256 is
    stored = runtime.client.hgetall(runtime.registry.keys.api_keys)
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    for name in runtime.client.scan_iter(match=runtime.settings.key_prefix + "*"):
        kind = runtime.client.type(name)
        if kind == b"hash":
            blob = repr(runtime.client.hgetall(name))
        elif kind == b"string":
            blob = repr(runtime.client.get(name))
        elif kind == b"stream":
            blob = repr(runtime.client.xrange(name))
        else:
            continue
        assert secret not in blob, name
    # shown once: a second key of the same role is another secret; nothing answers the first again
    again = http.post("/v1/keys", headers=api.admin["acme"], json={"role": "manager"}).json()
    assert again["secret"] != secret and again["key_id"] != issued["key_id"]
    m = {"Authorization": f"Bearer {secret}"}
    assert http.get("/v1/outcomes", headers=m).status_code == 200
    # revocable -- by its own tenant only
    assert http.delete(f"/v1/keys/{issued['key_id']}", headers=api.admin["globex"]).status_code == 404
    assert http.get("/v1/outcomes", headers=m).status_code == 200
    assert http.delete(f"/v1/keys/{issued['key_id']}", headers=api.admin["acme"]).status_code == 200
    assert http.get("/v1/outcomes", headers=m).status_code == 401


def test_roles_follow_the_permissions_table_over_http(api: Api) -> None:
    http = api.http
    _, platform = api.key("acme", "platform")
    assert http.post("/v1/calls", headers=platform, json=start("c0")).status_code == 201
    anna = {**platform, "X-Acting-For": "agent:anna"}
    assert http.post("/v1/calls/c0/outcome", headers=anna, json=select("SALE")).status_code == 201
    principals: dict[str, dict[str, str]] = {"admin": api.admin["acme"]}
    for role in ("supervisor", "agent", "manager", "reviewer", "auditor"):
        principals[role] = api.key("acme", role)[1]
    principals["platform (system)"] = platform
    principals["platform (agent)"] = anna
    principals["platform (supervisor)"] = {**platform, "X-Acting-For": "supervisor:sam"}
    platforms = {"platform (system)", "platform (agent)", "platform (supervisor)"}
    expected = {
        "configure": {"admin"},
        "report facts": {"supervisor", "agent"} | platforms,
        "correct": {"supervisor", "platform (supervisor)"},
        "read reports": {"admin", "supervisor", "manager", "reviewer", "auditor"} | platforms,
    }
    got: dict[str, set[str]] = {action: set() for action in expected}
    for i, (who, headers) in enumerate(principals.items()):
        team = {"team_id": f"team-{i}", "name": who}
        call = start(f"c-{i}")
        fix = {"outcome_code": "SALE", "occurred_at": "2026-11-22T10:00:00Z", "reason": "checked the recording"}
        answers = {
            "configure": http.post("/v1/teams", headers=headers, json=team),
            "report facts": http.post("/v1/calls", headers=headers, json=call),
            "correct": http.post("/v1/calls/c0/correction", headers=headers, json=fix),
            "read reports": http.get("/v1/projects/p1/outcome-counts", headers=headers),
        }
        for action, r in answers.items():
            assert r.status_code in {200, 201, 403}, (who, action, r.text)
            if r.status_code != 403:
                got[action].add(who)
            else:
                assert r.json()["error"] == "forbidden"
    assert got == expected


def test_the_actor_is_recorded_on_every_event(api: Api) -> None:
    http = api.http
    sup_id, supervisor = api.key("acme", "supervisor")
    _, platform = api.key("acme", "platform")
    assert (
        http.post("/v1/outcomes", headers=api.admin["acme"], json={"code": "LEAD", "name": "Lead"}).status_code == 201
    )
    catalogue = api.events("acme", "catalogue")
    assert catalogue[-1].actor == f"admin:{api.admin_key_id['acme']}"
    assert (
        http.post("/v1/calls", headers={**platform, "X-Acting-For": "agent:anna"}, json=start("c1")).status_code == 201
    )
    assert (
        http.post("/v1/calls/c1/ended", headers=platform, json={"occurred_at": "2026-11-22T09:04:00Z"}).status_code
        == 200
    )
    sel = select("SALE")
    assert (
        http.post("/v1/calls/c1/outcome", headers={**platform, "X-Acting-For": "agent:anna"}, json=sel).status_code
        == 201
    )
    fix = {"outcome_code": "LEAD", "occurred_at": "2026-11-22T10:00:00Z", "reason": "listened"}
    assert http.post("/v1/calls/c1/correction", headers=supervisor, json=fix).status_code == 201
    actors = [(type(e).__name__, e.actor) for e in api.events("acme", "call", "c1")]
    assert actors == [
        ("CallStarted", "agent:anna"),
        ("CallEnded", "system"),  # a platform key acting for no one: what its dialer detected
        ("OutcomeSelected", "agent:anna"),
        ("OutcomeCorrected", f"supervisor:{sup_id}"),
    ]


def test_events_record_the_platform_key_as_well_as_whom_it_acts_for(api: Api) -> None:
    key_id, platform = api.key("acme", "platform")
    assert (
        api.http.post("/v1/calls", headers={**platform, "X-Acting-For": "agent:anna"}, json=start("c1")).status_code
        == 201
    )
    assert api.http.post("/v1/calls", headers=platform, json=start("c2")).status_code == 201
    for call_id, person in (("c1", "agent:anna"), ("c2", "system")):
        [event] = api.events("acme", "call", call_id)
        recorded = msgspec.json.encode(event).decode()
        assert person in recorded and key_id in recorded


def test_agent_team_membership_changes_are_events(api: Api) -> None:
    http, admin = api.http, api.admin["acme"]
    assert http.post("/v1/agents", headers=admin, json={"agent_id": "anna", "name": "Anna"}).status_code == 201
    for team in ("north", "south"):
        assert http.post("/v1/teams", headers=admin, json={"team_id": team, "name": team.title()}).status_code == 201
    for team in ("north", "south"):
        assert http.put("/v1/agents/anna/team", headers=admin, json={"team_id": team}).status_code == 200
    assert http.put("/v1/agents/anna/team", headers=admin, json={"team_id": "west"}).status_code == 404
    moves = [e for e in api.events("acme", "catalogue") if isinstance(e, AgentTeamChanged)]
    assert [(m.agent_id, m.team_id) for m in moves] == [("anna", "north"), ("anna", "south")]
    assert all(m.actor == f"admin:{api.admin_key_id['acme']}" for m in moves)
    assert moves[0].recorded_at <= moves[1].recorded_at
    assert api.runtime.ledger("acme").catalogue("acme").agent_team == {"anna": "south"}


def test_each_tenant_has_its_own_rate_limit(api: Api) -> None:
    api.runtime.registry.set_rate_limit("acme", 3)
    answers = [api.http.get("/v1/outcomes", headers=api.admin["acme"]) for _ in range(12)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and {r.json()["error"] for r in limited} == {"rate_limited"}
    assert "acme" in limited[0].json()["message"]
    assert {r.status_code for r in answers} <= {200, 429}
    assert api.http.get("/v1/outcomes", headers=api.admin["globex"]).status_code == 200


def test_outcomes_are_searched_by_code_or_description(api: Api) -> None:
    http, admin = api.http, api.admin["acme"]
    local = {"code": "CB", "name": "Callback", "description": "Customer asked to be called later"}
    assert http.post("/v1/projects/p1/outcomes", headers=admin, json=local).status_code == 201

    def codes(query: str, **params: str) -> list[str]:
        r = http.get("/v1/outcomes", headers=admin, params={"q": query, **params})
        assert r.status_code == 200, r.text
        return [o["code"] for o in r.json()]

    assert codes("sale") == ["SALE"]  # by code, any case
    assert codes("BOUGHT") == ["SALE"]  # by description
    assert codes("no_ans") == ["NO_ANSWER"]
    assert set(codes("")) == BUILT_INS | {"SALE"}  # everything global
    assert codes("called later") == []  # a project outcome: searched within its project
    assert codes("called later", project_id="p1") == ["CB"]
    assert http.get("/v1/outcomes", headers=admin, params={"project_id": "nope"}).status_code == 404
    # another tenant's outcomes are not found
    assert (
        http.get("/v1/outcomes", headers=api.admin["globex"], params={"q": "called later", "project_id": "p1"}).json()
        == []
    )


def test_the_active_outcome_set_is_what_the_picker_needs(api: Api) -> None:
    http, admin = api.http, api.admin["acme"]
    _, agent = api.key("acme", "agent")

    def picker(project: str = "p1") -> dict[str, Any]:
        r = http.get(f"/v1/projects/{project}/outcome-set", headers=agent)
        assert r.status_code == 200, r.text
        return dict(r.json())

    first = picker()
    outcomes = {o["definition"]["code"]: o for o in first["outcomes"]}
    assert first["prompt"] is True and first["project_id"] == "p1"
    assert set(outcomes) == BUILT_INS | {"SALE"}
    assert outcomes["SALE"]["definition"]["shortcut_key"] == "s" and outcomes["SALE"]["scope"] == "global"
    # unanswered-call and system-only outcomes are included, flagged as such
    assert outcomes["NO_ANSWER"]["definition"]["unanswered"] is True
    assert outcomes["WRAP_UP_TIMEOUT"]["definition"]["selectable"] is False
    assert outcomes["SALE"]["definition"]["unanswered"] is False and outcomes["SALE"]["definition"]["selectable"]
    # hiding moves the version and the picker
    assert http.put("/v1/projects/p1/hidden-outcomes/SALE", headers=admin).status_code == 200
    second = picker()
    assert second["version"] == first["version"] + 1
    assert "SALE" not in {o["definition"]["code"] for o in second["outcomes"]}
    local = {"code": "CB", "name": "Callback", "shortcut_key": "c"}
    assert http.post("/v1/projects/p1/outcomes", headers=admin, json=local).status_code == 201
    third = picker()
    assert third["version"] == second["version"] + 1
    assert {o["definition"]["code"]: o["scope"] for o in third["outcomes"]}["CB"] == "project"
    assert http.post("/v1/projects/p1/outcomes/CB/disable", headers=admin).status_code == 200
    assert "CB" not in {o["definition"]["code"] for o in picker()["outcomes"]}
    # an auto-close project does not prompt
    quiet = {
        "project_id": "quiet",
        "name": "Quiet",
        "direction": "inbound",
        "hide_busy": True,
        "hidden_outcomes": ["SALE"],
        "auto_close_without_outcome": True,
    }
    assert http.post("/v1/projects", headers=admin, json=quiet).status_code == 201
    assert picker("quiet")["prompt"] is False
    assert http.get("/v1/projects/nope/outcome-set", headers=agent).status_code == 404


def test_configuration_writes_take_idempotency_keys(api: Api) -> None:
    http = api.http
    headers = {**api.admin["acme"], "Idempotency-Key": "define-lead"}
    body = {"code": "LEAD", "name": "Lead"}
    first = http.post("/v1/outcomes", headers=headers, json=body)
    assert first.status_code == 201
    before = len(api.events("acme", "catalogue"))
    again = http.post("/v1/outcomes", headers=headers, json=body)
    assert again.status_code == 201 and again.json() == first.json()  # not "duplicate"
    assert len(api.events("acme", "catalogue")) == before
    other = http.post("/v1/outcomes", headers=headers, json={"code": "LEAD2", "name": "Lead 2"})
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert len(api.events("acme", "catalogue")) == before


def test_a_tenant_level_change_lists_the_auto_close_projects_it_left_hidden_in(api: Api) -> None:
    http, admin = api.http, api.admin["acme"]
    quiet = {
        "project_id": "quiet",
        "name": "Quiet",
        "direction": "inbound",
        "hide_busy": True,
        "hidden_outcomes": ["SALE"],
        "auto_close_without_outcome": True,
    }
    assert http.post("/v1/projects", headers=admin, json=quiet).status_code == 201
    assert (
        http.post("/v1/projects/quiet/outcomes", headers=admin, json={"code": "DONE", "name": "Done"}).status_code
        == 201
    )
    r = http.post("/v1/outcomes", headers=admin, json={"code": "LEAD", "name": "Lead"})
    assert r.status_code == 201, r.text
    codes = {
        o["definition"]["code"] for o in http.get("/v1/projects/quiet/outcome-set", headers=admin).json()["outcomes"]
    }
    assert "LEAD" not in codes  # left hidden there ...
    assert "quiet" in r.text  # ... and the response says where


# -- definitions and settings that cannot work are refused (over HTTP: any layer may refuse them) ---------


def refused(r: Any) -> bool:
    return bool(400 <= r.status_code < 500 and r.json().get("message"))


@pytest.mark.parametrize(
    "extra",
    [
        {"min_call_seconds": -5},
        {"max_call_seconds": -1},
        {"contact_handling": {"recall": {"delay_seconds": -60}}},
        {"contact_handling": {"recall": {"delay_seconds": 60, "max_attempts": 0}}},
        {"contact_handling": {"waiting_period": {"seconds": -1}}},
        {"follow_up": {"owner_role": "supervisor", "due_within_seconds": 0}},
    ],
    ids=["min_call", "max_call", "recall_delay", "recall_attempts", "waiting_period", "follow_up_due"],
)
def test_outcome_definitions_with_impossible_numbers_are_refused(api: Api, extra: dict[str, Any]) -> None:
    r = api.http.post("/v1/outcomes", headers=api.admin["acme"], json={"code": "ODD", "name": "Odd", **extra})
    assert refused(r), r.text


@pytest.mark.parametrize("follow_up", [{}, {"owner_team": "nope"}], ids=["no_owner", "unknown_team"])
def test_a_follow_up_needs_an_owner_team_that_exists_or_a_role(api: Api, follow_up: dict[str, Any]) -> None:
    r = api.http.post(
        "/v1/outcomes", headers=api.admin["acme"], json={"code": "FU", "name": "Follow up", "follow_up": follow_up}
    )
    assert refused(r), r.text


@pytest.mark.parametrize(
    "extra",
    [
        {"calling_hours": {"start": "25:00", "end": "18:00"}},
        {"calling_hours": {"start": "09:00", "end": "18:00", "weekdays": [9]}},
        {"quotas": {"SALE": 0}},
        {"target_mix": {"shares": {"SALE": 1.5}}},
        {"target_mix": {"shares": {"SALE": 0.5}, "tolerance": -0.1}},
    ],
    ids=["hour", "weekday", "quota_zero", "mix_share", "mix_tolerance"],
)
def test_project_settings_are_checked(api: Api, extra: dict[str, Any]) -> None:
    body = {"project_id": "p9", "name": "P9", "direction": "outbound", **extra}
    assert refused(api.http.post("/v1/projects", headers=api.admin["acme"], json=body))


def test_a_global_outcomes_availability_can_be_changed(api: Api) -> None:
    http, admin = api.http, api.admin["acme"]
    r = http.put("/v1/outcomes/SALE", headers=admin, json={"code": "SALE", "name": "Sale", "availability": "assigned"})
    assert r.status_code == 200, r.text
    codes = {o["definition"]["code"] for o in http.get("/v1/projects/p1/outcome-set", headers=admin).json()["outcomes"]}
    assert "SALE" not in codes


# -- the outcome-set version guards the write ----------------------------------------------------------------


@pytest.fixture()
def racing(redis_url: str, shard: str) -> Iterator[tuple[Runtime, Runtime]]:
    """Two processes' runtimes on one shard: one selects, the other reconfigures meanwhile."""
    selector = new_runtime(redis_url, shard)
    seed_project(selector, "acme")
    other = Runtime(selector.settings)
    ledger = selector.ledger("acme")
    ledger.start_call(AGENT, call_id="c1", project_id="winter", direction="outbound", occurred_at=T0)
    ledger.end_call(AGENT, call_id="c1", occurred_at=at(180))
    yield selector, other
    other.close()
    selector.close()


def change_between_check_and_write(
    monkeypatch: pytest.MonkeyPatch, selector: Runtime, change: Callable[[], object]
) -> None:
    """The next catalogue load returns what the rules check; the change lands right after it."""
    ledger = selector.ledger("acme")
    load = ledger.catalogue
    done = threading.Event()

    def load_then_change(tenant_id: str) -> Catalogue:
        catalogue = load(tenant_id)
        if not done.is_set():
            done.set()
            change()
        return catalogue

    monkeypatch.setattr(ledger, "catalogue", load_then_change)


def test_a_selection_racing_a_hide_fails_with_an_outcome_set_conflict(
    racing: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    selector, other = racing
    admin = Context("acme", "admin:k1", T0)
    ledger = selector.ledger("acme")
    version = ledger.outcome_set("acme", "winter").version
    change_between_check_and_write(
        monkeypatch,
        selector,
        lambda: other.ledger("acme").configure(
            admin, "project", "winter", lambda c: config_rules.hide_outcome(c, admin, "SALE", "winter")
        ),
    )
    with pytest.raises(OutcomeSetChanged):
        ledger.select_call_outcome(AGENT, call_id="c1", choice=Choice("SALE", at(190)))
    monkeypatch.undo()
    assert ledger.call("acme", "c1").outcome is None  # nothing written
    assert ledger.outcome_set("acme", "winter").version == version + 1
    with pytest.raises(OutcomeNotInProject):  # retried against the new set: the rule refuses it
        ledger.select_call_outcome(AGENT, call_id="c1", choice=Choice("SALE", at(190)))


def test_a_change_that_leaves_the_outcome_set_alone_does_not_fail_a_selection(
    racing: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    selector, other = racing
    admin = Context("acme", "admin:k1", T0)
    ledger = selector.ledger("acme")
    change_between_check_and_write(
        monkeypatch,
        selector,
        lambda: other.ledger("acme").configure(
            admin, "agent", "bob", lambda c: config_rules.register_agent(c, admin, "bob", "Bob")
        ),
    )
    ledger.select_call_outcome(AGENT, call_id="c1", choice=Choice("SALE", at(190)))
    outcome = ledger.call("acme", "c1").outcome
    assert outcome is not None and outcome.code == "SALE"


def test_a_call_outcome_closes_its_conversation_in_one_save(redis_url: str, shard: str) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        seed_project(runtime, "acme")
        ledger = runtime.ledger("acme")
        ledger.define_outcome(ADMIN, CLOSER)
        ledger.start_conversation(AGENT, conversation_id="v1", project_id="winter", channel="sms", occurred_at=T0)
        ledger.start_call(
            AGENT, call_id="c1", project_id="winter", direction="inbound", occurred_at=at(1), conversation_id="v1"
        )
        head = ledger.recorder.max_notification_id() or 0
        receipt = ledger.select_call_outcome(AGENT, call_id="c1", choice=Choice("RESOLVED", at(100)))
        assert receipt.events == ("OutcomeSelected", "OutcomeSelected", "ConversationClosed")
        conv = ledger.conversation("acme", "v1")
        assert conv.closed and conv.closing_outcome is not None and conv.closing_outcome.automatic == "close_with_call"
        # one save: three consecutive positions on the log, nothing between them
        assert (ledger.recorder.max_notification_id() or 0) == head + 3
    finally:
        runtime.close()


# -- the operator's CLI ----------------------------------------------------------------------------------------


def cli_env(runtime: Runtime) -> dict[str, str]:
    s = runtime.settings
    return {"REDIS_URL": s.redis_url, "REDIS_SHARD": s.shard, "REDIS_KEY_PREFIX": s.key_prefix}


def test_the_cli_creates_a_tenant_with_the_built_in_outcomes_and_prints_its_admin_key(
    redis_url: str, shard: str
) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        out = CliRunner().invoke(
            cli, ["tenant", "create", "acme", "--time-zone", "Europe/Helsinki"], env=cli_env(runtime)
        )
        assert out.exit_code == 0, out.output
        secret = out.output.strip()
        key = runtime.registry.authenticate(secret)
        assert key is not None and key.role is Role.ADMIN and key.tenant_id == "acme"
        catalogue = runtime.ledger("acme").catalogue("acme")
        assert catalogue.time_zone == "Europe/Helsinki" and set(catalogue.outcomes) == BUILT_INS
        twice = CliRunner().invoke(cli, ["tenant", "create", "acme"], env=cli_env(runtime))
        assert twice.exit_code != 0 and "already exists" in twice.output
    finally:
        runtime.close()


def test_the_cli_refuses_an_unknown_time_zone(redis_url: str, shard: str) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        out = CliRunner().invoke(cli, ["tenant", "create", "acme", "--time-zone", "Mars/Olympus"], env=cli_env(runtime))
        assert out.exit_code != 0 and "Mars/Olympus" in out.output
        ok = CliRunner().invoke(cli, ["tenant", "create", "acme", "--time-zone", "UTC"], env=cli_env(runtime))
        assert ok.exit_code == 0, ok.output  # the refused attempt left nothing behind
    finally:
        runtime.close()


def test_rebuilding_read_models_is_a_cli_action(redis_url: str, shard: str) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        seed_project(runtime, "acme")
        for i, code in enumerate(["SALE", "SALE", "NO_SALE"]):
            call_with_outcome(runtime, "acme", f"c{i}", code)
        runner = ProjectionRunner(runtime.settings)
        runner.settle(runtime.ledger("acme").recorder.max_notification_id() or 0)
        keys = runtime.shard_keys("acme")
        assert outcome_counts(runtime.client, keys, "acme", "winter") == {"NO_SALE": 1, "SALE": 2}
        runtime.client.hset(f"{keys.view('outcome-counts')}acme:winter", "SALE", 99)  # a damaged view
        out = CliRunner().invoke(cli, ["rebuild"], env=cli_env(runtime))
        assert out.exit_code == 0, out.output
        assert "outcome-counts:" in out.output
        # rebuilt into a fresh generation and switched over: what queries resolve now
        assert outcome_counts(runtime.client, current(runtime.client, keys), "acme", "winter") == {
            "NO_SALE": 1,
            "SALE": 2,
        }
        runner.client.close()
        runner.runtime.close()
    finally:
        runtime.close()
