"""Wiring shared by the HTTP API, the CLI and tests: one Redis client, the registry,
and one Ledger per shard."""

from __future__ import annotations

import re
import secrets
import threading

from events.connect import redis_client, server_clients
from events.keys import IngestKeys, ShardKeys
from projections.base import current
from services.config import Settings
from services.errors import NotFound, RateLimited
from services.ledger import Ledger
from services.permissions import Role
from services.registry import ApiKey, Authorised, Registry, place_tenant
from services.rules.config import check_time_zone

_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Runtime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.client = redis_client(self.settings.redis_url)
        self.registry = Registry(self.client, self.settings.key_prefix)
        self._ledgers: dict[str, Ledger] = {}
        #: tenant -> shard: assigned once at creation and never moved, so safe to keep
        self._shards: dict[str, str] = {}
        self._lock = threading.Lock()

    def ledger_for_shard(self, shard: str) -> Ledger:
        with self._lock:
            ledger = self._ledgers.get(shard)
            if ledger is None:
                env = {**self.settings.ledger_env(), "REDIS_SHARD": shard}
                ledger = self._ledgers[shard] = Ledger(env=env)
            return ledger

    def shard_keys(self, tenant_id: str) -> ShardKeys:
        return self.shard_keys_for(self.shard_of(tenant_id))

    def view_keys(self, tenant_id: str) -> ShardKeys:
        """The tenant's shard names with every read model in its current generation (what a
        query reads; resolve once per query so a replay's switch-over is never seen half-way)."""
        return current(self.client, self.shard_keys(tenant_id))

    def shard_keys_for(self, shard: str) -> ShardKeys:
        return ShardKeys(shard, self.settings.key_prefix)

    def shard_of(self, tenant_id: str) -> str:
        shard = self._shards.get(tenant_id) or self.registry.shard_of(tenant_id)
        if shard is None:
            raise NotFound("tenant not found")
        self._shards[tenant_id] = shard
        return shard

    def ledger(self, tenant_id: str) -> Ledger:
        return self.ledger_for_shard(self.shard_of(tenant_id))

    def create_tenant(self, tenant_id: str, name: str, time_zone: str = "UTC") -> tuple[ApiKey, str]:
        """Register the tenant on its shard (``place_tenant`` over ``tenant_shards``, else the
        configured shard), record it, and issue its first admin key."""
        if not _TENANT_ID.match(tenant_id):
            raise ValueError("tenant id: 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit")
        check_time_zone(time_zone)  # before the id is taken
        shard = place_tenant(tenant_id, self.settings.tenant_shards or (self.settings.shard,))
        self.registry.assign_shard(tenant_id, shard)
        self.ledger_for_shard(shard).create_tenant(tenant_id, name, time_zone)
        return self.registry.issue_key(tenant_id, Role.ADMIN)

    def create_ingest_user(self, tenant_id: str) -> tuple[str, str, IngestKeys]:
        """A Redis ACL user that reaches only the tenant's ingest and rejections streams.

        Returns (username, password, keys); the password is shown once (Redis keeps a hash).
        """
        self.shard_of(tenant_id)  # the tenant exists
        keys = IngestKeys(tenant_id, self.settings.key_prefix)
        username = f"ingest-{tenant_id}"
        password = secrets.token_urlsafe(24)
        for server in server_clients(self.client):  # a cluster's masters each keep their own users
            server.execute_command(  # type: ignore[no-untyped-call]
                "ACL",
                "SETUSER",
                username,
                "reset",
                "on",
                f">{password}",
                f"~{keys.pattern}",
                "+@stream",
                "+ping",
                "+hello",
                # what a cluster client asks first: which master holds the stream, and
                # where commands keep their keys (no data)
                "+cluster|slots",
                "+command",
            )
        return username, password, keys

    def admit(self, found: Authorised) -> ApiKey:
        """The authorised key, if its tenant is within its requests-per-second limit."""
        if found.shard is not None:
            self._shards[found.key.tenant_id] = found.shard
        if found.count > found.limit:
            raise RateLimited(f"tenant {found.key.tenant_id!r} is over its limit of {found.limit} requests per second")
        return found.key

    def close(self) -> None:
        for ledger in self._ledgers.values():
            ledger.close()
        self.client.close()
