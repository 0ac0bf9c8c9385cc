"""SMS follow-ups (PRODUCT.md §1 "Message", §3 "SMS"): from the selection to the gateway,
through real Redis and a real local HTTP server standing in for the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from litestar.testing import TestClient

from events.codec import DomainEvent
from events.types import (
    OutcomeDefinition,
    OutcomeSelected,
    ProjectSettings,
    SmsCancelled,
    SmsFailed,
    SmsRequested,
    SmsSent,
    SmsSuppressed,
)
from services.api.app import create_app
from services.catalogue import Catalogue
from services.interactions import Call, Conversation, aggregate_id, source_of
from services.ledger import Ledger
from services.permissions import Role
from services.rules import Context
from services.rules import config as config_rules
from services.rules import interactions as rules
from services.rules.interactions import Choice
from services.rules.sms import render
from services.runtime import Runtime
from services.sms_gateway import FileGateway, HttpGateway
from tests.helpers import T0, new_runtime, selected_call
from tests.receiver import Receiver
from workers.actions import SmsPlanner, SmsSender

TENANT = "sms"
NUMBER = "+358401234567"


def seed(runtime: Runtime) -> Ledger:
    runtime.create_tenant(TENANT, "Sms")
    ledger = runtime.ledger(TENANT)
    admin = Context(TENANT, "admin:test", datetime.now(UTC))
    save = config_rules.save_template
    for template_id, body in (("thanks", "Thanks!"), ("draft", "Hi {{contact.name}}, {{offer}}")):
        ledger.configure(admin, "sms-template", template_id, lambda c, t=template_id, b=body: save(c, admin, t, b))
    ledger.define_outcome(admin, OutcomeDefinition(code="THANKS", name="Thanks", sms_template="thanks", auto_send=True))
    ledger.define_outcome(admin, OutcomeDefinition(code="OFFER", name="Offer", sms_template="draft"))
    ledger.define_outcome(admin, OutcomeDefinition(code="QUIET", name="Quiet"))
    ledger.create_project(admin, "p", ProjectSettings(name="P", direction="outbound"))
    ledger.save_contact(
        admin,
        contact_id="c1",
        name="Aino",
        numbers=(NUMBER,),
        time_zone="Europe/Helsinki",
        company_id=None,
        contact_list=None,
    )
    return ledger


def select(ledger: Ledger, call_id: str, code: str, *, number: str | None = NUMBER, contact: str | None = "c1") -> None:
    two = timedelta(minutes=2)
    selected_call(
        ledger, TENANT, call_id, code, project_id="p", contact_id=contact, contact_number=number,
        ended_after=two, selected_after=two,
    )  # fmt: skip


def sms_of(ledger: Ledger, call_id: str) -> list[object]:
    """The SMS events of the call's selection, whatever version the call is at now."""
    call_uuid = aggregate_id(TENANT, "call", call_id)
    for version in range(1, 10):
        found = list(ledger.events.get(aggregate_id(TENANT, "sms", f"{call_uuid}/{version}")))
        if found:
            return found
    return []


@pytest.fixture
def world(redis_url: str, shard: str) -> tuple[Runtime, Ledger]:
    runtime = new_runtime(redis_url, shard)
    return runtime, seed(runtime)


def follow(runtime: Runtime, gateway: HttpGateway | FileGateway) -> None:
    planner, sender = SmsPlanner(runtime.settings), SmsSender(runtime.settings, gateway)
    while planner.run_once() + sender.run_once():
        pass


