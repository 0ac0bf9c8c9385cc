"""What-if (PRODUCT.md §5): a proposed outcome-definition change tried on the last N days,
writing nothing.

The proposal is a list of configuration changes (change, define, hide/unhide, enable/disable,
retire an outcome), each decided by the very rule of ``services.rules.config`` a real change
runs, on the tenant's catalogue as it is now, one after the other: a proposal the real change
would refuse is refused here with the same error. Applied in memory, the decided events give
the **proposed catalogue**; nothing is saved.

Then, for each project, over the interactions that started in the window (tenant-local days,
the rates' period; read from the interactions view):

* the selections of an outcome whose definition the proposal changes in that project are
  taken with the proposed definition; every other selection keeps the definition it was
  made under ("as defined then", what the reports show);
* **rates** (PRODUCT.md §4, ``projections.rates.compute``): as reported, and with the proposal;
* **mix**: per outcome, the interactions whose standing outcome it is (a proposal changes no
  selection, so the counts stay; what moves is the category they count under, whether the
  outcome is in the project's active set -- hidden, disabled, retired or added -- and the
  rates); selections of outcomes the proposal takes out of the set are counted as ones the
  agents could not have made;
* **follow-up actions**: each such selection's SMS, follow-up task and contact-list events
  are decided twice by the rules the action workers run (``Ledger.sms_requests``,
  ``follow_up_requests``, ``contact_list_effects``: decided, not saved) -- with the definition
  it was made under, and with the proposed one -- and counted by event type. They are decided
  against the contact's records as they are now, not as they were when the selection was made.

Everything here reads: the catalogue, the view's records, the contact index, aggregates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, Literal, assert_never
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
import redis

from events.codec import DomainEvent, now
from events.keys import ShardKeys
from events.types import OutcomeCorrected, OutcomeDefinition, OutcomeSelected
from projections import rates as rates_view
from projections.interactions import NAME as INTERACTIONS
from projections.interactions import Record, flags_of
from services.api.bodies import Code, ExternalId, OutcomeBody, narrow
from services.catalogue import Catalogue, active_set, definition_of, project_catalogue
from services.errors import DomainError, NotFound
from services.ledger import Ledger
from services.rules import Context
from services.rules import config as config_rules

MAX_DAYS = 92


# -- the proposal -------------------------------------------------------------------------------------


class _Change(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="op"):
    pass


class ChangeOutcome(_Change, frozen=True, kw_only=True, tag="change_outcome"):
    """Replace an outcome's definition (flags, category, handling, …), as PUT does."""

    definition: OutcomeBody
    project_id: ExternalId | None = None
    availability: Literal["all", "assigned"] | None = None


class DefineOutcome(_Change, frozen=True, kw_only=True, tag="define_outcome"):
    definition: OutcomeBody
    project_id: ExternalId | None = None
    availability: Literal["all", "assigned"] = "all"


class HideOutcome(_Change, frozen=True, kw_only=True, tag="hide_outcome"):
    """Hide a global outcome in a project (``hidden: false`` unhides it)."""

    code: Code
    project_id: ExternalId
    hidden: bool = True


class SetOutcomeEnabled(_Change, frozen=True, kw_only=True, tag="set_enabled"):
    code: Code
    enabled: bool
    project_id: ExternalId | None = None


class RetireOutcome(_Change, frozen=True, kw_only=True, tag="retire_outcome"):
    code: Code
    project_id: ExternalId | None = None


Change = ChangeOutcome | DefineOutcome | HideOutcome | SetOutcomeEnabled | RetireOutcome


class WhatIfBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A proposed definition change and the window to try it on."""

    changes: Annotated[list[Change], msgspec.Meta(min_length=1, max_length=50)]
    #: the last N tenant-local days, ending with ``until``
    days: Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)] = 30
    #: the window's last day (default: today in the tenant's time zone)
    until: date | None = None
    #: one project (default: every project)
    project_id: ExternalId | None = None


def decide(change: Change, catalogue: Catalogue, ctx: Context) -> list[DomainEvent]:
    """The events the real configuration change would write (its rule, its errors)."""
    match change:
        case ChangeOutcome():
            definition = narrow(change.definition, OutcomeDefinition)
            return list(
                config_rules.change_outcome(
                    catalogue, ctx, definition, project_id=change.project_id, availability=change.availability
                )
            )
        case DefineOutcome():
            definition = narrow(change.definition, OutcomeDefinition)
            return list(
                config_rules.define_outcome(
                    catalogue, ctx, definition, project_id=change.project_id, availability=change.availability
                )
            )
        case HideOutcome():
            return list(config_rules.hide_outcome(catalogue, ctx, change.code, change.project_id, change.hidden))
        case SetOutcomeEnabled():
            return list(
                config_rules.set_enabled(catalogue, ctx, change.code, change.enabled, project_id=change.project_id)
            )
        case RetireOutcome():
            return list(config_rules.retire_outcome(catalogue, ctx, change.code, project_id=change.project_id))
        case _:
            assert_never(change)


def propose(catalogue: Catalogue, changes: Sequence[Change], ctx: Context) -> tuple[Catalogue, list[DomainEvent]]:
    """The catalogue the changes would make, one after the other, and their events; a change
    a rule refuses raises its error, naming which change it was."""
    events: list[DomainEvent] = []
    for n, change in enumerate(changes, 1):
        try:
            decided = decide(change, catalogue, ctx)
        except DomainError as error:
            raise type(error)(f"change {n} ({change.__struct_config__.tag}): {error.message}", **error.detail) from None
        state = project_catalogue(catalogue, decided)
        assert state is not None
        catalogue, events = state, events + decided
    return catalogue, events


# -- the comparison (pure) --------------------------------------------------------------------------


class MixRow(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    #: interactions whose standing outcome it is
    calls: int
    conversations: int
    category_before: str | None
    category_after: str | None
    #: in the project's active set now, and with the proposal
    in_set_before: bool
    in_set_after: bool
    #: the proposal changes its definition in this project
    changed: bool


class CategoryCount(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    before: int
    after: int


class ActionCount(msgspec.Struct, frozen=True, kw_only=True):
    #: the event type the action's rule decides (SmsRequested, FollowUpOpened, ContactMovedToList, …)
    action: str
    before: int
    after: int


class ProjectWhatIf(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    interactions: int
    rates_before: rates_view.Rates
    rates_after: rates_view.Rates
    mix: list[MixRow]
    categories: list[CategoryCount]
    #: standing outcomes the proposal takes out of the active set: the agents could not have chosen them
    not_selectable_after: int
    #: selections whose follow-up actions were decided again with the proposed definition
    redecided: int
    actions: list[ActionCount]


class WhatIf(msgspec.Struct, frozen=True, kw_only=True):
    first_day: date
    last_day: date
    #: the events the proposal would write (type names), had it been saved
    proposed_events: list[str]
    #: the interactions view's position: the window holds every event up to it
    position: int
    projects: list[ProjectWhatIf]


def changed_definitions(project_id: str, before: Catalogue, after: Catalogue) -> dict[str, OutcomeDefinition]:
    """Code -> proposed definition, for every outcome whose definition in the project moves."""
    project = after.projects[project_id]
    codes = set(before.outcomes) | set(after.outcomes) | set(project.outcomes)
    changed = {}
    for code in codes:
        new = definition_of(after, project_id, code)
        if new is not None and new != definition_of(before, project_id, code):
            changed[code] = new
    return changed


def _category(catalogue: Catalogue, project_id: str, code: str) -> str | None:
    found = definition_of(catalogue, project_id, code)
    return found.category if found is not None else None


def mix(
    found: Sequence[Record], project_id: str, before: Catalogue, after: Catalogue, changed: set[str]
) -> list[MixRow]:
    """One row per outcome selected in the window or in the active set either way."""
    standing = Counter((r.outcome.code, r.kind) for r in found if r.outcome is not None)
    set_before, set_after = set(active_set(before, project_id)), set(active_set(after, project_id))
    codes = sorted({code for code, _ in standing} | set_before | set_after)
    return [
        MixRow(
            code=code,
            calls=standing[(code, "call")],
            conversations=standing[(code, "conversation")],
            category_before=_category(before, project_id, code),
            category_after=_category(after, project_id, code),
            in_set_before=code in set_before,
            in_set_after=code in set_after,
            changed=code in changed,
        )
        for code in codes
    ]


def categories(rows: Sequence[MixRow]) -> list[CategoryCount]:
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for row in rows:
        before[row.category_before or ""] += row.calls + row.conversations
        after[row.category_after or ""] += row.calls + row.conversations
    return [CategoryCount(category=c, before=before[c], after=after[c]) for c in sorted(before | after)]


def action_counts(before: Counter[str], after: Counter[str]) -> list[ActionCount]:
    return [ActionCount(action=a, before=before[a], after=after[a]) for a in sorted(set(before) | set(after))]


# -- reading -------------------------------------------------------------------------------------------


Selection = OutcomeSelected | OutcomeCorrected


def _actions(ledger: Ledger, selection: Selection) -> list[str]:
    """What the action workers would decide for the selection (decided, not saved)."""
    decided = [
        *ledger.sms_requests(selection),
        *ledger.follow_up_requests(selection),
        *ledger.contact_list_effects(selection),
    ]
    return [type(e).type_name for e in decided]


def _selections(ledger: Ledger, found: Sequence[Record], codes: set[str]) -> list[Selection]:
    """The selection events, in the window's interactions, of the given outcomes."""
    out: list[Selection] = []
    for r in found:
        if not r.codes & codes and not any(c.previous_code in codes for c in r.corrections):
            continue
        for event in ledger.events.get(UUID(r.originator)):
            if isinstance(event, OutcomeSelected | OutcomeCorrected) and event.outcome_code in codes:
                out.append(event)
    return out


