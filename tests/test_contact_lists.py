"""Contact-list effects end to end (PRODUCT.md §3): a selection through the real Ledger and
the ContactListPlanner to the dialing record, the published stream and the dialability
answer, over real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import msgspec
import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from litestar.testing import TestClient

from events.keys import ShardKeys
from events.store import StreamEntries
from events.types import (
    CallAttemptCounted,
    CallingHours,
    ContactFinalised,
    ContactHandling,
    DoNotCallSpec,
    FinalSpec,
    OutcomeDefinition,
    ProjectSettings,
    RecallCalledBack,
    RecallHandedOver,
    RecallScheduled,
    RecallSpec,
)
from services.api.app import create_app
from services.errors import NotFound
from services.ledger import Ledger
from services.permissions import Role
from services.rules import Context
from services.rules import interactions as rules
from services.rules.contact_lists import dialing_id, source_of
from services.rules.interactions import Choice
from services.runtime import Runtime
from tests.helpers import new_runtime
from workers.contact_lists import ContactListPlanner
from workers.timers import TimerRunner

TENANT = "lists"
NUMBER = "+358401234567"
# Monday 2026-03-30 12:00 in Helsinki (UTC+3)
MONDAY_NOON = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
HOURS = CallingHours(start="09:00", end="17:00", weekdays=(0, 1, 2, 3, 4))


def seed(runtime: Runtime) -> Ledger:
    runtime.create_tenant(TENANT, "Lists")
    ledger = runtime.ledger(TENANT)
    admin = Context(TENANT, "admin:test", datetime.now(UTC))
    recall = RecallSpec(delay_seconds=3_600, owner="agent", handover_after_seconds=1_800, max_attempts=2)
    for code, handling in {
        "CALL_BACK": ContactHandling(recall=recall),
        "NOT_INTERESTED": ContactHandling(final=FinalSpec(scope="project")),
        "DNC": ContactHandling(do_not_call=DoNotCallSpec(numbers="this", scope="tenant")),
        "QUIET": ContactHandling(),
    }.items():
        ledger.define_outcome(admin, OutcomeDefinition(code=code, name=code.title(), contact_handling=handling))
    ledger.create_project(admin, "p", ProjectSettings(name="P", direction="outbound", calling_hours=HOURS))
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


def call(ledger: Ledger, call_id: str, code: str | None, at: datetime = MONDAY_NOON, agent: str = "anna") -> None:
    ctx = Context(TENANT, f"agent:{agent}", datetime.now(UTC))
    ledger.start_call(
        ctx,
        call_id=call_id,
        project_id="p",
        direction="outbound",
        occurred_at=at,
        agent_id=agent,
        contact_id="c1",
        contact_number=NUMBER,
    )
    ledger.end_call(ctx, call_id=call_id, occurred_at=at + timedelta(minutes=2))
    if code:
        ledger.select_call_outcome(ctx, call_id=call_id, choice=Choice(code, at + timedelta(minutes=2), agent_id=agent))


def follow(runtime: Runtime) -> None:
    planner = ContactListPlanner(runtime.settings)
    while planner.run_once():
        pass


def published(runtime: Runtime) -> list[dict[str, str]]:
    key = ShardKeys(runtime.settings.shard, runtime.settings.key_prefix).published("contact-lists", TENANT)
    entries = cast(StreamEntries, runtime.client.xrange(key))
    return [{k.decode(): v.decode() for k, v in fields.items()} | {"_id": e.decode()} for e, fields in entries]


@pytest.fixture
def world(redis_url: str, shard: str) -> tuple[Runtime, Ledger]:
    runtime = new_runtime(redis_url, shard)
    return runtime, seed(runtime)


def test_a_recall_is_scheduled_linked_to_the_next_call_and_answered_by_dialability(
    world: tuple[Runtime, Ledger],
) -> None:
    runtime, ledger = world
    call(ledger, "k1", "CALL_BACK")
    follow(runtime)
    record = ledger.dialing_record(TENANT, "c1")
    assert record is not None
    recall = record.recalls["p"]
    selected_at = MONDAY_NOON + timedelta(minutes=2)
    assert recall.due_at == selected_at + timedelta(hours=1) and recall.owner_agent == "anna"
    assert record.attempts == {"p": 1}
    handover = selected_at + timedelta(hours=1, minutes=30)

    answer = ledger.dialability(TENANT, "c1", "p", NUMBER, selected_at, "automatic")
    assert (answer.allowed, answer.reason, answer.until) == (False, "recall_owned", handover)
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, selected_at, "manual", agent_id="anna").allowed
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, handover, "automatic").allowed

    # the owner calls back: linked to the recall, and answered -> called back
    ctx = Context(TENANT, "agent:anna", datetime.now(UTC))
    later = MONDAY_NOON + timedelta(hours=1, minutes=5)
    ledger.start_call(
        ctx, call_id="k2", project_id="p", direction="outbound", occurred_at=later, contact_id="c1", agent_id="anna"
    )
    ledger.call_fact(ctx, "k2", lambda cat, c, conv: rules.answer_call(c, ctx, occurred_at=later, agent_id="anna"))
    follow(runtime)
    events = list(ledger.events.get(dialing_id(TENANT, "c1")))
    assert [type(e) for e in events] == [CallAttemptCounted, RecallScheduled, CallAttemptCounted, RecallCalledBack]
    counted = events[2]
    assert isinstance(counted, CallAttemptCounted)
    assert (counted.attempts, counted.recall, counted.recall_attempts) == (2, events[1].source, 1)  # type: ignore[attr-defined]
    record = ledger.dialing_record(TENANT, "c1")
    assert record is not None and not record.recalls["p"].open
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, later, "automatic").allowed

    # the published stream tells dialers each change once, keyed by the event id, at its log position
    entries = published(runtime)
    assert [e["type"] for e in entries] == [type(e).type_name for e in events]
    assert [e["id"] for e in entries] == [f"{e.originator_id}/{e.originator_version}" for e in events]
    assert all(e["contact_id"] == "c1" for e in entries)
    data = msgspec.json.decode(entries[1]["data"])
    assert data["due_at"].startswith("2026-03-30T10:02")


def test_final_and_do_not_call_with_their_scopes(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    admin = Context(TENANT, "admin:test", datetime.now(UTC))
    ledger.create_project(admin, "q", ProjectSettings(name="Q", direction="outbound"))
    call(ledger, "f1", "NOT_INTERESTED")
    follow(runtime)
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, MONDAY_NOON, "manual").reason == "final"
    assert ledger.dialability(TENANT, "c1", "q", NUMBER, MONDAY_NOON).allowed  # this project only
    call(ledger, "f2", "DNC")
    follow(runtime)
    assert ledger.dialability(TENANT, "c1", "q", NUMBER, MONDAY_NOON).reason == "do_not_call"  # tenant-wide
    assert ledger.dialability(TENANT, "c1", "q", "+358409999999", MONDAY_NOON).allowed  # this number only
    finals = [e for e in ledger.events.get(dialing_id(TENANT, "c1")) if isinstance(e, ContactFinalised)]
    selection = list(ledger.events.get(ledger.call(TENANT, "f1").id))[-1]
    assert [f.source for f in finals] == [source_of(selection)]  # what a correction will look for


def test_opt_out_and_unknown_ids(world: tuple[Runtime, Ledger]) -> None:
    _, ledger = world
    system = Context(TENANT, "system", datetime.now(UTC))
    ledger.opt_out(system, contact_id="c1", channel="voice", occurred_at=MONDAY_NOON)
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, MONDAY_NOON).reason == "opted_out"
    with pytest.raises(NotFound):
        ledger.dialability(TENANT, "nobody", "p", NUMBER, MONDAY_NOON)
    with pytest.raises(NotFound):
        ledger.dialability(TENANT, "c1", "nope", NUMBER, MONDAY_NOON)


def test_delivered_twice_and_twin_followers_record_each_effect_once(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    for n in range(4):
        call(ledger, f"t{n}", "CALL_BACK" if n % 2 else "QUIET")
    first, twin = ContactListPlanner(runtime.settings, batch_size=3), ContactListPlanner(runtime.settings, batch_size=2)
    while first.run_once() + twin.run_once():
        pass
    # the same log positions again, as a redelivery would bring them: each save refused whole
    refused = 0
    for nid in range(1, 60):
        planner = ContactListPlanner(runtime.settings)
        found = planner.client.xrange(planner.keys.log, f"{nid}-0", f"{nid}-0")
        if not found or found[0][1][b"t"] not in planner.wanted:
            continue
        tenant, decided = planner.decide(planner.decode(found[0][1]))
        if decided:
            with pytest.raises(IntegrityError):
                planner.ledger.save_tracked(tenant, decided, Tracking(planner.name, nid))
            refused += 1
    assert refused == 4 + 2  # four attempts counted, two recalls
    follow(runtime)
    events = list(ledger.events.get(dialing_id(TENANT, "c1")))
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("CallAttemptCounted") == 4 and kinds.count("RecallScheduled") == 2
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    assert len(published(runtime)) == len(events)


def test_dialability_over_http(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    _, platform = runtime.registry.issue_key(TENANT, Role.PLATFORM)
    _, manager = runtime.registry.issue_key(TENANT, Role.MANAGER)
    call(ledger, "h1", "NOT_INTERESTED")
    follow(runtime)
    with TestClient(create_app(runtime)) as client:
        url = "/v1/contacts/c1/dialability"
        headers = {"Authorization": f"Bearer {platform}"}
        r = client.get(url, params={"project_id": "p", "number": NUMBER, "mode": "manual"}, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"allowed": False, "reason": "final", "until": None}
        r = client.get(url, params={"project_id": "p"}, headers={"Authorization": f"Bearer {manager}"})
        assert r.status_code == 200 and r.json()["reason"] == "final"
        r = client.get(url, params={"project_id": "p", "mode": "bogus"}, headers=headers)
        assert r.status_code == 400 and "mode" in r.json()["message"]
        r = client.get("/v1/contacts/nobody/dialability", params={"project_id": "p"}, headers=headers)
        assert r.status_code == 404


def test_a_correction_acts_as_a_new_selection(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    call(ledger, "r1", "QUIET")
    boss = Context(TENANT, "supervisor:sue", datetime.now(UTC))
    at = MONDAY_NOON + timedelta(minutes=5)
    ledger.call_fact(
        boss, "r1", lambda cat, c, conv: rules.correct_outcome(cat, c, boss, Choice("DNC", at), reason="misheard")
    )
    follow(runtime)
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, MONDAY_NOON).reason == "do_not_call"
    correction = list(ledger.events.get(ledger.call(TENANT, "r1").id))[-1]
    dnc = list(ledger.events.get(dialing_id(TENANT, "c1")))[-1]
    assert dnc.source == source_of(correction)  # type: ignore[attr-defined]


def correct(ledger: Ledger, call_id: str, code: str, *, lift: bool = False) -> None:
    boss = Context(TENANT, "supervisor:sue", datetime.now(UTC))
    at = MONDAY_NOON + timedelta(minutes=5)
    ledger.call_fact(
        boss,
        call_id,
        lambda cat, c, conv: rules.correct_outcome(
            cat, c, boss, Choice(code, at), reason="misheard", lift_suppressions=lift
        ),
    )


def kinds(ledger: Ledger) -> list[str]:
    return [type(e).__name__ for e in ledger.events.get(dialing_id(TENANT, "c1"))]


def test_a_correction_cancels_the_recall_and_lifts_only_what_it_is_told(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    at = MONDAY_NOON + timedelta(minutes=10)
    call(ledger, "x1", "CALL_BACK")
    follow(runtime)
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, at).reason == "recall_owned"
    correct(ledger, "x1", "QUIET")
    follow(runtime)
    assert kinds(ledger)[-1] == "RecallCancelled"
    cancelled = list(ledger.events.get(dialing_id(TENANT, "c1")))[-1]
    correction = list(ledger.events.get(ledger.call(TENANT, "x1").id))[-1]
    assert cancelled.source == source_of(correction)  # type: ignore[attr-defined]
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, at).allowed
    assert published(runtime)[-1]["type"] == "RecallCancelled"  # dialers are told

    # a do-not-call stands through a correction that does not say to lift it ...
    call(ledger, "x2", "DNC")
    call(ledger, "x3", "DNC")
    follow(runtime)
    correct(ledger, "x2", "QUIET")
    follow(runtime)
    assert "DoNotCallLifted" not in kinds(ledger)
    # ... and one that does lifts only its own selection's entry: x2's still holds
    correct(ledger, "x3", "QUIET", lift=True)
    follow(runtime)
    assert kinds(ledger)[-1] == "DoNotCallLifted"
    record = ledger.dialing_record(TENANT, "c1")
    x2 = list(ledger.events.get(ledger.call(TENANT, "x2").id))
    assert record is not None and [d.source for d in record.do_not_call] == [source_of(x2[-2])]
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, at).reason == "do_not_call"


def test_a_correction_lifting_a_final_then_applying_the_new_outcome_in_one_save(
    world: tuple[Runtime, Ledger],
) -> None:
    runtime, ledger = world
    call(ledger, "y1", "NOT_INTERESTED")
    follow(runtime)
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, MONDAY_NOON, "manual").reason == "final"
    correct(ledger, "y1", "CALL_BACK", lift=True)
    follow(runtime)
    events = list(ledger.events.get(dialing_id(TENANT, "c1")))
    assert [type(e).__name__ for e in events][-2:] == ["FinalLifted", "RecallScheduled"]
    lifted, scheduled = events[-2:]
    assert lifted.source == scheduled.source  # type: ignore[attr-defined]
    # the planner wrote both with one log position: one save
    assert lifted.recorded_at == scheduled.recorded_at  # type: ignore[attr-defined]
    answer = ledger.dialability(TENANT, "c1", "p", NUMBER, MONDAY_NOON + timedelta(minutes=10))
    assert answer.reason == "recall_owned"  # the final is gone; the new recall is anna's
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, MONDAY_NOON, "manual", agent_id="anna").allowed


def test_the_recall_hand_over_is_recorded_once_by_the_durable_timer(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    call(ledger, "z1", "CALL_BACK")  # long ago: its hand-over time has passed
    follow(runtime)  # the timer is written with the RecallScheduled
    timers = TimerRunner(runtime.settings)
    try:
        assert timers.run_once() == 1
        assert timers.run_once() == 0
    finally:
        timers.close()
    events = list(ledger.events.get(dialing_id(TENANT, "c1")))
    assert [type(e).__name__ for e in events] == ["CallAttemptCounted", "RecallScheduled", "RecallHandedOver"]
    handed = events[-1]
    assert isinstance(handed, RecallHandedOver) and handed.from_agent == "anna"
    assert handed.occurred_at == MONDAY_NOON + timedelta(hours=1, minutes=32)
    record = ledger.dialing_record(TENANT, "c1")
    assert record is not None and record.recalls["p"].handed_over
    # anyone's now: the dialer and another agent
    due = MONDAY_NOON + timedelta(hours=1, minutes=2)
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, due).allowed
    assert ledger.dialability(TENANT, "c1", "p", NUMBER, due, "manual", agent_id="ben").allowed
    assert published(runtime)[-1]["type"] == "RecallHandedOver"


def test_a_recall_cancelled_before_its_hand_over_is_not_handed_over(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    call(ledger, "z2", "CALL_BACK")
    correct(ledger, "z2", "QUIET")
    follow(runtime)
    timers = TimerRunner(runtime.settings)
    try:
        assert timers.run_once() == 1  # fired, found nothing to hand over
    finally:
        timers.close()
    assert kinds(ledger) == ["CallAttemptCounted", "RecallScheduled", "RecallCancelled"]
