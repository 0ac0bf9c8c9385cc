"""The QA report (PRODUCT.md §4; docs/reports.md "QA verdicts"): agreement per outcome, the
pairs of outcomes disputes show confused, and flags -- read from the interactions view's
records (each reviewer's latest verdict per interaction), for a project's interactions that
started in a tenant-local date range.

Pure ``compute`` over records, and ``qa_report``, the query that reads them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date

import msgspec
import redis

from events.keys import ShardKeys
from projections.interactions import Record
from projections.rates import Period, period_records

#: "disputed": agreement below this share ...
AGREEMENT_THRESHOLD = 0.8
#: ... over at least this many reviews; "overused" needs as many reviews too
MIN_REVIEWS = 5
#: "overused": disputes moving away from the outcome exceed this many times those moving to it ...
OVERUSE_RATIO = 2
#: ... and number at least this many
MIN_DISPUTES_AWAY = 2


class OutcomeQa(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str
    #: interactions of the period whose standing outcome this is
    selections: int
    #: verdicts on this outcome (each reviewer's latest per interaction)
    reviewed: int
    confirmed: int
    disputed: int
    #: confirmed / reviewed; null without reviews
    agreement_rate: float | None
    #: disputes naming this outcome as the one it should have been
    disputed_into: int
    #: "disputed", "overused", "unclear" (docs/reports.md)
    flags: list[str]
    #: the outcomes it is disputed with in both directions (why it is "unclear")
    unclear_with: list[str]


class ConfusedPair(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str
    should_have_been: str
    count: int


class QaReport(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    date_from: date
    date_to: date
    #: the interactions view's tracking position: the report holds every event up to it
    position: int
    reviewed: int
    confirmed: int
    disputed: int
    agreement_rate: float | None
    outcomes: list[OutcomeQa]
    #: most frequent first, then by codes
    confused_pairs: list[ConfusedPair]


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    outcomes: list[OutcomeQa]
    confused_pairs: list[ConfusedPair]
    reviewed: int
    confirmed: int
    disputed: int


def _rate(a: int, b: int) -> float | None:
    return a / b if b else None


def flags_of(
    code: str, reviewed: int, confirmed: int, away: int, into: int, pairs: Counter[tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """The outcome's flags and the outcomes it is unclear with (thresholds above)."""
    flags = []
    if reviewed >= MIN_REVIEWS and confirmed / reviewed < AGREEMENT_THRESHOLD:
        flags.append("disputed")
    if reviewed >= MIN_REVIEWS and away >= MIN_DISPUTES_AWAY and away > OVERUSE_RATIO * into:
        flags.append("overused")
    unclear_with = sorted(b for (a, b) in pairs if a == code and pairs[(b, a)] > 0)
    if unclear_with:
        flags.append("unclear")
    return flags, unclear_with


def compute(records: Sequence[Record]) -> Totals:
    selections: Counter[str] = Counter()
    confirmed: Counter[str] = Counter()
    disputed: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for r in records:
        if (o := r.outcome) is not None:
            selections[o.code] += 1
        for v in r.verdicts:
            if v.verdict == "confirmed":
                confirmed[v.outcome_code] += 1
            else:
                disputed[v.outcome_code] += 1
                if v.should_have_been is not None:
                    pairs[(v.outcome_code, v.should_have_been)] += 1
    into: Counter[str] = Counter()
    for (_, b), n in pairs.items():
        into[b] += n
    codes = sorted(set(selections) | set(confirmed) | set(disputed) | set(into))
    rows = []
    for code in codes:
        reviewed = confirmed[code] + disputed[code]
        flags, unclear_with = flags_of(code, reviewed, confirmed[code], disputed[code], into[code], pairs)
        rows.append(
            OutcomeQa(
                outcome=code,
                selections=selections[code],
                reviewed=reviewed,
                confirmed=confirmed[code],
                disputed=disputed[code],
                agreement_rate=_rate(confirmed[code], reviewed),
                disputed_into=into[code],
                flags=flags,
                unclear_with=unclear_with,
            )
        )
    confused = [
        ConfusedPair(outcome=a, should_have_been=b, count=n)
        for (a, b), n in sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    ]
    return Totals(
        outcomes=rows,
        confused_pairs=confused,
        reviewed=sum(confirmed.values()) + sum(disputed.values()),
        confirmed=sum(confirmed.values()),
        disputed=sum(disputed.values()),
    )


def qa_report(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    *,
    project: str,
    date_from: date,
    date_to: date,
    position: int,
) -> QaReport:
    found = compute(period_records(client, keys, tenant, project, Period(date_from, date_to)))
    return QaReport(
        project_id=project,
        date_from=date_from,
        date_to=date_to,
        position=position,
        reviewed=found.reviewed,
        confirmed=found.confirmed,
        disputed=found.disputed,
        agreement_rate=_rate(found.confirmed, found.reviewed),
        outcomes=found.outcomes,
        confused_pairs=found.confused_pairs,
    )
