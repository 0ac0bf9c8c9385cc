"""Quotas: after the outcome counts move, record ``QuotaReached`` for every outcome that
has reached its project's quota -- once (see ``rules.interactions.quota_reached``).

Checked for the projects a projected batch touched, and for every project at start-up,
so a worker that died between a batch and its check misses nothing.
"""

from __future__ import annotations

import logging
from typing import cast

from events.codec import DomainEvent
from events.keys import ShardKeys
from events.types import OutcomeCorrected, OutcomeSelected
from projections.base import current
from projections.outcome_counts import outcome_counts
from services.runtime import Runtime

log = logging.getLogger("outcomes.quotas")


class QuotaWatcher:
    def __init__(self, runtime: Runtime, keys: ShardKeys) -> None:
        self.runtime = runtime
        self.keys = keys
        self.touched: set[tuple[str, str]] = set()

    def observe(self, event: DomainEvent) -> None:
        if isinstance(event, OutcomeSelected | OutcomeCorrected):
            self.touched.add((event.tenant_id, event.project_id))

    def check(self, tenant_id: str, project_id: str) -> list[str]:
        """Record what has been reached; returns the outcome codes newly recorded."""
        ledger = self.runtime.ledger(tenant_id)
        project = ledger.catalogue(tenant_id).projects.get(project_id)
        if project is None or not project.settings.quotas:
            return []
        # the current generation (``outcomes replay`` may have switched it)
        counts = outcome_counts(self.runtime.client, current(self.runtime.client, self.keys), tenant_id, project_id)
        return [
            code
            for code in sorted(project.settings.quotas)
            if ledger.record_quota_reached(tenant_id, project_id, code, counts.get(code, 0))
        ]

    def flush(self) -> None:
        touched, self.touched = self.touched, set()
        for tenant_id, project_id in sorted(touched):
            for code in self.check(tenant_id, project_id):
                log.info("quota reached: %s %s %s", tenant_id, project_id, code)

    def sweep(self) -> None:
        assigned = cast(dict[bytes, bytes], self.runtime.client.hgetall(self.runtime.registry.keys.tenant_shards))
        for tenant_id in sorted(t.decode() for t, shard in assigned.items() if shard.decode() == self.keys.shard):
            for project_id in self.runtime.ledger(tenant_id).catalogue(tenant_id).projects:
                self.check(tenant_id, project_id)