def _project(
    ledger: Ledger,
    client: redis.Redis,
    keys: ShardKeys,
    tenant_id: str,
    project_id: str,
    period: rates_view.Period,
    before: Catalogue,
    after: Catalogue,
) -> ProjectWhatIf:
    found = rates_view.period_records(client, keys, tenant_id, project_id, period)
    changed = changed_definitions(project_id, before, after)
    overrides: rates_view.Catalogue = {(project_id, code): flags_of(d) for code, d in changed.items()}

    def rates(as_defined: rates_view.AsDefined) -> rates_view.Rates:
        candidates = [
            r for r in found if r.kind == "conversation" and rates_view.fcr_candidate(r, as_defined, overrides)
        ]
        resolved = rates_view.resolved_count(client, keys, tenant_id, candidates)
        return rates_view.compute(found, resolved, as_defined, overrides)

    rows = mix(found, project_id, before, after, set(changed))
    actions_before: Counter[str] = Counter()
    actions_after: Counter[str] = Counter()
    selections = _selections(ledger, found, set(changed))
    for selection in selections:
        actions_before.update(_actions(ledger, selection))
        proposed = msgspec.structs.replace(selection, definition=changed[selection.outcome_code])
        actions_after.update(_actions(ledger, proposed))
    return ProjectWhatIf(
        project_id=project_id,
        interactions=len(found),
        rates_before=rates("then"),
        rates_after=rates("now"),  # "now" = the overrides, else as defined then
        mix=rows,
        categories=categories(rows),
        not_selectable_after=sum(r.calls + r.conversations for r in rows if r.in_set_before and not r.in_set_after),
        redecided=len(selections),
        actions=action_counts(actions_before, actions_after),
    )


def what_if(
    ledger: Ledger, client: redis.Redis, keys: ShardKeys, ctx: Context, body: WhatIfBody, today: datetime | None = None
) -> WhatIf:
    """The proposal tried on the window, per project; writes nothing."""
    before = ledger.catalogue(ctx.tenant_id)
    if body.project_id is not None and body.project_id not in before.projects:
        raise NotFound(f"project {body.project_id!r} not found")
    after, events = propose(before, body.changes, ctx)
    last = body.until or (today or now()).astimezone(ZoneInfo(before.time_zone)).date()
    period = rates_view.Period(last - timedelta(days=body.days - 1), last)
    # the position first: the window holds at least every event up to it
    position = client.hget(keys.tracking, keys.view_position(INTERACTIONS))
    projects = [body.project_id] if body.project_id is not None else sorted(before.projects)
    return WhatIf(
        first_day=period.first,
        last_day=period.last,
        proposed_events=[type(e).type_name for e in events],
        position=int(position) if position is not None else 0,  # type: ignore[arg-type]
        projects=[_project(ledger, client, keys, ctx.tenant_id, p, period, before, after) for p in projects],
    )
