"""How the worker loop runs a follower (``run_once(lazy=True)``): its position kept in memory and
written lazily when only the position moved; a twin that got there first still wins. And the
HTTP gateway's keep-alive connection, closed by the gateway between two SMS, opened again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from events.types import SmsRequested
from services.ledger import Ledger
from services.runtime import Runtime
from services.sms_gateway import HttpGateway
from tests.helpers import new_runtime
from tests.test_sms import seed, select, sms_of
from workers.actions import SmsPlanner


@pytest.fixture
def world(redis_url: str, shard: str) -> tuple[Runtime, Ledger]:
    runtime = new_runtime(redis_url, shard)
    return runtime, seed(runtime)


def head(runtime: Runtime, planner: SmsPlanner) -> int:
    return int(runtime.client.hget(planner.keys.head, "n") or 0)  # type: ignore[arg-type]


def test_a_lazy_batch_that_decides_nothing_leaves_the_position_to_be_written_before_waiting(
    world: tuple[Runtime, Ledger],
) -> None:
    runtime, ledger = world
    planner = SmsPlanner(runtime.settings)
    planner.position_lag = 3600.0  # however slow the machine, not written on time alone
    try:
        while planner.run_once(lazy=True):  # the set-up (its first write is at once)
            pass
        planner.store_position()
        select(ledger, "q1", "QUIET")  # no SMS: nothing to decide
        before = planner.position()
        assert planner.run_once(lazy=True) > 0
        assert planner.position() == before  # not written yet
        planner.store_position()
        assert planner.position() == head(runtime, planner)
        assert planner.run_once(lazy=True) == 0  # from the position in memory: nothing new
    finally:
        planner.close()


def test_a_lazy_follower_behind_a_twin_records_nothing_twice(world: tuple[Runtime, Ledger]) -> None:
    runtime, ledger = world
    lazy, twin = SmsPlanner(runtime.settings), SmsPlanner(runtime.settings)
    try:
        select(ledger, "q2", "QUIET")
        while lazy.run_once(lazy=True):  # caught up, its position in memory only
            pass
        select(ledger, "k9", "THANKS")
        while twin.run_once():  # the twin records the request first
            pass
        assert lazy.run_once(lazy=True) == 0  # its write fails whole: it reads the position again
        while lazy.run_once(lazy=True):
            pass
        lazy.store_position()
        assert [type(e) for e in sms_of(ledger, "k9")] == [SmsRequested]
        assert lazy.position() == twin.position() == head(runtime, lazy)
    finally:
        lazy.close()
        twin.close()


class _ClosingGateway(ThreadingHTTPServer):
    """Answers over HTTP/1.1 without ``Connection: close`` and closes the connection anyway,
    as a gateway dropping idle keep-alive connections does."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(self.headers["Idempotency-Key"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def closing_gateway() -> Iterator[_ClosingGateway]:
    server = _ClosingGateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_keep_alive_connection_the_gateway_closed_is_opened_again_not_counted_as_an_attempt(
    closing_gateway: _ClosingGateway,
) -> None:
    gateway = HttpGateway(f"http://127.0.0.1:{closing_gateway.server_address[1]}/sms", retries=0)
    first, second = gateway.send("sms-1", "+358401234567", "Hi"), gateway.send("sms-2", "+358401234567", "Hi")
    assert (first.ok, first.attempts, second.ok, second.attempts) == (True, 1, True, 1)
    assert closing_gateway.requests == ["sms-1", "sms-2"]
