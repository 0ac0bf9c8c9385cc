"""A local HTTP receiver for the actions benchmark: records when each delivery arrived.

    python -m bench.receiver --port 8099 --log arrivals.txt

Each POST appends "<Idempotency-Key> <unix time>" to the log and answers 200.
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (open for the server's life)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real gateway
        disable_nagle_algorithm = True  # else each small reply waits ~40 ms for a delayed ACK

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived = time.time()
            with lock:
                log.write(f"{self.headers.get('Idempotency-Key', '')} {arrived:.6f}\n")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
