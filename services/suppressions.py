"""Numbers an erased contact had: never called or texted again (PRODUCT.md §5; docs/erasure.md).

They survive erasure only as keyed hashes: HMAC-SHA256 of the E.164 number under a secret of
the tenant's, kept in the registry (``RegistryKeys.suppression_secrets``), never in the log.
Without the secret a hash cannot be turned back into a number by trying every number; with it,
a number can only be checked, which is what the dialability query and the SMS sender do. The
hashes sit in one set per tenant in the tenant's shard (``ShardKeys.suppressed``), and in the
``ContactErased`` event that suppressed them, so a lost set can be rebuilt from the log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import cast

import redis

from events.codec import ERASED
from events.keys import RegistryKeys, ShardKeys


def number_hash(secret: bytes, number: str) -> str:
    """The keyed hash of one E.164 number (hex)."""
    return hmac.new(secret, number.encode(), hashlib.sha256).hexdigest()


class Suppressions:
    """One shard's suppressed-number sets, and the tenants' secrets that key them."""

    def __init__(self, client: redis.Redis, keys: ShardKeys) -> None:
        self.client = client
        self.keys = keys
        self.registry = RegistryKeys(keys.base_prefix)
        #: a tenant's secret never changes once made: safe to keep
        self._secrets: dict[str, bytes] = {}

    def known(self, tenant: str) -> bool:
        """Whether this process holds the tenant's secret (it never changes once made)."""
        return tenant in self._secrets

    def secret_field(self, tenant: str) -> tuple[str, str]:
        """Where the tenant's secret is kept (hash, field): for a read along with others."""
        return self.registry.suppression_secrets, tenant

    def prime(self, tenant: str, secret: bytes | None) -> None:
        """Keep a secret read along with other things (``secret_field``)."""
        if secret is not None:
            self._secrets[tenant] = secret

    def _secret(self, tenant: str, *, create: bool) -> bytes | None:
        secret = self._secrets.get(tenant)
        if secret is not None:
            return secret
        if create:  # HSETNX then HGET: two racing erasures end up with the same secret
            self.client.hsetnx(self.registry.suppression_secrets, tenant, secrets.token_bytes(32))
        found = cast(bytes | None, self.client.hget(self.registry.suppression_secrets, tenant))
        if found is not None:
            self._secrets[tenant] = found
        return found

    def hashes(self, tenant: str, numbers: Iterable[str | None], *, create: bool = False) -> tuple[str, ...]:
        """The numbers' keyed hashes (sorted, once each); none when the tenant has no secret yet."""
        wanted = {n for n in numbers if n and n != ERASED}
        secret = self._secret(tenant, create=create) if wanted else None
        if secret is None:
            return ()
        return tuple(sorted({number_hash(secret, n) for n in wanted}))

    def suppress(self, tenant: str, numbers: Iterable[str | None]) -> tuple[str, ...]:
        """Suppress the numbers for good; returns their hashes."""
        hashes = self.hashes(tenant, numbers, create=True)
        if hashes:
            self.client.sadd(self.keys.suppressed(tenant), *hashes)
        return hashes

    def any_suppressed(self, tenant: str, numbers: Iterable[str | None]) -> bool:
        """Is any of the numbers an erased contact's? One round trip (two the first time)."""
        hashes = self.hashes(tenant, numbers)
        if not hashes:
            return False
        found = cast(list[int], self.client.smismember(self.keys.suppressed(tenant), list(hashes)))
        return any(found)
