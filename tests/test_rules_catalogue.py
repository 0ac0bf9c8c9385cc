"""Configuration rules of PRODUCT.md §1 not covered by test_rules_config.py, tested with plain
values (services.rules.config on services.catalogue). Each test names the rule it proves; the
table in docs/rules.md maps seed statements and PRODUCT rules to these tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest

from events.codec import DomainEvent
from events.types import (
    AgentTeamChanged,
    CallingHours,
    ContactHandling,
    DoNotCallSpec,
    FinalSpec,
    FollowUpSpec,
    OutcomeChanged,
    OutcomeDefinition,
    OutcomeFlags,
    OutcomeRetired,
    ProjectSettings,
    RecallSpec,
    TargetMix,
    WaitingPeriodSpec,
    WrapUp,
)
from services.catalogue import Catalogue, active_set, agent_outcomes, apply, definition_of
from services.errors import AutoCloseLimit, Conflict, DuplicateOutcome, InvalidDefinition, NotFound, OutcomeRetiredError
from services.rules import Context
from services.rules import config as rules

CTX = Context("acme", "admin:k1", datetime(2026, 11, 22, tzinfo=UTC))
BUILT_INS = ("BUSY", "NO_ANSWER", "ANSWERING_MACHINE", "FAX_MODEM", "DROPPED", "OPERATOR_INTERCEPT", "WRAP_UP_TIMEOUT")
UNANSWERED = {"NO_ANSWER", "ANSWERING_MACHINE", "FAX_MODEM", "DROPPED", "OPERATOR_INTERCEPT"}


def run(catalogue: Catalogue | None, events: Sequence[DomainEvent]) -> Catalogue:
    for e in events:
        catalogue = apply(e, catalogue)
    assert catalogue is not None
    return catalogue


def tenant() -> Catalogue:
    return run(None, rules.create_tenant(uuid.uuid4(), CTX, "Acme", "Europe/Helsinki"))


def outcome(code: str, name: str | None = None, **kw: object) -> OutcomeDefinition:
    return OutcomeDefinition(code=code, name=name or code.title(), **kw)  # type: ignore[arg-type]


def settings(**kw: object) -> ProjectSettings:
    return ProjectSettings(**{"name": "P", "direction": "outbound", **kw})  # type: ignore[arg-type]


def with_project(c: Catalogue, pid: str = "p1", hidden: Sequence[str] = (), **kw: object) -> Catalogue:
    return run(c, rules.create_project(c, CTX, pid, settings(**kw), hidden))


def define(c: Catalogue, d: OutcomeDefinition, **kw: object) -> Catalogue:
    return run(c, rules.define_outcome(c, CTX, d, **kw))  # type: ignore[arg-type]


def version(c: Catalogue, pid: str = "p1") -> int:
    return c.projects[pid].set_version


# -- tenant and built-in outcomes ------------------------------------------------------------------


def test_a_tenant_has_a_time_zone() -> None:
    c = tenant()
    assert c.time_zone == "Europe/Helsinki" and c.tenant_id == "acme"


@pytest.mark.parametrize("code", BUILT_INS)
def test_every_built_in_outcome_is_hideable_per_project(code: str) -> None:
    c = with_project(with_project(tenant()), "p2")
    before = version(c)
    c = run(c, rules.hide_outcome(c, CTX, code, "p1"))
    assert code not in active_set(c, "p1") and code in active_set(c, "p2")
    assert version(c) == before + 1
    c = run(c, rules.hide_outcome(c, CTX, code, "p1", hidden=False))
    assert code in active_set(c, "p1")


def test_busy_is_hidden_by_the_project_setting_and_then_stops_counting_toward_auto_close() -> None:
    c = with_project(tenant(), hide_busy=True)
    assert "BUSY" not in active_set(c, "p1") and agent_outcomes(c, "p1") == []
    # unanswered-call outcomes stay, in any number, and never count
    assert set(active_set(c, "p1")) >= UNANSWERED
    c = run(c, rules.change_project(c, CTX, "p1", settings(hide_busy=True, auto_close_without_outcome=True)))
    assert [o.definition.code for o in agent_outcomes(c, "p1")] == []


def test_the_unanswered_call_outcomes_are_the_built_in_ones_only() -> None:
    c = with_project(tenant())
    with pytest.raises(InvalidDefinition, match="built-in unanswered"):
        rules.define_outcome(c, CTX, outcome("RING_OUT", unanswered=True))
    with pytest.raises(InvalidDefinition, match="built-in unanswered"):
        rules.define_outcome(c, CTX, outcome("NO_ANSWER", unanswered=True), project_id="p1")
    # a changed built-in stays an unanswered-call outcome
    c = run(c, rules.change_outcome(c, CTX, outcome("NO_ANSWER", "No reply", telephony_status="no_answer")))
    assert active_set(c, "p1")["NO_ANSWER"].definition.unanswered


# -- scope: global (all / assigned) or project-specific -----------------------------------------


def test_global_outcomes_are_for_all_projects_or_only_those_they_are_assigned_to() -> None:
    c = with_project(with_project(tenant()), "p2")
    c = define(c, outcome("SALE"))
    c = define(c, outcome("LEAD"), availability="assigned")
    assert "SALE" in active_set(c, "p1") and "SALE" in active_set(c, "p2")
    assert "LEAD" not in active_set(c, "p1") and "LEAD" not in active_set(c, "p2")
    before = version(c, "p2")
    c = run(c, rules.assign_outcome(c, CTX, "LEAD", "p1"))
    assert "LEAD" in active_set(c, "p1") and "LEAD" not in active_set(c, "p2")
    assert version(c, "p2") == before  # p2's set did not move
    c = run(c, rules.assign_outcome(c, CTX, "LEAD", "p1", assigned=False))
    assert "LEAD" not in active_set(c, "p1")


def test_a_project_specific_outcome_lives_inside_its_project_only() -> None:
    c = with_project(with_project(tenant()), "p2")
    c = define(c, outcome("CB", "Callback"), project_id="p1")
    assert "CB" in active_set(c, "p1") and "CB" not in active_set(c, "p2")
    assert active_set(c, "p1")["CB"].scope == "project" and active_set(c, "p1")["BUSY"].scope == "global"
    with pytest.raises(NotFound):
        rules.define_outcome(c, CTX, outcome("X"), project_id="nope")


def test_a_disabled_outcome_leaves_the_active_set_until_enabled() -> None:
    c = with_project(tenant())
    c = define(c, outcome("SALE"))
    c = define(c, outcome("CB", "Callback"), project_id="p1")
    before = version(c)
    c = run(c, rules.set_enabled(c, CTX, "SALE", False))
    c = run(c, rules.set_enabled(c, CTX, "CB", False, project_id="p1"))
    assert not {"SALE", "CB"} & set(active_set(c, "p1"))
    assert version(c) == before + 2
    c = run(c, rules.set_enabled(c, CTX, "SALE", True))
    assert "SALE" in active_set(c, "p1")


# -- changing and retiring never rewrites history ---------------------------------------------------


def test_every_definition_change_is_an_event_with_its_actor_and_the_old_definition_stays_in_history() -> None:
    c = with_project(tenant())
    c = define(c, outcome("SALE", "Sale", flags=OutcomeFlags(success=True)))
    old = definition_of(c, "p1", "SALE")
    before = version(c)
    [changed] = rules.change_outcome(c, CTX, outcome("SALE", "Closed deal", flags=OutcomeFlags(success=True)))
    assert isinstance(changed, OutcomeChanged) and changed.actor == "admin:k1"
    assert changed.affected_projects == ("p1",)
    c = run(c, [changed])
    assert definition_of(c, "p1", "SALE") != old and version(c) == before + 1
    [retired] = rules.retire_outcome(c, CTX, "SALE")
    assert isinstance(retired, OutcomeRetired) and retired.actor == "admin:k1"
    c = run(c, [retired])
    # retired, never deleted: the definition is still there, out of every set, and unchangeable
    assert definition_of(c, "p1", "SALE") is not None and "SALE" not in active_set(c, "p1")
    with pytest.raises(OutcomeRetiredError):
        rules.change_outcome(c, CTX, outcome("SALE", "Again"))


def test_the_outcome_set_version_moves_with_every_kind_of_change_that_affects_it() -> None:
    c = with_project(tenant())
    c = define(c, outcome("SALE", shortcut_key="s"))
    c = define(c, outcome("LEAD"), availability="assigned")
    steps: list[Callable[[Catalogue], Sequence[DomainEvent]]] = [
        lambda c: rules.change_outcome(c, CTX, outcome("SALE", "Deal", shortcut_key="s")),  # rename
        lambda c: rules.change_outcome(c, CTX, outcome("SALE", "Deal", shortcut_key="d")),  # shortcut key
        lambda c: rules.hide_outcome(c, CTX, "SALE", "p1"),
        lambda c: rules.hide_outcome(c, CTX, "SALE", "p1", hidden=False),
        lambda c: rules.assign_outcome(c, CTX, "LEAD", "p1"),
        lambda c: rules.set_enabled(c, CTX, "LEAD", False),
        lambda c: rules.define_outcome(c, CTX, outcome("CB", "Callback"), project_id="p1"),
        lambda c: rules.retire_outcome(c, CTX, "CB", project_id="p1"),
        lambda c: rules.change_project(c, CTX, "p1", settings(hide_busy=True)),
    ]
    for step in steps:
        before = version(c)
        c = run(c, step(c))
        assert version(c) == before + 1
    # changes that touch no outcome set leave it
    before = version(c)
    c = run(c, rules.register_agent(c, CTX, "anna", "Anna"))
    c = run(c, rules.change_project(c, CTX, "p1", settings(hide_busy=True, contact_list="spring")))
    assert version(c) == before


# -- auto-close ------------------------------------------------------------------------------------------


def test_turning_auto_close_on_is_checked_like_creating_the_project() -> None:
    c = with_project(define(tenant(), outcome("DONE")))
    with pytest.raises(AutoCloseLimit, match="BUSY, DONE"):
        rules.change_project(c, CTX, "p1", settings(auto_close_without_outcome=True))
    c2 = with_project(define(tenant(), outcome("DONE", applies_to=("call",))), hidden=["BUSY"])
    with pytest.raises(AutoCloseLimit, match="both"):
        rules.change_project(c2, CTX, "p1", settings(auto_close_without_outcome=True))
    c3 = with_project(define(tenant(), outcome("DONE")), hidden=["BUSY"])
    run(c3, rules.change_project(c3, CTX, "p1", settings(auto_close_without_outcome=True)))


def test_auto_close_allows_one_global_or_one_project_outcome_not_both() -> None:
    c = with_project(define(tenant(), outcome("DONE")), hidden=["BUSY"], auto_close_without_outcome=True)
    with pytest.raises(AutoCloseLimit, match="DONE, LOCAL"):
        rules.define_outcome(c, CTX, outcome("LOCAL"), project_id="p1")
    c = run(c, rules.hide_outcome(c, CTX, "DONE", "p1"))
    c = define(c, outcome("LOCAL"), project_id="p1")
    assert [o.definition.code for o in agent_outcomes(c, "p1")] == ["LOCAL"]
    # a second one is refused at project level; a system-only one does not count
    c = define(c, outcome("SYS", selectable=False), project_id="p1")
    with pytest.raises(AutoCloseLimit):
        rules.hide_outcome(c, CTX, "DONE", "p1", hidden=False)
    assert "SYS" in active_set(c, "p1")


def test_making_a_global_outcome_agent_selectable_leaves_it_hidden_in_auto_close_projects() -> None:
    c = with_project(tenant(), hidden=["BUSY"], auto_close_without_outcome=True)
    c = define(c, outcome("DONE"), project_id="p1")
    c = with_project(c, "p2")
    c = define(c, outcome("AUTO", selectable=False))
    assert "AUTO" in active_set(c, "p1")  # system-only: no agent outcome, no limit
    [event] = rules.change_outcome(c, CTX, outcome("AUTO"))
    assert event.hidden_in == ("p1",)  # type: ignore[attr-defined]
    c = run(c, [event])
    assert "AUTO" not in active_set(c, "p1") and "AUTO" in active_set(c, "p2")
    assert [o.definition.code for o in agent_outcomes(c, "p1")] == ["DONE"]


# -- definitions ------------------------------------------------------------------------------------------


def test_sms_templates_are_for_global_outcomes_only_and_auto_send_needs_one() -> None:
    c = with_project(tenant())
    c = run(c, rules.save_template(c, CTX, "thanks", "Thanks!"))
    with pytest.raises(InvalidDefinition, match="global outcomes only"):
        rules.define_outcome(c, CTX, outcome("SMS", sms_template="thanks"), project_id="p1")
    with pytest.raises(InvalidDefinition, match="needs an sms_template"):
        rules.define_outcome(c, CTX, outcome("SMS", auto_send=True))
    c = define(c, outcome("SMS", sms_template="thanks", auto_send=True))
    # templates are tenant resources: one template, any number of outcomes
    define(c, outcome("SMS2", "Sms two", sms_template="thanks"))


def test_contact_handling_message_and_follow_up_are_part_of_the_definition() -> None:
    handling = ContactHandling(
        final=FinalSpec(scope="all", whole_company=True),
        remove_from_list=True,
        move_to_list="cold",
        do_not_call=DoNotCallSpec(numbers="all", scope="tenant"),
        recall=RecallSpec(delay_seconds=3600, max_attempts=2, agent_may_change_time=True, owner="agent"),
        waiting_period=WaitingPeriodSpec(seconds=86_400, repeat_seconds=7 * 86_400),
        reset_attempts=True,
    )
    c = with_project(tenant())
    c = run(c, rules.create_team(c, CTX, "t1", "T"))
    d = outcome(
        "LOST",
        "Lost",
        contact_handling=handling,
        follow_up=FollowUpSpec(owner_team="t1", due_within_seconds=3600),
        flags=OutcomeFlags(contact=True, polarity="negative", first_call_resolution=True),
        telephony_status="person",
        category="closed",
    )
    c = define(c, d)
    assert active_set(c, "p1")["LOST"].definition == d


def test_a_project_keeps_its_direction_list_quotas_calling_hours_and_target_mix() -> None:
    s = settings(
        direction="blended",
        contact_list="winter-2026",
        quotas={"BUSY": 100},
        calling_hours=CallingHours(start="09:00", end="18:00", weekdays=(0, 1, 2, 3, 4)),
        target_mix=TargetMix(shares={"BUSY": 0.2}, tolerance=0.1),
        keep_conversation_active_when_outbound_unanswered=True,
        wrap_up=WrapUp(mode="mandatory"),
    )
    c = run(tenant(), rules.create_project(tenant(), CTX, "p1", s))
    assert c.projects["p1"].settings == s


def test_people_agents_and_teams_membership_changes_are_events() -> None:
    c = tenant()
    c = run(c, rules.register_agent(c, CTX, "anna", "Anna"))
    c = run(c, rules.create_team(c, CTX, "north", "North"))
    c = run(c, rules.create_team(c, CTX, "south", "South"))
    moves = []
    for team in ("north", "south", None):
        [event] = rules.set_agent_team(c, CTX, "anna", team)
        assert isinstance(event, AgentTeamChanged) and event.actor == "admin:k1"
        moves.append(event)
        c = run(c, [event])
        assert c.agent_team["anna"] == team
    assert [m.team_id for m in moves] == ["north", "south", None]
    assert moves[0].originator_version < moves[1].originator_version < moves[2].originator_version
    with pytest.raises(NotFound):
        rules.set_agent_team(c, CTX, "bob", "north")
    with pytest.raises(NotFound):
        rules.set_agent_team(c, CTX, "anna", "west")
    with pytest.raises(Conflict):
        rules.create_team(c, CTX, "north", "North again")


# -- rules the first pass missed (see docs/rules.md) -----------------------------------------------------


def test_two_global_outcomes_for_all_projects_may_not_share_a_name_even_before_any_project() -> None:
    c = define(tenant(), outcome("SALE", "Sale"))
    with pytest.raises(DuplicateOutcome, match="SALE"):
        rules.define_outcome(c, CTX, outcome("DEAL", "Sale"))


def test_turning_auto_close_on_moves_the_outcome_set_version() -> None:
    c = with_project(tenant(), hide_busy=True)
    before = version(c)
    c = run(c, rules.change_project(c, CTX, "p1", settings(hide_busy=True, auto_close_without_outcome=True)))
    assert version(c) == before + 1


def test_a_wrap_up_timeout_outcome_must_apply_to_calls() -> None:
    c = define(tenant(), outcome("LATER", "Later", applies_to=("conversation",)))
    timeout = WrapUp(mode="mandatory_with_timeout", timeout_seconds=30, timeout_outcome="LATER")
    with pytest.raises(InvalidDefinition, match="LATER"):
        with_project(c, wrap_up=timeout)


def test_close_conversation_with_call_needs_an_outcome_that_applies_to_conversations_too() -> None:
    with pytest.raises(InvalidDefinition, match="CLOSE"):
        rules.define_outcome(tenant(), CTX, outcome("CLOSE", applies_to=("call",), close_conversation_with_call=True))
