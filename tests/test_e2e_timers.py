"""The wrap-up timeout fires exactly once after every process is killed and restarted
while it is due (PRODUCT.md §3: timers survive restarts of every process)."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import httpx
import redis

from tests.helpers import ON_BOTH, wait_until
from tests.stack import Stack

pytestmark = ON_BOTH

CALLS = 12


def kill(stack: Stack) -> None:
    for p in (stack.api, stack.worker):
        if p and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()


def test_wrap_up_timeouts_fire_exactly_once_across_kills(stack: Stack, redis_client: redis.Redis) -> None:
    admin = stack.cli("tenant", "create", "acme")
    stack.start_api()
    a = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=stack.base, timeout=10) as http:
        r = http.post(
            "/v1/projects",
            headers=a,
            json={
                "project_id": "p1",
                "name": "P",
                "direction": "outbound",
                "wrap_up": {
                    "mode": "mandatory_with_timeout",
                    "timeout_seconds": 2,
                    "timeout_outcome": "WRAP_UP_TIMEOUT",
                },
            },
        )
        assert r.status_code == 201, r.text
        platform = http.post("/v1/keys", headers=a, json={"role": "platform"}).json()["secret"]
        p = {"Authorization": f"Bearer {platform}", "X-Acting-For": "agent:anna"}
        started = datetime.now(UTC)
        for i in range(CALLS):
            assert (
                http.post(
                    "/v1/calls",
                    headers=p,
                    json={
                        "call_id": f"c{i}",
                        "project_id": "p1",
                        "direction": "outbound",
                        "occurred_at": started.isoformat(),
                    },
                ).status_code
                == 201
            )
            r = http.post(f"/v1/calls/c{i}/ended", headers=p, json={"occurred_at": started.isoformat()})
            assert r.status_code == 200 and r.json()["events"] == ["CallEnded", "WrapUpTimerSet"], r.text
    # every process dies while the timers are pending; no worker was running at all
    kill(stack)
    due = started + timedelta(seconds=2)
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5)
    # restart, and kill the worker twice more while it fires (leases expire after 1 s)
    for pause in (0.15, 0.3):
        stack.start_worker()
        time.sleep(pause)
        kill(stack)
    stack.start_api()
    stack.start_worker()
    log = f"{stack.env['REDIS_KEY_PREFIX']}:{{{stack.env['REDIS_SHARD']}}}:log"

    def timeouts_per_call() -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, f in redis_client.xrange(log):
            if f[b"t"] == b"OutcomeSelected":
                call = stack.decode(f)["interaction_id"]
                counts[call] = counts.get(call, 0) + 1
        return counts

    wait_until(lambda: len(timeouts_per_call()) == CALLS, timeout=30, what="every wrap-up timeout to fire")
    time.sleep(2.5)  # longer than a lease: any doubled firing would show now
    assert timeouts_per_call() == {f"c{i}": 1 for i in range(CALLS)}
    timers = f"{stack.env['REDIS_KEY_PREFIX']}:{{{stack.env['REDIS_SHARD']}}}:timers"
    assert redis_client.zcard(timers) == 0 and redis_client.zcard(timers + ":leased") == 0
    with httpx.Client(base_url=stack.base, timeout=10) as http:
        call = http.get("/v1/calls/c0", headers=p).json()
        assert call["outcome"]["code"] == "WRAP_UP_TIMEOUT" and call["outcome"]["actor"] == "system"
