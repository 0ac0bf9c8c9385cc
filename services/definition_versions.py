"""The current outcome mix against an earlier definition set (PRODUCT.md §4 "compare the
current mix with a previous known-good definition set"; issue 5 item 6).

A definition set is a project's **outcome-set version**: the catalogue as it stood while the
project's set had that version (up to the change that moved it on). The same interactions --
counted as in the outcome mix, under the outcome that stands -- are read twice: with the
outcome definitions of now and with those of the chosen version. What a definition decides
for a report is its category (rolled up the parent tree) and its flags, so the comparison
gives the mix by category both ways, the interactions whose outcome carries each flag both
ways, and per outcome what changed between the two definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

import msgspec
import redis

from events.codec import DomainEvent
from events.keys import ShardKeys
from events.types import OutcomeDefinition, OutcomeFlags
from projections.outcome_mix import Definitions, Kind, MixRow, outcome_mix, root_category
from services.catalogue import Catalogue, apply

#: (project or None for a global outcome, code) -> definition
FullDefinitions = dict[tuple[str | None, str], OutcomeDefinition]
#: the flag counts the comparison gives: name -> whether a definition has it
FLAGS: dict[str, Callable[[OutcomeFlags], bool]] = {
    "contact": lambda f: f.contact,
    "presentation": lambda f: f.presentation,
    "success": lambda f: f.success,
    "first_call_resolution": lambda f: f.first_call_resolution,
    "positive": lambda f: f.polarity == "positive",
    "negative": lambda f: f.polarity == "negative",
}


def catalogue_at(events: Iterable[DomainEvent], project_id: str, version: int) -> Catalogue | None:
    """The catalogue as it last stood while the project's outcome set had ``version``; None
    when the project never had it."""
    state: Catalogue | None = None
    found: Catalogue | None = None
    for event in events:
        state = apply(event, state)
        project = state.projects.get(project_id)
        if project is not None and project.set_version == version:
            found = state
        elif found is not None:
            break  # the set moved on
    return found


def definitions_of(catalogue: Catalogue) -> FullDefinitions:
    found: FullDefinitions = {(None, code): g.definition for code, g in catalogue.outcomes.items()}
    for project_id, project in catalogue.projects.items():
        found.update({(project_id, code): o.definition for code, o in project.outcomes.items()})
    return found


def _rollup(defs: FullDefinitions) -> Definitions:
    return {key: (d.category, d.parent) for key, d in defs.items()}


def _lookup(defs: FullDefinitions, project: str, code: str) -> OutcomeDefinition | None:
    return defs.get((project, code)) or defs.get((None, code))


class CategoryComparison(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    count_now: int
    percentage_now: float
    count_then: int
    percentage_then: float


class FlagComparison(msgspec.Struct, frozen=True, kw_only=True):
    #: contact, presentation, success, first_call_resolution, positive, negative
    flag: str
    #: interactions whose outcome carries the flag as defined now / in the chosen version
    count_now: int
    count_then: int


class OutcomeComparison(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    #: interactions of the period under this outcome
    count: int
    #: root category as defined now / in the chosen version (null: not defined then)
    category_now: str | None
    category_then: str | None
    flags_now: OutcomeFlags | None
    flags_then: OutcomeFlags | None
    #: the category or a flag differs
    changed: bool


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    categories: list[CategoryComparison]
    flags: list[FlagComparison]
    outcomes: list[OutcomeComparison]


def _category(defs: FullDefinitions, project: str, code: str) -> str | None:
    d = _lookup(defs, project, code)
    return root_category(_rollup(defs), project, code, d.category, d.parent) if d else None


def compare_outcomes(
    by_outcome: list[MixRow], project: str, now: FullDefinitions, then: FullDefinitions
) -> tuple[list[FlagComparison], list[OutcomeComparison]]:
    """Pure: the flag counts and the per-outcome differences, from the mix by outcome."""
    outcomes = []
    for row in by_outcome:
        d_now, d_then = _lookup(now, project, row.key), _lookup(then, project, row.key)
        cat_now, cat_then = _category(now, project, row.key), _category(then, project, row.key)
        flags_now = d_now.flags if d_now else None
        flags_then = d_then.flags if d_then else None
        outcomes.append(
            OutcomeComparison(
                code=row.key,
                count=row.count,
                category_now=cat_now,
                category_then=cat_then,
                flags_now=flags_now,
                flags_then=flags_then,
                changed=(cat_now, flags_now) != (cat_then, flags_then),
            )
        )
    flags = [
        FlagComparison(
            flag=name,
            count_now=sum(o.count for o in outcomes if o.flags_now is not None and has(o.flags_now)),
            count_then=sum(o.count for o in outcomes if o.flags_then is not None and has(o.flags_then)),
        )
        for name, has in FLAGS.items()
    ]
    return flags, outcomes


def _categories(now: list[MixRow], then: list[MixRow]) -> list[CategoryComparison]:
    a: Mapping[str, MixRow] = {r.key: r for r in now}
    b: Mapping[str, MixRow] = {r.key: r for r in then}
    return [
        CategoryComparison(
            category=key,
            count_now=a[key].count if key in a else 0,
            percentage_now=a[key].percentage if key in a else 0.0,
            count_then=b[key].count if key in b else 0,
            percentage_then=b[key].percentage if key in b else 0.0,
        )
        for key in sorted(a.keys() | b.keys())
    ]


def compare(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    *,
    project: str,
    now: FullDefinitions,
    then: FullDefinitions,
    interaction: Kind = "call",
    date_from: date | None = None,
    date_to: date | None = None,
) -> Comparison:
    """The project's mix of the period read with the definitions of now and of then."""

    def mix(**how: Any) -> list[MixRow]:
        return outcome_mix(
            client, keys, tenant, interaction=interaction, project=project, date_from=date_from, date_to=date_to, **how
        )

    def by_category(defs: FullDefinitions) -> list[MixRow]:
        return mix(group_by="category", as_defined="now", defined_as=_rollup(defs))

    flags, outcomes = compare_outcomes(mix(), project, now, then)
    return Comparison(categories=_categories(by_category(now), by_category(then)), flags=flags, outcomes=outcomes)