def test_an_auto_sent_outcome_sends_once_with_the_sms_id_as_idempotency_key(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "k1", "THANKS")
    with Receiver() as gateway:
        follow(runtime, HttpGateway(gateway.url, auth_header="Bearer gw-secret"))
        follow(runtime, HttpGateway(gateway.url))  # again: nothing more
        events = sms_of(ledger, "k1")
        assert [type(e) for e in events] == [SmsRequested, SmsSent]
        request = events[0]
        assert isinstance(request, SmsRequested)
        assert (request.to_number, request.body, request.draft) == (NUMBER, "Thanks!", False)
        assert gateway.keys() == [str(request.originator_id)]
        key, body, headers = gateway.deliveries[0]
        assert body == {"id": key, "to": NUMBER, "body": "Thanks!"}
        assert headers["Authorization"] == "Bearer gw-secret"
        sent = events[1]
        assert isinstance(sent, SmsSent) and sent.gateway_message_id == f"gw-{key}" and sent.attempts == 1


def test_an_outcome_without_auto_send_makes_a_draft_that_is_not_sent(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "k2", "OFFER")
    with Receiver() as gateway:
        follow(runtime, HttpGateway(gateway.url))
        events = sms_of(ledger, "k2")
        assert [type(e) for e in events] == [SmsRequested]
        request = events[0]
        assert isinstance(request, SmsRequested) and request.draft
        assert request.body == "Hi Aino, {{offer}}"  # known tags filled, the rest for the agent
        assert gateway.deliveries == []


def test_no_template_no_sms(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "k3", "QUIET")
    with Receiver() as gateway:
        follow(runtime, HttpGateway(gateway.url))
        assert gateway.deliveries == []
    assert sms_of(ledger, "k3") == []


