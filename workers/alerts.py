"""The alert follower: after outcome selections, check the weeks they touched against the
rules of ``services/rules/alerts.py`` and record an ``OutcomeAlertRaised`` for each finding.

It follows the log like a view (its own tracking position, ``alert-watch``, moved only by
the position-checked script of ``projections.base``), but its effect is events: each alert
is the first event of an aggregate named after what it is about (project, kind, week, rule,
outcome), so recording it again -- a rerun after a kill between recording and moving the
position, a second runner, a redelivery -- is refused by the store (version 1 exists) and
nothing is doubled.

Which weeks: the tenant-local ISO week of each selection's or correction's ``occurred_at``,
and the week of the day before it (an interaction counts on the day it started, which may
be just before the week turned). The counts are the outcome mix's (the view is caught up
first); the polarity and success flags are the outcome definitions in force now.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from eventsourcing.persistence import IntegrityError

from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.types import Interaction, OutcomeCorrected, OutcomeSelected
from projections.alerts import week_days
from projections.base import Changes, View
from projections.outcome_mix import OutcomeMixView, outcome_mix
from services.catalogue import Catalogue, definition_of
from services.rules import Context
from services.rules import alerts as rules
from services.runtime import Runtime

NAME = "alert-watch"
log = logging.getLogger("outcomes.alerts")

#: (tenant, project, interaction kind, ISO week)
Week = tuple[str, str, Interaction, str]


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_touched(events: Sequence[DomainEvent], time_zone: dict[str, str]) -> set[Week]:
    """The weeks whose mix the batch's selections and corrections may have changed."""
    found: set[Week] = set()
    for e in events:
        if isinstance(e, OutcomeSelected | OutcomeCorrected) and not getattr(e, "late", False):
            at: datetime = e.occurred_at.astimezone(ZoneInfo(time_zone[e.tenant_id]))
            for day in (at.date(), at.date() - timedelta(days=1)):
                found.add((e.tenant_id, e.project_id, e.interaction, iso_week(day)))
    return found


class AlertWatch(View):
    def __init__(
        self, runtime: Runtime, keys: ShardKeys, mapper: StructMapper, mix: OutcomeMixView, batch_size: int = 1000
    ) -> None:
        super().__init__(NAME, None, runtime.client, keys, mapper, batch_size)
        self.runtime = runtime
        self.mix = mix

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        """No view state: the alerts are recorded here, before the position moves (a rerun
        finds them recorded)."""
        tenants = {e.tenant_id for e in events if isinstance(e, OutcomeSelected | OutcomeCorrected)}
        if tenants:
            self.mix.catch_up()
            catalogues = {t: self.runtime.ledger(t).catalogue(t) for t in tenants}
            touched = weeks_touched(events, {t: c.time_zone for t, c in catalogues.items()})
            for week in sorted(touched):
                self.check(catalogues[week[0]], week)
        return Changes()

    def drop(self) -> None:
        """Not a read model: its position says which selections were checked. Dropping it would
        check the whole history again against today's counts (recording nothing twice, but
        finding alerts no one was shown at the time), so a rebuild of the views keeps it."""

    def window(self, tenant: str, project: str, kind: Interaction, first: date, last: date) -> rules.Window:
        rows = outcome_mix(
            self.client, self.keys, tenant, interaction=kind, project=project, date_from=first, date_to=last
        )
        return rules.Window(total=sum(r.count for r in rows), counts={r.key: r.count for r in rows if r.count})

    def findings(self, catalogue: Catalogue, week: Week) -> list[rules.Finding]:
        tenant, project, kind, period = week
        monday, sunday = week_days(period)
        current = self.window(tenant, project, kind, monday, sunday)
        baseline = self.window(
            tenant, project, kind, monday - timedelta(weeks=rules.BASELINE_WEEKS), monday - timedelta(days=1)
        )
        defined = {c: definition_of(catalogue, project, c) for c in {*current.counts, *baseline.counts}}
        flags = {c: d.flags for c, d in defined.items() if d is not None}
        negative = {c for c, f in flags.items() if f.polarity == "negative"}
        positive = {c for c, f in flags.items() if f.polarity == "positive"}
        success = {c for c, f in flags.items() if f.success}
        settings = catalogue.projects[project].settings if project in catalogue.projects else None
        return [
            *rules.rare_negative_rises(current, baseline, negative),
            *rules.positive_without_success(current, baseline, positive, success),
            *rules.off_target(current, settings.target_mix if settings else None),
        ]

    def check(self, catalogue: Catalogue, week: Week) -> int:
        """Record the week's alerts not recorded yet; returns how many this call recorded."""
        tenant, project, kind, period = week
        ledger = self.runtime.ledger(tenant)
        ctx = Context(tenant, "system", datetime.now(ZoneInfo("UTC")))
        recorded = 0
        for finding in self.findings(catalogue, week):
            event = rules.raise_alert(ctx, project_id=project, interaction=kind, period=period, finding=finding)
            try:
                ledger.save(event, tenant=tenant)
            except IntegrityError:
                continue  # recorded before: an alert is recorded once
            recorded += 1
            log.info("alert: %s %s", tenant, finding.message)
        return recorded
