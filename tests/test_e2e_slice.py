"""The walking skeleton end to end, through real processes and a real Redis.

CLI creates the tenant; the API (uvicorn) takes configuration, call facts and the
outcome selection; the events land on the shard's log stream; the FastStream worker
projects them; the count is read back over HTTP. Then the worker is SIGKILLed while
selections keep coming, restarted, and the counts are still exact.
"""

from __future__ import annotations

import signal

import httpx
import redis

from tests.helpers import ON_BOTH, wait_until
from tests.stack import Stack

pytestmark = ON_BOTH


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