def test_an_opted_out_contact_gets_none_and_the_refusal_is_recorded(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    ctx = Context(TENANT, "system", datetime.now(UTC))
    ledger.opt_out(ctx, contact_id="c1", channel="sms", occurred_at=T0)
    select(ledger, "k4", "THANKS")
    with Receiver() as gateway:
        follow(runtime, HttpGateway(gateway.url))
        assert gateway.deliveries == []
    events = sms_of(ledger, "k4")
    assert [type(e) for e in events] == [SmsRequested, SmsSuppressed]
    assert isinstance(events[1], SmsSuppressed) and events[1].reason == "opted_out"


def test_a_stop_between_request_and_send_still_stops_it(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "k5", "THANKS")
    SmsPlanner(runtime.settings).run_once()  # requested while the contact could still be texted
    ledger.opt_out(Context(TENANT, "system", datetime.now(UTC)), contact_id="c1", channel="sms", occurred_at=T0)
    with Receiver() as gateway:
        follow(runtime, HttpGateway(gateway.url))
        assert gateway.deliveries == []
    assert [type(e) for e in sms_of(ledger, "k5")] == [SmsRequested, SmsSuppressed]


def test_no_number_is_recorded_as_suppressed(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "k6", "THANKS", number=None, contact=None)
    with Receiver() as gateway:
        follow(runtime, HttpGateway(gateway.url))
        assert gateway.deliveries == []
    events = sms_of(ledger, "k6")
    assert isinstance(events[-1], SmsSuppressed) and events[-1].reason == "no_number"


def test_a_failing_gateway_is_retried_with_backoff_then_recorded_as_failed(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "k7", "THANKS")
    with Receiver(fail_with=503) as gateway:
        follow(runtime, HttpGateway(gateway.url, retries=2, backoff=0.01))
        assert len(gateway.deliveries) == 3  # the first try and two retries, one key
        assert len(set(gateway.keys())) == 1
    failed = sms_of(ledger, "k7")[-1]
    assert isinstance(failed, SmsFailed) and failed.attempts == 3 and "HTTP 503" in failed.reason


def test_a_refusal_by_the_gateway_is_not_retried(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "k8", "THANKS")
    with Receiver(fail_with=400) as gateway:
        follow(runtime, HttpGateway(gateway.url, retries=3, backoff=0.01))
        assert len(gateway.deliveries) == 1
    failed = sms_of(ledger, "k8")[-1]
    assert isinstance(failed, SmsFailed) and failed.attempts == 1


def test_the_file_gateway_writes_one_line_per_sms(world: tuple[Runtime, Ledger], tmp_path: Path) -> None:
    runtime, ledger = world
    path = tmp_path / "sms.jsonl"
    select(ledger, "k9", "THANKS")
    follow(runtime, FileGateway(path))
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and NUMBER in lines[0]
    assert isinstance(sms_of(ledger, "k9")[-1], SmsSent)


def test_every_position_is_recorded_so_twins_never_double(world: tuple[Runtime, Ledger]) -> None:
    """Two senders on the same positions: each SMS is recorded sent once."""
    runtime, ledger = world
    for n in range(5):
        select(ledger, f"t{n}", "THANKS")
    with Receiver() as gateway:
        SmsPlanner(runtime.settings).run_once()
        SmsPlanner(runtime.settings).run_once()  # a twin planner: positions already recorded
        first, second = (
            SmsSender(runtime.settings, HttpGateway(gateway.url)),
            SmsSender(runtime.settings, HttpGateway(gateway.url)),
        )
        while first.run_once() + second.run_once():
            pass
        for n in range(5):
            assert [type(e) for e in sms_of(ledger, f"t{n}")] == [SmsRequested, SmsSent]
        assert len(gateway.accepted) == 5


def test_the_planner_given_the_gateway_sends_and_records_request_and_answer_together(
    world: tuple[Runtime, Ledger],
) -> None:
    """The worker's planner hands an auto-sent SMS to the gateway itself; the sender, later
    on the same log, finds it settled in the same batch and sends nothing; a draft still
    waits for the agent."""
    runtime, ledger = world
    select(ledger, "h1", "THANKS")
    select(ledger, "h2", "OFFER")
    with Receiver(deduplicate=False) as gateway:
        planner = SmsPlanner(runtime.settings, HttpGateway(gateway.url))
        planner.run_once()
        sent = sms_of(ledger, "h1")
        assert [type(e) for e in sent] == [SmsRequested, SmsSent]
        assert [type(e) for e in sms_of(ledger, "h2")] == [SmsRequested]  # a draft is not sent
        sender = SmsSender(runtime.settings, HttpGateway(gateway.url))
        while sender.run_once():
            pass
        assert gateway.keys() == [str(sent[0].originator_id)]  # once on the wire
        assert [type(e) for e in sms_of(ledger, "h2")] == [SmsRequested]


def test_render_fills_only_known_tags() -> None:
    assert render("Hi {{ contact.name }} - {{x}}", None) == "Hi {{ contact.name }} - {{x}}"


def test_the_source_names_the_selection() -> None:
    from events.types import OutcomeSelected

    event = OutcomeSelected(
        originator_id=UUID(int=1),
        originator_version=4,
        recorded_at=T0,
        tenant_id="t",
        actor="agent:a",
        occurred_at=T0,
        interaction="call",
        interaction_id="c",
        project_id="p",
        outcome_code="X",
        outcome_set_version=1,
        definition=OutcomeDefinition(code="X", name="X"),
    )
    assert source_of(event) == f"{UUID(int=1)}/4"


def _cli(runtime: Runtime, *args: str, gateway: str) -> str:
    settings = runtime.settings
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "REDIS_SHARD": settings.shard,
        "REDIS_KEY_PREFIX": settings.key_prefix,
        "OUTCOMES_SMS_GATEWAY": gateway,
    }
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_poison_entry_is_dead_lettered_after_n_attempts_and_requeue_completes_it(
    world: tuple[Runtime, Ledger], tmp_path: Path
) -> None:
    runtime, ledger = world
    broken = tmp_path / "not-a-file"
    broken.mkdir()  # the file gateway cannot append to a directory: every attempt raises
    select(ledger, "p1", "THANKS")
    SmsPlanner(runtime.settings).run_once()
    sender = SmsSender(runtime.settings, FileGateway(broken), max_attempts=3)
    for _ in range(2):
        with pytest.raises(IsADirectoryError):
            sender.run_once()
    assert sender.run_once() > 0  # the third failure: dead-lettered, the position moves past it
    assert [type(e) for e in sms_of(ledger, "p1")] == [SmsRequested]

    letters = _cli(runtime, "dlq", "list", gateway=f"file:{broken}").splitlines()
    assert len(letters) == 1
    entry_id, worker, _nid, event_type, attempts, reason = letters[0].split("\t")
    assert (worker, event_type, attempts) == ("actions.sms-sender", "SmsRequested", "3")
    assert "IsADirectoryError" in reason
    assert '"reason"' in _cli(runtime, "dlq", "show", entry_id, gateway=f"file:{broken}")

    # later entries are not held up by it
    select(ledger, "p2", "THANKS")
    SmsPlanner(runtime.settings).run_once()
    fixed = tmp_path / "sms.jsonl"
    SmsSender(runtime.settings, FileGateway(fixed)).run_once()
    assert isinstance(sms_of(ledger, "p2")[-1], SmsSent)

    # the cause fixed, requeue completes it and empties the dead-letter stream
    assert "done" in _cli(runtime, "dlq", "requeue", entry_id, gateway=f"file:{fixed}")
    assert [type(e) for e in sms_of(ledger, "p1")] == [SmsRequested, SmsSent]
    assert _cli(runtime, "dlq", "list", gateway=f"file:{fixed}") == ""
    assert len(fixed.read_text().splitlines()) == 2


