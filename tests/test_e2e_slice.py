"""The walking skeleton end to end, through real processes and a real Redis.

CLI creates the tenant; the API (uvicorn) takes configuration, call facts and the
outcome selection; the events land on the shard's log stream; the FastStream worker
projects them; the count is read back over HTTP. Then the worker is SIGKILLed while
selections keep coming, restarted, and the counts are still exact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from events.durability import check_durability
from events.embedded import free_port
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent


class Stack:
    def __init__(self, redis_url: str, shard: str) -> None:
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "REDIS_SHARD": shard,
            "REDIS_KEY_PREFIX": "e2e" + uuid.uuid4().hex[:6],
            "OUTCOMES_RECLAIM_IDLE_MS": "500",
        }
        if check_durability(redis.Redis.from_url(redis_url), allow_weak=True).weak:
            self.env["OUTCOMES_ALLOW_WEAK_DURABILITY"] = "1"  # a developer's own REDIS_URL
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_api(self) -> None:
        self.api = self.spawn("api", "--port", str(self.port))

        def up() -> bool:
            try:
                return httpx.get(self.base + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the API to answer /health")

    def start_worker(self) -> None:
        self.worker = self.spawn("worker")

    def stop(self) -> None:
        for p in (self.api, self.worker):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()


@pytest.fixture()
def stack(redis_url: str, shard: str) -> Iterator[Stack]:
    s = Stack(redis_url, shard)
    try:
        yield s
    finally:
        s.stop()


def test_walking_skeleton_end_to_end(stack: Stack, redis_client: redis.Redis) -> None:
    admin = stack.cli("tenant", "create", "acme", "--time-zone", "Europe/Helsinki")
    assert admin.startswith("olk_")
    stack.start_api()
    stack.start_worker()
    a = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=stack.base, timeout=10) as http:
        assert (
            http.post(
                "/v1/outcomes",
                headers=a,
                json={"code": "SALE", "name": "Sale", "flags": {"contact": True, "success": True}},
            ).status_code
            == 201
        )
        assert http.post("/v1/outcomes", headers=a, json={"code": "NO_SALE", "name": "No sale"}).status_code == 201
        assert (
            http.post(
                "/v1/projects", headers=a, json={"project_id": "winter", "name": "Winter", "direction": "outbound"}
            ).status_code
            == 201
        )
        platform = http.post("/v1/keys", headers=a, json={"role": "platform"}).json()["secret"]
        p = {"Authorization": f"Bearer {platform}", "X-Acting-For": "agent:anna"}

        receipts: dict[str, object] = {}

        def one_call(call_id: str, code: str) -> None:
            r = http.post(
                "/v1/calls",
                headers=p,
                json={
                    "call_id": call_id,
                    "project_id": "winter",
                    "direction": "outbound",
                    "occurred_at": "2026-11-22T09:00:00+02:00",
                    "contact_number": "+358401234567",
                },
            )
            assert r.status_code == 201, r.text
            r = http.post(f"/v1/calls/{call_id}/ended", headers=p, json={"occurred_at": "2026-11-22T09:04:00+02:00"})
            assert r.status_code == 200, r.text
            r = http.post(
                f"/v1/calls/{call_id}/outcome",
                headers={**p, "Idempotency-Key": f"sel-{call_id}"},
                json={"outcome_code": code, "occurred_at": "2026-11-22T09:04:10+02:00"},
            )
            assert r.status_code == 201, r.text
            receipts[call_id] = r.json()

        one_call("c-1", "SALE")
        log = f"{stack.env['REDIS_KEY_PREFIX']}:{{{stack.env['REDIS_SHARD']}}}:log"
        topics = [f[b"t"] for _, f in redis_client.xrange(log)]
        assert topics.count(b"OutcomeSelected") == 1 and b"CallStarted" in topics
        # personal data never reaches Redis in clear
        assert all(b"401234567" not in f[b"s"] for _, f in redis_client.xrange(log))

        def count() -> dict[str, int]:
            r = http.get("/v1/projects/winter/outcome-counts", headers=a)
            assert r.status_code == 200
            return dict(r.json()["counts"])

        wait_until(lambda: count() == {"SALE": 1}, what="the worker to project the selection")

        # kill the worker mid-stream; selections keep coming; restart; counts stay exact
        for i in range(2, 22):
            one_call(f"c-{i}", "SALE" if i % 2 else "NO_SALE")
            if i == 8:
                assert stack.worker is not None
                stack.worker.send_signal(signal.SIGKILL)
                stack.worker.wait()
        stack.start_worker()
        wait_until(lambda: count() == {"NO_SALE": 10, "SALE": 11}, what="counts after the worker restart")
        # a repeat with the same idempotency key writes nothing and answers the same
        before = redis_client.xlen(log)
        r = http.post(
            "/v1/calls/c-1/outcome",
            headers={**p, "Idempotency-Key": "sel-c-1"},
            json={"outcome_code": "SALE", "occurred_at": "2026-11-22T09:04:10+02:00"},
        )
        assert r.status_code == 201 and r.json() == receipts["c-1"]
        assert redis_client.xlen(log) == before

        metrics = http.get("/metrics").text
        assert 'outcomes_consumer_lag{group="projections"' in metrics
        openapi = http.get("/schema/openapi.json").json()
        assert "/v1/calls/{call_id}/outcome" in openapi["paths"]
