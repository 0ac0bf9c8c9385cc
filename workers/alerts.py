"""The alert follower: after outcome selections, check the weeks they touched against the
rules of ``services/rules/alerts.py`` and record an ``OutcomeAlertRaised`` for each finding.

It follows the log like a view, in two steps that each survive a kill:

1. **mark**: a batch's selections and corrections mark the weeks they touched as pending
   (``…:v:alert-watch:pending``), written by the position-checked script of
   ``projections.base`` together with the follower's tracking position (``alert-watch``):
   a week is marked exactly when its selections are behind the position;
2. **check**: after catching up, each pending week is checked and alerts are recorded; then
   the week is forgotten -- unless a later batch marked it again meanwhile.

Each alert is the first event of an aggregate named after what it is about (project, kind,
week, rule, outcome): recording it again -- a rerun after a kill between recording and
forgetting, a twin follower -- is refused by the store (version 1 exists), so nothing is
doubled. Checking after the catch-up, not per batch, checks a week once per catch-up
however many batches touched it.

Which weeks: the tenant-local ISO week of each selection's or correction's ``occurred_at``,
and the week of the day before it (an interaction counts on the day it started, which may
be just before the week turned). The counts are the outcome mix's (the view is caught up
first; one read of the 5 weeks for every project of a tenant, kind and week); the polarity
and success flags are the outcome definitions in force now.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import msgspec
from eventsourcing.persistence import IntegrityError

from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.store import register_lua
from events.types import Interaction, OutcomeCorrected, OutcomeSelected
from projections.alerts import week_days
from projections.base import Changes, View, current
from projections.outcome_mix import MixFilter, OutcomeMixView, read_cells
from services.catalogue import Catalogue, definition_of
from services.rules import Context
from services.rules import alerts as rules
from services.runtime import Runtime

NAME = "alert-watch"
log = logging.getLogger("outcomes.alerts")

#: (tenant, project, interaction kind, ISO week)
Week = tuple[str, str, Interaction, str]
_week = msgspec.json.Decoder(tuple[str, str, Interaction, str])


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_touched(events: Sequence[DomainEvent], time_zone: Mapping[str, str]) -> set[Week]:
    """The weeks whose mix the batch's selections and corrections may have changed."""
    found: set[Week] = set()
    for e in events:
        if isinstance(e, OutcomeSelected | OutcomeCorrected) and not getattr(e, "late", False):
            at: datetime = e.occurred_at.astimezone(ZoneInfo(time_zone[e.tenant_id]))
            for day in (at.date(), at.date() - timedelta(days=1)):
                found.add((e.tenant_id, e.project_id, e.interaction, iso_week(day)))
    return found


def _window(counts: Mapping[str, int]) -> rules.Window:
    return rules.Window(sum(counts.values()), dict(counts))


def findings(catalogue: Catalogue, project: str, week: rules.Window, baseline: rules.Window) -> list[rules.Finding]:
    """Every rule on one project's week, with the flags of the outcomes as defined now."""
    defined = {c: definition_of(catalogue, project, c) for c in {*week.counts, *baseline.counts}}
    flags = {c: d.flags for c, d in defined.items() if d is not None}
    negative = {c for c, f in flags.items() if f.polarity == "negative"}
    positive = {c for c, f in flags.items() if f.polarity == "positive"}
    success = {c for c, f in flags.items() if f.success}
    settings = catalogue.projects[project].settings if project in catalogue.projects else None
    return [
        *rules.rare_negative_rises(week, baseline, negative),
        *rules.positive_without_success(week, baseline, positive, success),
        *rules.off_target(week, settings.target_mix if settings else None),
    ]


