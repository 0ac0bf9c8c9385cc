"""The scheduled archive (docs/archive.md): with ``OUTCOMES_ARCHIVE_HOT_DAYS`` set, the worker
runs ``outcomes archive --hot-days`` on its shard every ``OUTCOMES_ARCHIVE_INTERVAL`` seconds.

One process archives at a time: the one holding the shard's ``archive`` lease (the action
followers' lease script, with no home process: whoever finds it free takes it, its holder
renews it at each turn). A holder killed stops renewing; after the lease's time another
process takes over. Safe to kill at any instant: a run is crash-safe and a rerun completes
what a killed one left (services/archive.py), wherever it runs.
"""

from __future__ import annotations

from events.store import register_lua
from services.archive import Archiver, ArchiveRun
from services.config import Settings
from services.runtime import Runtime

LEASE = "archive"


class ArchiveRunner:
    def __init__(self, settings: Settings, owner: str, hot_days: float, lease_ms: int) -> None:
        self.runtime = Runtime(settings)
        self.keys = self.runtime.shard_keys_for(settings.shard)
        self.archiver = Archiver(self.runtime.client, self.keys, settings.archive_url)
        self.owner = owner
        self.hot_days = hot_days
        self.lease_ms = lease_ms
        self._lease = register_lua(self.runtime.client, "workers", "lease.lua")

    def hold(self) -> bool:
        """Take the lease if it is free, renew it if this process holds it."""
        keys = [self.keys.lease(LEASE), self.keys.lease_wanted(LEASE)]
        # not anyone's home ("0"), and free to take it ("1")
        return bool(self._lease(keys=keys, args=[self.owner, str(self.lease_ms), "0", "1"]))

    def run_once(self) -> ArchiveRun | None:
        """One archive run if this process holds the lease (None: another one does)."""
        if not self.hold():
            return None
        return self.archiver.run(hot_days=self.hot_days)

    def close(self) -> None:
        self.runtime.close()
