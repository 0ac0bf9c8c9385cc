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

import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol

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
    """POSTs each SMS over HTTP/1.1 keep-alive connections of the standard library, one per
    thread (``http.client``: several times less CPU per request than httpx, which matters
    at hundreds of SMS per second on a few cores; docs/benchmarks.md)."""

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
        self.timeout = timeout
        self.auth = {"Authorization": auth_header} if auth_header else {}
        target = urllib.parse.urlsplit(url)
        if target.scheme not in {"http", "https"} or not target.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._target = target
        self._path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        self._local = threading.local()  # this thread's connection

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._target.scheme == "https" else http.client.HTTPConnection
            connection = kind(self._target.hostname or "", self._target.port, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _post(self, payload: bytes, headers: dict[str, str]) -> Answer:
        """One POST; a kept-alive connection the server closed meanwhile is opened again at once
        (not an attempt); any other failure closes it and raises."""
        for fresh in (getattr(self._local, "connection", None) is None, True):
            connection = self._connection()
            try:
                connection.request("POST", self._path, body=payload, headers={**self.auth, **headers})
                response = connection.getresponse()
                answer = Answer(response.status, response.read())
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop()
                if fresh:
                    raise
                continue
            except BaseException:
                self._drop()
                raise
            if response.will_close:
                self._drop()
            return answer
        raise AssertionError("unreachable")

    def send(self, sms_id: str, to: str, body: str) -> Delivery:
        payload = json.dumps({"id": sms_id, "to": to, "body": body}).encode()
        headers = {"Idempotency-Key": sms_id, "Content-Type": "application/json"}
        delivery, answer = post_with_retries(
            lambda: self._post(payload, headers), retries=self.retries, backoff=self.backoff
        )
        if delivery.ok and answer is not None:
            return Delivery(ok=True, attempts=delivery.attempts, message_id=_message_id(answer.body))
        return delivery


class Answer(NamedTuple):
    """An HTTP answer: status and body."""

    status: int
    body: bytes


def httpx_post(client: httpx.Client, url: str, content: bytes, headers: dict[str, str]) -> Answer:
    """One POST through httpx (the webhook sender's transport)."""
    response = client.post(url, content=content, headers=headers)
    return Answer(response.status_code, response.content)


#: what a failed POST raises, whichever transport: a timeout, a refused or broken connection
TRANSPORT_ERRORS = (httpx.HTTPError, OSError, http.client.HTTPException)


def post_with_retries(post: Callable[[], Answer], *, retries: int, backoff: float) -> tuple[Delivery, Answer | None]:
    """``post()`` (asked again for each attempt: a signature's timestamp is then fresh),
    retrying with exponential backoff on timeouts, connection errors, 408, 429 and 5xx;
    another 4xx is a failure at once. The successful answer, if any."""
    reason = ""
    for attempt in range(1, retries + 2):
        if attempt > 1:
            time.sleep(backoff * 2 ** (attempt - 2))
        try:
            answer = post()
        except TRANSPORT_ERRORS as error:
            reason = f"{type(error).__name__}: {error}"
            continue
        if 200 <= answer.status < 300:
            return Delivery(ok=True, attempts=attempt, status=answer.status), answer
        reason = f"HTTP {answer.status}: {answer.body[:200].decode(errors='replace')}"
        if answer.status < 500 and answer.status not in _RETRYABLE:
            return Delivery(ok=False, attempts=attempt, reason=reason, status=answer.status), None
    return Delivery(ok=False, attempts=retries + 1, reason=reason), None


def _message_id(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("id")
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