def correct(ledger: Ledger, call_id: str, code: str) -> None:
    ctx = Context(TENANT, "supervisor:sue", datetime.now(UTC))
    choice = Choice(code, T0 + timedelta(minutes=5))

    def decide(cat: Catalogue, call: Call, conv: Conversation | None) -> list[DomainEvent]:
        return rules.correct_outcome(cat, call, ctx, choice, reason="misclicked", conversation=conv)

    ledger.call_fact(ctx, call_id, decide)


def test_a_correction_cancels_the_unsent_sms_and_asks_for_the_new_outcomes(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "r1", "OFFER")  # a draft, never sent
    SmsPlanner(runtime.settings).run_once()
    correct(ledger, "r1", "THANKS")
    with Receiver() as gateway:
        follow(runtime, HttpGateway(gateway.url))
        call_uuid = aggregate_id(TENANT, "call", "r1")
        versions = [e.originator_version for e in ledger.events.get(call_uuid)]
        draft, new = (list(ledger.events.get(aggregate_id(TENANT, "sms", f"{call_uuid}/{v}"))) for v in versions[-2:])
        assert [type(e) for e in draft] == [SmsRequested, SmsCancelled]
        assert [type(e) for e in new] == [SmsRequested, SmsSent]
        assert len(gateway.deliveries) == 1


def test_a_correction_leaves_a_sent_sms_alone(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "r2", "THANKS")
    with Receiver() as gateway:
        follow(runtime, HttpGateway(gateway.url))
        correct(ledger, "r2", "QUIET")
        follow(runtime, HttpGateway(gateway.url))
        assert [type(e) for e in sms_of(ledger, "r2")] == [SmsRequested, SmsSent]
        assert len(gateway.deliveries) == 1