class AlertWatch(View):
    def __init__(
        self, runtime: Runtime, keys: ShardKeys, mapper: StructMapper, mix: OutcomeMixView, batch_size: int = 1000
    ) -> None:
        # only selections and corrections mark weeks: no other event is decoded for it
        topics = frozenset({OutcomeSelected.type_name, OutcomeCorrected.type_name})
        super().__init__(NAME, None, runtime.client, keys, mapper, batch_size, topics=topics)
        self.runtime = runtime
        self.mix = mix
        self.pending_key = keys.view(NAME) + "pending"
        self._forget = register_lua(runtime.client, "workers", "forget_checked.lua")
        self._zones: dict[str, str] = {}

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        """Mark the weeks the batch touched (written with the position; checked after)."""
        selections = [e for e in events if isinstance(e, OutcomeSelected | OutcomeCorrected)]
        if not selections:
            return Changes()
        zones = {t: self._zone(t) for t in {e.tenant_id for e in selections}}
        token = uuid.uuid4().hex  # which batch marked it: see forget()
        weeks = sorted(weeks_touched(selections, zones))
        return Changes(assignments=[(self.pending_key, msgspec.json.encode(w).decode(), token) for w in weeks])

    def _zone(self, tenant: str) -> str:
        if tenant not in self._zones:
            self._zones[tenant] = self.runtime.ledger(tenant).catalogue(tenant).time_zone
        return self._zones[tenant]

    def catch_up(
        self,
        until: int | None = None,
        observe: Callable[[DomainEvent], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> int:
        applied = super().catch_up(until, observe, on_batch)
        self.check_pending()
        return applied

    def drop(self) -> None:
        """Not a read model: its position says which selections were checked. Dropping it would
        check the whole history again against today's counts (recording nothing twice, but
        finding alerts no one was shown at the time), so a rebuild of the views keeps it."""

    def pending(self) -> dict[Week, str]:
        """The weeks marked and not yet checked, with the token of the batch that marked each."""
        raw = cast(dict[bytes, bytes], self.client.hgetall(self.pending_key))
        return {_week.decode(k): v.decode() for k, v in raw.items()}

    def check_pending(self) -> int:
        """Check every pending week, record its alerts, forget it; returns alerts recorded."""
        pending = self.pending()
        if not pending:
            return 0
        recorded = self.record(pending)
        self.forget(pending)
        return recorded

    def forget(self, checked: Mapping[Week, str]) -> None:
        args = [x for week, token in checked.items() for x in (msgspec.json.encode(week).decode(), token)]
        self._forget(keys=[self.pending_key], args=args)

    def windows(
        self, tenant: str, kind: Interaction, period: str, projects: Iterable[str]
    ) -> dict[str, tuple[rules.Window, rules.Window]]:
        """Per project: the week, and the baseline weeks before it -- from the project's rollup
        (a few small hashes per day: reading every cell of the tenant's days instead took 16 s
        for the 650 weeks of 1M selections, 2026-12-04)."""
        monday, sunday = week_days(period)
        first = monday - timedelta(weeks=rules.BASELINE_WEEKS)
        keys = current(self.client, self.keys)
        found: dict[str, tuple[rules.Window, rules.Window]] = {}
        for project in projects:
            week: dict[str, int] = defaultdict(int)
            baseline: dict[str, int] = defaultdict(int)
            window = MixFilter(kind, project=project, date_from=first, date_to=sunday)
            for day, c, n, _revenue in read_cells(self.client, keys, tenant, window):
                (week if date.fromisoformat(day) >= monday else baseline)[c.code] += n
            found[project] = (_window(week), _window(baseline))
        return found

    def record(self, weeks: Iterable[Week]) -> int:
        """Record the alerts of the weeks not recorded yet; returns how many this call recorded."""
        self.mix.catch_up()  # the counts hold at least the selections that marked the weeks
        projects: dict[tuple[str, Interaction, str], list[str]] = defaultdict(list)
        for tenant, project, kind, period in sorted(weeks):
            projects[(tenant, kind, period)].append(project)
        recorded = 0
        for (tenant, kind, period), names in projects.items():
            ledger = self.runtime.ledger(tenant)
            catalogue = ledger.catalogue(tenant)
            ctx = Context(tenant, "system", datetime.now(UTC))
            for project, (week, baseline) in self.windows(tenant, kind, period, names).items():
                for finding in findings(catalogue, project, week, baseline):
                    event = rules.raise_alert(ctx, project_id=project, interaction=kind, period=period, finding=finding)
                    try:
                        ledger.save(event, tenant=tenant)
                    except IntegrityError:
                        continue  # recorded before: an alert is recorded once
                    recorded += 1
                    log.info("alert: %s %s %s", tenant, project, finding.message)
        return recorded
