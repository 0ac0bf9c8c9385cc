"""Webhook signatures (PRODUCT.md §3; docs/actions.md "Webhooks"): how we sign, and how a
receiver verifies.

Every delivery carries ``X-Outcomes-Timestamp: <unix seconds>`` and
``X-Outcomes-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]``, each ``v1`` being
HMAC-SHA256 over ``"<timestamp>.<raw body>"`` with one of the webhook's secrets: the
current one, and during a rotation's grace period the previous one too. A receiver
accepts the delivery when any ``v1`` matches any secret it holds and the timestamp is
within ``tolerance`` seconds of its clock, so a captured request replayed later is
refused. (The same scheme as Stripe's, which many receivers already implement.)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

#: how far a delivery's timestamp may be from the receiver's clock (seconds)
TOLERANCE = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over ``"<timestamp>.<body>"``, hex."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hmac>,…``: one ``v1`` per secret, the current first."""
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets)])


def _parse(header: str) -> tuple[str | None, list[str]]:
    stamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            stamp = value
        elif name == "v1":
            signatures.append(value)
    return stamp, signatures


def verify(
    secrets: str | Iterable[str],
    timestamp: str,
    body: bytes,
    signature_value: str,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> bool:
    """Receiver side: True when the delivery is ours and fresh.

    ``timestamp`` is the ``X-Outcomes-Timestamp`` header, ``signature_value`` the
    ``X-Outcomes-Signature`` header, ``body`` the raw request body (before any JSON
    parsing: re-encoding changes the bytes). ``secrets``: the secret, or every secret
    the receiver holds during a rotation. False for a timestamp older (or newer) than
    ``tolerance`` seconds -- a replay -- or one the signature does not cover."""
    held = [secrets] if isinstance(secrets, str) else list(secrets)
    stamp, signatures = _parse(signature_value)
    if not timestamp.isdigit() or (stamp is not None and stamp != timestamp):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    expected = [signature(secret, int(timestamp), body) for secret in held]
    # compare_digest against every pair: no early exit that would time the match
    return any([hmac.compare_digest(e, s) for e in expected for s in signatures])
