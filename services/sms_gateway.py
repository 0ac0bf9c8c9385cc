"""SMS gateway adapters: how an SMS leaves Outcome Ledger (PRODUCT.md §3).

Every request carries the SMS's id as its idempotency key, so a gateway that deduplicates
sees each SMS once even when a worker that crashed after sending sends it again.

- ``HttpGateway``: POSTs JSON ``{"id", "to", "body"}`` to a real gateway's webhook, with an
  ``Authorization`` header, a timeout, and retries with exponential backoff on timeouts,
  connection errors, 408, 429 and 5xx; another 4xx is a failure at once.
- ``FileGateway``: appends one JSON line per SMS to a file, for development.

``OUTCOMES_SMS_GATEWAY`` chooses: an ``http(s)://`` URL, or ``file:<path>`` (the default,
``file:var/sms.jsonl``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx


@dataclass(frozen=True)
class Delivery:
    ok: bool
    attempts: int
    message_id: str | None = None
    reason: str = ""
    #: the last HTTP status answered, if any
    status: int | None = None


class Gateway(Protocol):
    name: str
    #: whether the gateway drops a repeated idempotency key (then a resend is harmless)
    deduplicates: bool

    def send(self, sms_id: str, to: str, body: str) -> Delivery: ...


class FileGateway:
    name = "file"
    deduplicates = False

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, sms_id: str, to: str, body: str) -> Delivery:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"id": sms_id, "to": to, "body": body, "at": datetime.now(UTC).isoformat()})
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())
        return Delivery(ok=True, attempts=1, message_id=sms_id)


_RETRYABLE = {408, 429}


class HttpGateway:
    name = "http"

    def __init__(
        self,
        url: str,
        *,
        auth_header: str | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
        deduplicates: bool = True,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.deduplicates = deduplicates
        headers = {"Authorization": auth_header} if auth_header else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)

    def send(self, sms_id: str, to: str, body: str) -> Delivery:
        payload = json.dumps({"id": sms_id, "to": to, "body": body}).encode()
        headers = {"Idempotency-Key": sms_id, "Content-Type": "application/json"}
        delivery, response = post_with_retries(
            self.client, self.url, payload, lambda: headers, retries=self.retries, backoff=self.backoff
        )
        if delivery.ok and response is not None:
            return Delivery(ok=True, attempts=delivery.attempts, message_id=_message_id(response))
        return delivery


def post_with_retries(
    client: httpx.Client,
    url: str,
    content: bytes,
    headers: Callable[[], dict[str, str]],
    *,
    retries: int,
    backoff: float,
) -> tuple[Delivery, httpx.Response | None]:
    """POST ``content``, retrying with exponential backoff on timeouts, connection errors,
    408, 429 and 5xx; another 4xx is a failure at once. ``headers`` is asked again for
    each attempt (a signature's timestamp is then fresh). The successful response, if any."""
    reason = ""
    for attempt in range(1, retries + 2):
        if attempt > 1:
            time.sleep(backoff * 2 ** (attempt - 2))
        try:
            response = client.post(url, content=content, headers=headers())
        except httpx.HTTPError as error:
            reason = f"{type(error).__name__}: {error}"
            continue
        if response.is_success:
            return Delivery(ok=True, attempts=attempt, status=response.status_code), response
        reason = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code < 500 and response.status_code not in _RETRYABLE:
            return Delivery(ok=False, attempts=attempt, reason=reason, status=response.status_code), None
    return Delivery(ok=False, attempts=retries + 1, reason=reason), None


def _message_id(response: httpx.Response) -> str | None:
    try:
        value = response.json().get("id")
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None


def gateway_from_env() -> Gateway:
    target = os.environ.get("OUTCOMES_SMS_GATEWAY") or "file:var/sms.jsonl"
    if target.startswith("file:"):
        return FileGateway(Path(target.removeprefix("file:")))
    return HttpGateway(
        target,
        auth_header=os.environ.get("OUTCOMES_SMS_GATEWAY_AUTH") or None,
        timeout=float(os.environ.get("OUTCOMES_SMS_GATEWAY_TIMEOUT", "5")),
        retries=int(os.environ.get("OUTCOMES_SMS_GATEWAY_RETRIES", "3")),
        deduplicates=os.environ.get("OUTCOMES_SMS_GATEWAY_DEDUPLICATES", "1") in {"1", "yes", "true"},
    )
