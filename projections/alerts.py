"""The alerts report's view: one row per ``OutcomeAlertRaised`` (the rules are in
``services/rules/alerts.py``, the follower that records them in ``workers/alerts.py``).

Keys (prefix ``ShardKeys.view("alerts")``): ``a:<tenant>`` hash, alert id -> JSON row.
Alerts are few (at most one per project, kind, week, rule and outcome): the query reads the
tenant's hash and filters it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import cast

import msgspec
import redis

from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.types import AlertRule, Interaction, OutcomeAlertRaised
from projections.base import Changes, View

NAME = "alerts"
TOPICS = frozenset({OutcomeAlertRaised.type_name})


class AlertRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    interaction: Interaction
    rule: AlertRule
    outcome_code: str | None
    #: the tenant-local ISO week
    period: str
    interactions: int
    observed_share: float
    expected_share: float
    threshold: float
    message: str
    raised_at: datetime


_row = msgspec.json.Decoder(AlertRow)


def _key(keys: ShardKeys, tenant: str) -> str:
    return f"{keys.view(NAME)}a:{tenant}"


def row_of(e: OutcomeAlertRaised) -> AlertRow:
    return AlertRow(
        id=str(e.originator_id),
        project_id=e.project_id,
        interaction=e.interaction,
        rule=e.rule,
        outcome_code=e.outcome_code,
        period=e.period,
        interactions=e.interactions,
        observed_share=e.observed_share,
        expected_share=e.expected_share,
        threshold=e.threshold,
        message=e.message,
        raised_at=e.recorded_at,
    )


class AlertsView(View):
    def __init__(
        self, client: redis.Redis, keys: ShardKeys, mapper: StructMapper, batch_size: int = 1000, *, follow: bool = True
    ) -> None:
        super().__init__(NAME, None, client, keys, mapper, batch_size, follow=follow, topics=TOPICS)

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        out = Changes()
        for e in events:
            if isinstance(e, OutcomeAlertRaised):
                row = msgspec.json.encode(row_of(e)).decode()
                out.assignments.append((_key(self.keys, e.tenant_id), str(e.originator_id), row))
        return out


def week_days(period: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week ("2026-W44")."""
    year, week = period.split("-W")
    monday = date.fromisocalendar(int(year), int(week), 1)
    return monday, monday + timedelta(days=6)


def alerts(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    *,
    project: str | None = None,
    rule: AlertRule | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[AlertRow]:
    """The tenant's alerts whose week overlaps the range, by week, project, kind, rule, outcome."""
    raw = cast(dict[bytes, bytes], client.hgetall(_key(keys, tenant)))
    rows = []
    for value in raw.values():
        r = _row.decode(value)
        first, last = week_days(r.period)
        if (
            (project is None or r.project_id == project)
            and (rule is None or r.rule == rule)
            and (date_from is None or last >= date_from)
            and (date_to is None or first <= date_to)
        ):
            rows.append(r)
    return sorted(rows, key=lambda r: (r.period, r.project_id, r.interaction, r.rule, r.outcome_code or ""))
