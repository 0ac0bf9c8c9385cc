"""Configuration rules (PRODUCT.md §1), tested with plain values."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import pytest

from events.codec import DomainEvent
from events.types import (
    ContactHandling,
    OutcomeDefinition,
    OutcomeFlags,
    OutcomeHidden,
    ProjectSettings,
    WrapUp,
)
from services.catalogue import Catalogue, active_set, agent_outcomes, apply
from services.errors import (
    AutoCloseLimit,
    DuplicateOutcome,
    InvalidDefinition,
    NotFound,
    ShortcutKeyClash,
    TemplateHasTags,
)
from services.rules import Context
from services.rules import config as rules

CTX = Context("acme", "admin:k1", datetime(2026, 11, 22, tzinfo=UTC))
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
    return ProjectSettings(name="P", direction="outbound", **kw)  # type: ignore[arg-type]


def with_project(c: Catalogue, pid: str = "p1", hidden: Sequence[str] = (), **kw: object) -> Catalogue:
    return run(c, rules.create_project(c, CTX, pid, settings(**kw), hidden))


# -- built-ins ---------------------------------------------------------------------------------------


def test_a_new_tenant_starts_with_the_built_in_outcomes() -> None:
    c = with_project(tenant())
    active = active_set(c, "p1")
    assert set(active) == {"BUSY", "WRAP_UP_TIMEOUT"} | UNANSWERED
    assert all(active[code].definition.unanswered for code in UNANSWERED)
    assert not active["WRAP_UP_TIMEOUT"].definition.selectable
    assert active["BUSY"].definition.telephony_status == "busy"
    assert active["DROPPED"].definition.telephony_status == "drop_hang_up"
    # only BUSY counts toward the auto-close limit
    assert [o.definition.code for o in agent_outcomes(c, "p1")] == ["BUSY"]


# -- duplicates ----------------------------------------------------------------------------------------


def test_a_global_code_is_unique() -> None:
    c = run(tenant(), rules.define_outcome(tenant(), CTX, outcome("SALE")))
    with pytest.raises(DuplicateOutcome, match="code 'SALE'"):
        rules.define_outcome(c, CTX, outcome("SALE", "Another"))


def test_a_code_is_unique_among_one_projects_outcomes() -> None:
    c = with_project(tenant())
    c = run(c, rules.define_outcome(c, CTX, outcome("CB"), project_id="p1"))
    with pytest.raises(DuplicateOutcome, match="project 'p1' already has"):
        rules.define_outcome(c, CTX, outcome("CB", "Callback 2"), project_id="p1")
    c = with_project(c, "p2")
    run(c, rules.define_outcome(c, CTX, outcome("CB"), project_id="p2"))  # another project: fine


def test_no_two_outcomes_in_an_active_set_share_a_name() -> None:
    c = with_project(tenant())
    c = run(c, rules.define_outcome(c, CTX, outcome("SALE", "Sale")))
    with pytest.raises(DuplicateOutcome, match="'SALE' and 'SALE2' would both be called"):
        rules.define_outcome(c, CTX, outcome("SALE2", "sale"), project_id="p1")


def test_a_new_global_outcome_is_checked_against_every_project_it_would_appear_in() -> None:
    c = with_project(with_project(tenant()), "p2")
    c = run(c, rules.define_outcome(c, CTX, outcome("P2_SALE", "Sale"), project_id="p2"))
    with pytest.raises(DuplicateOutcome, match="project 'p2'"):
        rules.define_outcome(c, CTX, outcome("SALE", "Sale"))
    # available only where assigned: no clash in p2 until assigned there
    c = run(c, rules.define_outcome(c, CTX, outcome("SALE", "Sale"), availability="assigned"))
    run(c, rules.assign_outcome(c, CTX, "SALE", "p1"))
    with pytest.raises(DuplicateOutcome, match="project 'p2'"):
        rules.assign_outcome(c, CTX, "SALE", "p2")


def test_a_project_outcome_cannot_take_a_visible_global_code_and_unhiding_is_checked() -> None:
    c = with_project(tenant(), hidden=["BUSY"])
    c = run(c, rules.define_outcome(c, CTX, outcome("BUSY", "Line busy"), project_id="p1"))  # global hidden here
    with pytest.raises(DuplicateOutcome, match="'BUSY'"):
        rules.hide_outcome(c, CTX, "BUSY", "p1", hidden=False)
    c2 = with_project(tenant())
    with pytest.raises(DuplicateOutcome, match="'BUSY'"):
        rules.define_outcome(c2, CTX, outcome("BUSY", "Line busy"), project_id="p1")


def test_renaming_and_enabling_are_checked_too() -> None:
    c = with_project(tenant())
    c = run(c, rules.define_outcome(c, CTX, outcome("SALE", "Sale")))
    c = run(c, rules.define_outcome(c, CTX, outcome("LEAD", "Lead", enabled=False)))
    with pytest.raises(DuplicateOutcome):
        rules.change_outcome(c, CTX, outcome("LEAD", "Sale"))  # rename onto a visible name (disabled: fine)
    c = run(c, rules.change_outcome(c, CTX, outcome("LEAD", "Sale", enabled=False)))
    with pytest.raises(DuplicateOutcome):
        rules.set_enabled(c, CTX, "LEAD", True)


def test_shortcut_keys_are_unique_among_what_an_agent_sees() -> None:
    c = with_project(tenant())
    c = run(c, rules.define_outcome(c, CTX, outcome("SALE", shortcut_key="s")))
    with pytest.raises(ShortcutKeyClash, match="'s'"):
        rules.define_outcome(c, CTX, outcome("SURVEY", shortcut_key="s"), project_id="p1")


def test_retired_outcomes_leave_the_set_and_keep_their_code() -> None:
    c = with_project(tenant())
    c = run(c, rules.define_outcome(c, CTX, outcome("SALE")))
    c = run(c, rules.retire_outcome(c, CTX, "SALE"))
    assert "SALE" not in active_set(c, "p1")
    with pytest.raises(DuplicateOutcome):
        rules.define_outcome(c, CTX, outcome("SALE"))


# -- the outcome-set version ----------------------------------------------------------------------------


def test_the_outcome_set_version_moves_only_for_affected_projects() -> None:
    c = with_project(with_project(tenant()), "p2")
    v1, v2 = c.projects["p1"].set_version, c.projects["p2"].set_version
    c = run(c, rules.define_outcome(c, CTX, outcome("X"), project_id="p1"))
    assert (c.projects["p1"].set_version, c.projects["p2"].set_version) == (v1 + 1, v2)
    c = run(c, rules.define_outcome(c, CTX, outcome("SALE")))
    assert (c.projects["p1"].set_version, c.projects["p2"].set_version) == (v1 + 2, v2 + 1)
    c = run(c, rules.save_template(c, CTX, "t1", "Thanks!"))  # touches no outcome set
    assert (c.projects["p1"].set_version, c.projects["p2"].set_version) == (v1 + 2, v2 + 1)


# -- auto-close -----------------------------------------------------------------------------------------


def test_auto_close_needs_at_most_one_agent_outcome() -> None:
    c = run(tenant(), rules.define_outcome(tenant(), CTX, outcome("DONE")))
    with pytest.raises(AutoCloseLimit, match="BUSY, DONE"):
        with_project(c, auto_close_without_outcome=True)
    # hiding BUSY (as the seeds do) leaves one; unanswered-call outcomes never count
    c = with_project(c, hidden=["BUSY"], auto_close_without_outcome=True)
    assert [o.definition.code for o in agent_outcomes(c, "p1")] == ["DONE"]
    assert set(active_set(c, "p1")) >= UNANSWERED


def test_auto_close_with_zero_agent_outcomes() -> None:
    c = with_project(tenant(), hide_busy=True, auto_close_without_outcome=True)
    assert agent_outcomes(c, "p1") == []


def test_the_one_auto_close_outcome_must_fit_calls_and_conversations_without_revenue_or_length() -> None:
    base = tenant()
    for bad in (
        outcome("DONE", applies_to=("call",)),
        outcome("DONE", flags=OutcomeFlags(revenue="required")),
        outcome("DONE", min_call_seconds=30),
    ):
        c = run(base, rules.define_outcome(base, CTX, bad))
        with pytest.raises(AutoCloseLimit, match="DONE"):
            with_project(c, hidden=["BUSY"], auto_close_without_outcome=True)


def test_auto_close_refuses_a_project_level_second_agent_outcome() -> None:
    c = with_project(tenant(), hidden=["BUSY"], auto_close_without_outcome=True)
    c = run(c, rules.define_outcome(c, CTX, outcome("DONE"), project_id="p1"))
    with pytest.raises(AutoCloseLimit):
        rules.define_outcome(c, CTX, outcome("MORE"), project_id="p1")
    with pytest.raises(AutoCloseLimit):
        rules.hide_outcome(c, CTX, "BUSY", "p1", hidden=False)


def test_a_tenant_level_change_leaves_the_outcome_hidden_in_auto_close_projects() -> None:
    c = with_project(tenant(), hidden=["BUSY"], auto_close_without_outcome=True)
    c = run(c, rules.define_outcome(c, CTX, outcome("DONE"), project_id="p1"))
    c = with_project(c, "p2")
    [event] = rules.define_outcome(c, CTX, outcome("SALE"))
    assert event.hidden_in == ("p1",)  # type: ignore[attr-defined]
    c2 = run(c, [event])
    assert "SALE" not in active_set(c2, "p1") and "SALE" in active_set(c2, "p2")
    # making a disabled global outcome selectable/enabled does the same
    c3 = run(c, rules.define_outcome(c, CTX, outcome("LATER", enabled=False)))
    [enable] = rules.set_enabled(c3, CTX, "LATER", True)
    assert enable.hidden_in == ("p1",)  # type: ignore[attr-defined]
    # assigning one to the project: hidden and assigned, in one save
    c4 = run(c, rules.define_outcome(c, CTX, outcome("ONLY"), availability="assigned"))
    hide, assign = rules.assign_outcome(c4, CTX, "ONLY", "p1")
    assert isinstance(hide, OutcomeHidden)
    c5 = run(c4, [hide, assign])
    assert "ONLY" in c5.projects["p1"].assigned and "ONLY" not in active_set(c5, "p1")


# -- definitions ------------------------------------------------------------------------------------------


def test_redirect_to_flow_is_for_project_outcomes_on_conversations_only() -> None:
    c = with_project(tenant())
    with pytest.raises(InvalidDefinition, match="project-specific"):
        rules.define_outcome(c, CTX, outcome("BOT", redirect_to_flow="survey", applies_to=("conversation",)))
    with pytest.raises(InvalidDefinition, match="conversations only"):
        rules.define_outcome(c, CTX, outcome("BOT", redirect_to_flow="survey"), project_id="p1")
    run(
        c,
        rules.define_outcome(
            c, CTX, outcome("BOT", redirect_to_flow="survey", applies_to=("conversation",)), project_id="p1"
        ),
    )


def test_auto_sent_templates_contain_no_message_tags() -> None:
    c = run(tenant(), rules.save_template(tenant(), CTX, "thanks", "Thanks {{first_name}}!"))
    with pytest.raises(TemplateHasTags):
        rules.define_outcome(c, CTX, outcome("SALE", sms_template="thanks", auto_send=True))
    c = run(c, rules.define_outcome(c, CTX, outcome("SALE", sms_template="thanks")))  # a draft: tags fine
    c = run(c, rules.save_template(c, CTX, "plain", "Thanks!"))
    c = run(c, rules.define_outcome(c, CTX, outcome("LEAD", sms_template="plain", auto_send=True)))
    with pytest.raises(TemplateHasTags):
        rules.save_template(c, CTX, "plain", "Thanks {{first_name}}!")
    with pytest.raises(NotFound):
        rules.define_outcome(c, CTX, outcome("X", sms_template="missing"))


def test_outcomes_form_a_tree_without_cycles() -> None:
    c = run(tenant(), rules.define_outcome(tenant(), CTX, outcome("CONTACT")))
    c = run(c, rules.define_outcome(c, CTX, outcome("SALE", parent="CONTACT")))
    with pytest.raises(InvalidDefinition, match="cycle"):
        rules.change_outcome(c, CTX, outcome("CONTACT", parent="SALE"))
    with pytest.raises(NotFound):
        rules.define_outcome(c, CTX, outcome("X", parent="NOPE"))


def test_a_wrap_up_timeout_outcome_must_be_active_and_need_no_revenue_or_length() -> None:
    c = run(tenant(), rules.define_outcome(tenant(), CTX, outcome("PAID", flags=OutcomeFlags(revenue="required"))))
    timeout = WrapUp(mode="mandatory_with_timeout", timeout_seconds=60, timeout_outcome="PAID")
    with pytest.raises(InvalidDefinition, match="PAID"):
        with_project(c, wrap_up=timeout)
    with pytest.raises(InvalidDefinition, match="not in the active"):
        with_project(c, wrap_up=msgspec.structs.replace(timeout, timeout_outcome="NOPE"))
    with_project(c, wrap_up=msgspec.structs.replace(timeout, timeout_outcome="WRAP_UP_TIMEOUT"))


def test_contact_handling_roll_to_project_must_exist() -> None:
    c = with_project(tenant())
    with pytest.raises(NotFound):
        rules.define_outcome(c, CTX, outcome("ROLL", contact_handling=ContactHandling(roll_to_project="nope")))
    run(c, rules.define_outcome(c, CTX, outcome("ROLL", contact_handling=ContactHandling(roll_to_project="p1"))))
