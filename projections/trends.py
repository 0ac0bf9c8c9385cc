"""Each outcome's share over time (PRODUCT.md §4 "trend of each outcome's share"): a query
over the outcome-mix view's day counters, no view of its own.

An interaction is in the period (tenant-local day, or ISO week) of its start, counted once
under the outcome that stands, exactly as in the outcome mix; a period's shares are of the
interactions of that period that pass the filters. Periods without interactions have no
rows; a period that has some lists every defined outcome (zeros included) when the trend is
by outcome.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import msgspec
import redis

from events.keys import ShardKeys
from projections.outcome_mix import AsDefined, MixFilter, defined_codes, definitions, group_key, read_cells

Period = Literal["day", "week"]
TrendBy = Literal["outcome", "category"]


class TrendRow(msgspec.Struct, frozen=True, kw_only=True):
    #: the tenant-local day (ISO date) or ISO week ("2026-W44")
    period: str
    #: the outcome code (or category), "-" for no outcome
    key: str
    count: int
    #: interactions of the period
    total: int
    #: count ÷ total x 100
    percentage: float


def outcome_trend(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    f: MixFilter,
    *,
    period: Period = "day",
    by: TrendBy = "outcome",
    as_defined: AsDefined = "then",
) -> list[TrendRow]:
    """Rows by period, then key."""
    now = definitions(client, keys, tenant)
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, c, n, _revenue in read_cells(client, keys, tenant, f, by, as_defined):
        per[group_key(c, day, period, as_defined, now)][group_key(c, day, by, as_defined, now)] += n
    listed = defined_codes(now, f.project) if by == "outcome" else []
    rows: list[TrendRow] = []
    for p in sorted(per):
        counts = per[p]
        total = sum(counts.values())
        for key in sorted(set(counts) | set(listed)):
            n = counts.get(key, 0)
            rows.append(TrendRow(period=p, key=key, count=n, total=total, percentage=100.0 * n / total))
    return rows
