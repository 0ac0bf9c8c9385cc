"""A real local HTTP server standing in for an SMS gateway or a webhook consumer."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Records every delivery; with ``deduplicate`` it accepts each Idempotency-Key once
    (a repeat is answered 200 and not accepted again). ``fail_with`` answers every
    request with that status instead -- or only the first ``fail_times`` requests."""

    def __init__(
        self, *, deduplicate: bool = True, fail_with: int | None = None, fail_times: int | None = None
    ) -> None:
        self.deduplicate = deduplicate
        self.fail_with = fail_with
        self.fail_times = fail_times
        #: each delivery's body as sent (a signature covers these bytes, not the parsed JSON)
        self.raw: list[bytes] = []
        self.deliveries: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        #: when each delivery arrived (time.monotonic), in the order of ``deliveries``
        self.times: list[float] = []
        self.accepted: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                key = self.headers.get("Idempotency-Key", "")
                with receiver._lock:
                    receiver.deliveries.append((key, body, dict(self.headers)))
                    receiver.raw.append(raw)
                    receiver.times.append(time.monotonic())
                    failing = receiver.fail_times is None or len(receiver.deliveries) <= receiver.fail_times
                    status = (receiver.fail_with if failing else None) or 200
                    if status == 200 and not (receiver.deduplicate and key in receiver.accepted):
                        receiver.accepted[key if receiver.deduplicate else f"{key}#{len(receiver.deliveries)}"] = body
                reply = json.dumps({"id": f"gw-{key}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def keys(self) -> list[str]:
        with self._lock:
            return [key for key, _, _ in self.deliveries]
