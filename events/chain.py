"""The two hash chains of a shard's log, as ``lua/append.lua`` computes them.

Per aggregate: ``h = sha1(previous h of the aggregate ⏎ originator ⏎ version ⏎ topic ⏎ state)``;
along the log: ``c = sha1(previous c ⏎ notification id ⏎ h)``; both start from ``ZERO``.
The append script writes them; the checkpoint signer and ``outcomes verify`` recompute them
here (docs/audit.md). Fields are the stored bytes, so no decoding is involved.
"""

from __future__ import annotations

import hashlib

ZERO = "0" * 40


def event_hash(previous: str, originator: bytes, version: bytes, topic: bytes, state: bytes) -> str:
    """The aggregate-chain hash of one event (fields as stored in its log entry)."""
    return hashlib.sha1(b"\n".join((previous.encode(), originator, version, topic, state))).hexdigest()


def link_hash(previous: str, position: int, event: str) -> str:
    """The log-chain hash of the event at ``position`` (its notification id)."""
    return hashlib.sha1(f"{previous}\n{position}\n{event}".encode()).hexdigest()
