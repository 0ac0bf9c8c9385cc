"""Racing writers through the real HTTP API (uvicorn process, real Redis)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.stack import Stack

RACERS = 20


@pytest.fixture()
def api(redis_url: str, shard: str) -> Iterator[tuple[Stack, dict[str, str]]]:
    stack = Stack(redis_url, shard)
    admin = stack.cli("tenant", "create", "acme")
    stack.start_api()
    a = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=stack.base, timeout=10) as http:
        assert http.post("/v1/outcomes", headers=a, json={"code": "SALE", "name": "Sale"}).status_code == 201
        assert (
            http.post(
                "/v1/projects", headers=a, json={"project_id": "p1", "name": "P", "direction": "outbound"}
            ).status_code
            == 201
        )
        platform = http.post("/v1/keys", headers=a, json={"role": "platform"}).json()["secret"]
    try:
        yield stack, {"Authorization": f"Bearer {platform}"}
    finally:
        stack.stop()


def race(stack: Stack, requests: list[tuple[str, dict[str, str], dict[str, object]]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(requests))
    responses: list[httpx.Response | None] = [None] * len(requests)

    def go(i: int) -> None:
        path, headers, body = requests[i]
        with httpx.Client(base_url=stack.base, timeout=30) as http:
            barrier.wait()
            responses[i] = http.post(path, headers=headers, json=body)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in responses)
    return [r for r in responses if r is not None]


def start_call(stack: Stack, headers: dict[str, str], call_id: str) -> None:
    with httpx.Client(base_url=stack.base, timeout=10) as http:
        r = http.post(
            "/v1/calls",
            headers=headers,
            json={
                "call_id": call_id,
                "project_id": "p1",
                "direction": "outbound",
                "occurred_at": "2026-11-22T09:00:00+02:00",
            },
        )
        assert r.status_code == 201, r.text


def log_length(stack: Stack, client: redis.Redis) -> int:
    return int(client.xlen(f"{stack.env['REDIS_KEY_PREFIX']}:{{{stack.env['REDIS_SHARD']}}}:log"))


def test_twenty_concurrent_selections_on_one_call_exactly_one_wins(
    api: tuple[Stack, dict[str, str]], redis_client: redis.Redis
) -> None:
    stack, platform = api
    start_call(stack, platform, "c1")
    requests = [
        (
            "/v1/calls/c1/outcome",
            {**platform, "X-Acting-For": f"agent:a{i}"},
            {"outcome_code": "SALE", "occurred_at": "2026-11-22T09:05:00+02:00"},
        )
        for i in range(RACERS)
    ]
    responses = race(stack, requests)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (RACERS - 1), [r.text for r in responses]
    losers = [r.json() for r in responses if r.status_code == 409]
    assert all(body["error"] in {"conflict", "call_already_has_outcome"} and body["message"] for body in losers)
    with httpx.Client(base_url=stack.base, timeout=10) as http:
        call = http.get("/v1/calls/c1", headers=platform).json()
    winner = next(r for r in responses if r.status_code == 201)
    assert call["version"] == winner.json()["version"] == 2


def test_racing_retries_with_one_idempotency_key_get_the_first_result(
    api: tuple[Stack, dict[str, str]], redis_client: redis.Redis
) -> None:
    stack, platform = api
    start_call(stack, platform, "c2")
    headers = {**platform, "X-Acting-For": "agent:anna", "Idempotency-Key": "select-c2"}
    body = {"outcome_code": "SALE", "occurred_at": "2026-11-22T09:05:00+02:00"}
    responses = race(stack, [("/v1/calls/c2/outcome", headers, body)] * RACERS)
    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1  # every retry got the first result
    before = log_length(stack, redis_client)
    with httpx.Client(base_url=stack.base, timeout=10) as http:
        again = http.post("/v1/calls/c2/outcome", headers=headers, json=body)
        assert again.status_code == 201 and again.text == responses[0].text
        assert log_length(stack, redis_client) == before  # nothing new written
        other = http.post("/v1/calls/c2/outcome", headers=headers, json={**body, "outcome_code": "BUSY"})
        assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert log_length(stack, redis_client) == before