def test_the_agent_completes_and_sends_a_draft_through_the_api(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    select(ledger, "d1", "OFFER")
    SmsPlanner(runtime.settings).run_once()
    _, secret = runtime.registry.issue_key(TENANT, Role.PLATFORM)
    agent = {"Authorization": f"Bearer {secret}", "X-Acting-For": "agent:anna"}
    with TestClient(create_app(runtime)) as http, Receiver() as gateway:
        drafts = http.get("/v1/calls/d1/sms", headers=agent).json()
        assert [(d["status"], d["body"], d["draft"]) for d in drafts] == [("draft", "Hi Aino, {{offer}}", True)]
        send = f"/v1/sms/{drafts[0]['sms_id']}/send"
        refused = http.post(send, headers=agent, json={"body": "Hi Aino, {{offer}}"})
        assert refused.status_code == 422 and refused.json()["error"] == "draft_incomplete"
        follow(runtime, HttpGateway(gateway.url))
        assert gateway.deliveries == []  # a draft waits for the agent
        sent = http.post(send, headers=agent, json={"body": "Hi Aino, 20% off until Friday"})
        assert sent.status_code == 201, sent.text
        follow(runtime, HttpGateway(gateway.url))
        assert [body["body"] for _, body, _ in gateway.deliveries] == ["Hi Aino, 20% off until Friday"]
        assert http.get("/v1/calls/d1/sms", headers=agent).json()[0]["status"] == "sent"
        again = http.post(send, headers=agent, json={"body": "Hi again"})
        assert again.status_code == 409 and again.json()["error"] == "sms_not_draft"


def test_dead_letters_over_http_for_the_tenants_admins_and_supervisors(
    world: tuple[Runtime, Ledger], tmp_path: Path
) -> None:
    runtime, ledger = world
    broken = tmp_path / "not-a-file"
    broken.mkdir()
    select(ledger, "x1", "THANKS")
    SmsPlanner(runtime.settings).run_once()
    assert SmsSender(runtime.settings, FileGateway(broken), max_attempts=1).run_once() > 0  # dead-lettered
    runtime.create_tenant("other", "Other")  # on the same shard

    def bearer(tenant: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {runtime.registry.issue_key(tenant, role)[1]}"}

    admin, supervisor, agent = (bearer(TENANT, role) for role in (Role.ADMIN, Role.SUPERVISOR, Role.AGENT))
    stranger = bearer("other", Role.ADMIN)
    with TestClient(create_app(runtime)) as http:
        listed = http.get("/v1/dead-letters", headers=admin).json()
        assert [(d["worker"], d["type"], d["attempts"], d["tenant"]) for d in listed] == [
            ("actions.sms-sender", "SmsRequested", 1, TENANT)
        ]
        assert "IsADirectoryError" in listed[0]["reason"]
        letter = f"/v1/dead-letters/{listed[0]['id']}"
        assert http.get(letter, headers=supervisor).json() == listed[0]

        # refused: another role, no key, another tenant's admin (as if unknown), unknown and malformed ids
        forbidden = http.get("/v1/dead-letters", headers=agent)
        assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
        assert http.get(letter).status_code == 401
        assert http.get("/v1/dead-letters", headers=stranger).json() == []
        for path, who in ((letter, stranger), ("/v1/dead-letters/1-0", admin), ("/v1/dead-letters/nope", admin)):
            missing = http.get(path, headers=who)
            assert missing.status_code == 404 and missing.json()["error"] == "not_found", path
            assert "dead letter" in missing.json()["message"]


def test_the_planner_reads_the_calls_subject_key_with_the_call(world: tuple[Runtime, Ledger]) -> None:
    """A call without a contact seals its number with the call's own key (``call:<id>``): the
    planner reads that key in the round trip that reads the call and the catalogue."""
    runtime, ledger = world
    select(ledger, "k9", "THANKS", contact=None)
    (selection,) = [e for e in ledger.events.get(aggregate_id(TENANT, "call", "k9")) if isinstance(e, OutcomeSelected)]
    planner = SmsPlanner(runtime.settings)  # its own Ledger: no key cached yet
    try:
        subject = (TENANT, "call:k9")
        assert not planner.ledger.subject_keys.cached(*subject)
        request = planner.ledger.sms_requests(selection)[0]
        assert isinstance(request, SmsRequested) and request.to_number == NUMBER
        assert planner.ledger.subject_keys.cached(*subject)
    finally:
        planner.close()
    again = SmsPlanner(runtime.settings)
    try:
        with again.ledger._reading([], [subject]):  # read ahead, then gone from Redis
            runtime.client.delete(again.ledger.subject_keys.name(*subject))
            call = again.ledger.call(TENANT, "k9")
        assert call.contact_number == NUMBER  # opened with the key read ahead
    finally:
        again.close()
