"""The ingest worker: every tenant's ingest stream on this shard, through one consumer group.

Accepted entries run their command under an idempotency key derived from the entry, then
are acknowledged; a redelivery after a crash answers from the first result. Rejected
entries are recorded in the rejections stream and acknowledged in one script.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import redis

from events.connect import slot_groups
from events.keys import IngestKeys
from events.store import register_lua
from services.config import Settings
from services.ingest import Rejection, handle
from services.runtime import Runtime

GROUP = "ingest"
log = logging.getLogger("outcomes.ingest")


class IngestRunner:
    def __init__(self, settings: Settings, consumer: str, reclaim_idle_ms: int = 30_000) -> None:
        self.runtime = Runtime(settings)
        self.settings = settings
        self.consumer = consumer
        self.reclaim_idle_ms = reclaim_idle_ms
        self._reject = register_lua(self.runtime.client, "events", "reject.lua")
        self._known: set[str] = set()

    def tenants(self) -> list[str]:
        """Tenants on this worker's shard; their streams and groups exist from then on."""
        assigned = cast(dict[bytes, bytes], self.runtime.client.hgetall(self.runtime.registry.keys.tenant_shards))
        tenants = sorted(t.decode() for t, shard in assigned.items() if shard.decode() == self.settings.shard)
        for tenant in tenants:
            if tenant not in self._known:
                try:
                    self.runtime.client.xgroup_create(self.keys(tenant).ingest, GROUP, id="0", mkstream=True)
                except redis.ResponseError as error:
                    if "BUSYGROUP" not in str(error):
                        raise
                self._known.add(tenant)
        return tenants

    def keys(self, tenant: str) -> IngestKeys:
        return IngestKeys(tenant, self.settings.key_prefix)

    def process(self, tenant: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        keys = self.keys(tenant)
        eid = entry_id.decode()
        outcome = handle(self.runtime.ledger(tenant), tenant, eid, fields)
        if isinstance(outcome, Rejection):
            entry_type = fields.get(b"type", b"").decode("utf-8", errors="replace")[:100]
            self._reject(keys=[keys.ingest, keys.rejections], args=[GROUP, eid, *outcome.fields(eid, entry_type)])
        else:
            self.runtime.client.xack(keys.ingest, GROUP, entry_id)

    def run_once(self, block_ms: int = 200) -> int:
        """Read and settle what is there (new entries, then stale pending ones)."""
        tenants = self.tenants()
        if not tenants:
            return 0
        client = self.runtime.client
        groups = slot_groups(client, [self.keys(t).ingest for t in tenants])
        # one blocking read when one call can take every stream; on a cluster the tenants'
        # streams lie in slots of their own: a quick read each, and a pause when all were empty
        block = block_ms if len(groups) == 1 else None
        reply: list[Any] = []
        for group in groups:
            streams: dict[Any, Any] = dict.fromkeys(group, ">")
            reply += cast(list[Any], client.xreadgroup(GROUP, self.consumer, streams, count=100, block=block) or [])
        if not reply and block is None:
            time.sleep(block_ms / 1000)
        done = 0
        by_stream = {self.keys(t).ingest: t for t in tenants}
        for stream, entries in reply:
            tenant = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in entries:
                self.process(tenant, entry_id, fields)
                done += 1
        for tenant in tenants:
            done += self.reclaim(tenant)
        return done

    def reclaim(self, tenant: str) -> int:
        """Entries a dead consumer left pending: take them over and settle them."""
        stream = self.keys(tenant).ingest
        reply: list[Any] = self.runtime.client.xautoclaim(
            stream, GROUP, self.consumer, self.reclaim_idle_ms, start_id="0-0", count=100
        )
        for entry_id, fields in reply[1]:
            if fields is not None:  # None: the entry was trimmed away meanwhile
                self.process(tenant, entry_id, fields)
        return len(reply[1])

    def close(self) -> None:
        self.runtime.close()
