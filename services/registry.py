"""The registry: tenants -> shards, and API keys (stored hashed, shown once, revocable).

It has a hash tag of its own ({reg}), apart from every shard.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import msgspec
import redis
import redis.asyncio

from events.keys import DEFAULT_PREFIX, RegistryKeys
from services.permissions import Role


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    tenant_id: str
    role: Role
    revoked: bool = False


class TenantExists(Exception):
    pass


class Authorised(msgspec.Struct, frozen=True):
    """A live key, its tenant's shard, and this request's count against the tenant's limit."""

    key: ApiKey
    shard: str | None
    count: int
    limit: int


def place_tenant(tenant_id: str, shards: Sequence[str]) -> str:
    """The shard a new tenant lives on for good: spread by a hash of its id, so placing
    needs no shared counter (the registry keeps the answer; changing ``shards`` later moves
    no existing tenant)."""
    if not shards:
        raise ValueError("no shard to place the tenant on")
    return shards[int.from_bytes(hashlib.sha256(tenant_id.encode()).digest()[:8], "big") % len(shards)]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Authoriser:
    """Authenticates an API key and counts its tenant's request in one scripted round trip
    (lua/authorise.lua), on an asyncio client: the API's event loop does it without a
    worker-thread hop."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.keys = RegistryKeys(prefix)
        self._script = client.register_script((Path(__file__).parent / "lua" / "authorise.lua").read_text())

    async def __call__(self, secret: str, window: int, default_limit: int) -> Authorised | None:
        """A live key and its tenant's request counted in ``window``; None if the key is
        unknown or revoked."""
        keys = self.keys
        found = await self._script(
            keys=[keys.api_keys, keys.tenant_shards, keys.rate_limits],
            args=[_digest(secret), window, default_limit, keys.prefix],
        )
        if not found or len(found) == 1:  # unknown, or revoked
            return None
        record, shard, count, limit = found
        key = msgspec.msgpack.decode(record, type=ApiKey)
        return Authorised(key, shard.decode() if shard else None, int(count), int(limit))


class Registry:
    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.keys = RegistryKeys(prefix)
        self._authorise = client.register_script((Path(__file__).parent / "lua" / "authorise.lua").read_text())

    def assign_shard(self, tenant_id: str, shard: str) -> None:
        if not self.client.hsetnx(self.keys.tenant_shards, tenant_id, shard):
            raise TenantExists(f"tenant {tenant_id!r} already exists")

    def shard_of(self, tenant_id: str) -> str | None:
        value = self.client.hget(self.keys.tenant_shards, tenant_id)
        return cast(bytes, value).decode() if value is not None else None

    def set_rate_limit(self, tenant_id: str, per_second: int) -> None:
        self.client.hset(self.keys.rate_limits, tenant_id, per_second)

    def rate_limit_of(self, tenant_id: str, default: int) -> int:
        value = self.client.hget(self.keys.rate_limits, tenant_id)
        return int(cast(bytes, value)) if value is not None else default

    def issue_key(self, tenant_id: str, role: Role) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and stored only as a hash."""
        key_id = secrets.token_hex(6)
        secret = f"olk_{key_id}_{secrets.token_urlsafe(24)}"
        record = ApiKey(key_id=key_id, tenant_id=tenant_id, role=role)
        digest = _digest(secret)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.api_keys, digest, msgspec.msgpack.encode(record))
        pipe.hset(self.keys.api_keys, f"id:{tenant_id}:{key_id}", digest)
        pipe.execute()
        return record, secret

    def authenticate(self, secret: str) -> ApiKey | None:
        raw = self.client.hget(self.keys.api_keys, _digest(secret))
        if raw is None:
            return None
        record = msgspec.msgpack.decode(cast(bytes, raw), type=ApiKey)
        return None if record.revoked else record

    def revoke(self, tenant_id: str, key_id: str) -> bool:
        digest = self.client.hget(self.keys.api_keys, f"id:{tenant_id}:{key_id}")
        if digest is None:
            return False
        raw = self.client.hget(self.keys.api_keys, cast(bytes, digest))
        if raw is None:
            return False
        record = msgspec.msgpack.decode(cast(bytes, raw), type=ApiKey)
        revoked = msgspec.structs.replace(record, revoked=True)
        self.client.hset(self.keys.api_keys, cast(bytes, digest), msgspec.msgpack.encode(revoked))
        return True
