"""Flow redirects (PRODUCT.md §3): the hand-over, the customer's next messages and the
hand-back on the flow's stream, each exactly once; through the real API and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from eventsourcing.persistence import IntegrityError
from litestar.testing import TestClient

from events.keys import ShardKeys
from services.api.app import create_app
from services.permissions import Role
from services.runtime import Runtime
from tests.helpers import new_runtime
from workers.flows import FlowPublisher

TENANT = "flows"


def at(seconds: int) -> str:
    return f"2026-11-22T09:{seconds // 60:02d}:{seconds % 60:02d}Z"


class World:
    def __init__(self, runtime: Runtime, http: TestClient[Any], agent: dict[str, str]) -> None:
        self.runtime, self.http, self.agent = runtime, http, agent
        self.publisher = FlowPublisher(runtime.settings)

    def post(self, path: str, body: dict[str, Any], status: int = 0) -> dict[str, Any]:
        r = self.http.post(path, headers=self.agent, json=body)
        assert r.status_code == status if status else 200 <= r.status_code < 300, r.text
        return cast(dict[str, Any], r.json())

    def entries(self, flow: str = "survey") -> list[dict[str, str]]:
        keys = ShardKeys(self.runtime.settings.shard, self.runtime.settings.key_prefix)
        raw = cast(list[tuple[bytes, dict[bytes, bytes]]], self.runtime.client.xrange(keys.flow(TENANT, flow)))
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]

    def publish(self) -> None:
        while self.publisher.run_once():
            pass


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    _, secret = runtime.create_tenant(TENANT, "Flows")
    admin = {"Authorization": f"Bearer {secret}"}
    _, platform = runtime.registry.issue_key(TENANT, Role.PLATFORM)
    with TestClient(create_app(runtime)) as http:
        project = {"project_id": "p", "name": "P", "direction": "inbound"}
        assert http.post("/v1/projects", headers=admin, json=project).status_code == 201
        bot = {"code": "TO_SURVEY", "name": "To survey", "redirect_to_flow": "survey", "applies_to": ["conversation"]}
        assert http.post("/v1/projects/p/outcomes", headers=admin, json=bot).status_code == 201
        yield World(runtime, http, {"Authorization": f"Bearer {platform}", "X-Acting-For": "agent:anna"})
    runtime.close()


def start(w: World, conversation_id: str) -> None:
    body = {"conversation_id": conversation_id, "project_id": "p", "channel": "sms", "occurred_at": at(0)}
    w.post("/v1/conversations", {**body, "contact_id": "k1"})


def message(w: World, conversation_id: str, body: str, seconds: int, direction: str = "received") -> None:
    w.post(
        f"/v1/conversations/{conversation_id}/messages",
        {"direction": direction, "channel": "sms", "occurred_at": at(seconds), "body": body},
    )


def test_the_flow_gets_the_hand_over_the_customers_messages_and_the_hand_back(world: World) -> None:
    w = world
    start(w, "v1")
    message(w, "v1", "before the bot", 5)
    w.post("/v1/conversations/v1/outcome", {"outcome_code": "TO_SURVEY", "occurred_at": at(10)})
    message(w, "v1", "4 out of 5", 20)
    message(w, "v1", "an agent's note", 25, direction="sent")  # the agent's, not the customer's
    w.post("/v1/conversations/v1/flow-returned", {"flow": "survey", "occurred_at": at(30)})
    message(w, "v1", "back with a person", 40)
    w.publish()
    w.publish()  # again: nothing more
    entries = w.entries()
    assert [(e["type"], e.get("body")) for e in entries] == [
        ("redirected", None),
        ("message", "4 out of 5"),
        ("returned", None),
    ]
    first = entries[0]
    assert (first["tenant"], first["conversation_id"], first["flow"]) == (TENANT, "v1", "survey")
    assert first["channel"] == "sms"
    assert first["contact_id"] == "k1" and first["occurred_at"] == "2026-11-22T09:00:10+00:00"
    assert len({e["event_id"] for e in entries}) == 3  # each names the event it comes from
    conversation = w.http.get("/v1/conversations/v1", headers=w.agent).json()
    assert conversation["closed_at"] is None and conversation["flow"] is None  # still active, the agents' again


def test_a_twin_publisher_publishes_nothing_twice(world: World) -> None:
    w = world
    start(w, "v2")
    w.post("/v1/conversations/v2/outcome", {"outcome_code": "TO_SURVEY", "occurred_at": at(10)})
    message(w, "v2", "hi bot", 20)
    twin = FlowPublisher(w.runtime.settings)
    w.publish()
    while twin.run_once():
        pass
    assert [e["type"] for e in w.entries()] == ["redirected", "message"]
    # a twin that decided before the other's write: its script finds the position moved, writes nothing
    position = w.publisher.position()
    with pytest.raises(IntegrityError):
        twin.act(_log_entry(w, position), position)
    assert len(w.entries()) == 2


def _log_entry(w: World, nid: int) -> dict[bytes, bytes]:
    keys = ShardKeys(w.runtime.settings.shard, w.runtime.settings.key_prefix)
    raw = cast(list[tuple[bytes, dict[bytes, bytes]]], w.runtime.client.xrange(keys.log, f"{nid}-0", f"{nid}-0"))
    return raw[0][1]


def test_only_the_flow_it_is_with_hands_it_back(world: World) -> None:
    w = world
    start(w, "v3")
    refused = w.post("/v1/conversations/v3/flow-returned", {"flow": "survey", "occurred_at": at(5)}, status=409)
    assert refused["error"] == "not_with_flow" and "with no flow" in refused["message"]
    w.post("/v1/conversations/v3/outcome", {"outcome_code": "TO_SURVEY", "occurred_at": at(10)})
    refused = w.post("/v1/conversations/v3/flow-returned", {"flow": "other", "occurred_at": at(15)}, status=409)
    assert "with flow 'survey', not with 'other'" in refused["message"]
