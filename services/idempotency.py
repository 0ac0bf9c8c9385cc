"""Idempotency keys and the receipts a repeat is answered with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec


class Receipt(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a write answers; a repeat with the same idempotency key gets the same."""

    kind: str
    id: str
    version: int
    #: event types written, in order (empty for a fact already recorded)
    events: tuple[str, ...] = ()
    #: auto-close projects a tenant-level change left the outcome hidden in (PRODUCT.md §1)
    hidden_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class Idempotency:
    key: str
    #: digest of the request (method, path, body): same key + other body is refused
    digest: str

    @staticmethod
    def of(key: str, *parts: bytes) -> Idempotency:
        h = hashlib.sha256()
        for part in parts:
            h.update(len(part).to_bytes(8, "big") + part)
        return Idempotency(key, h.hexdigest())
