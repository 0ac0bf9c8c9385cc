"""Webhooks (PRODUCT.md §3): configured over HTTP by admins, each outcome event POSTed
signed to the matching webhooks through real Redis and a real local HTTP receiver, and
each delivery recorded once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from events.keys import ShardKeys
from events.store import StreamEntries
from events.types import WebhookDelivered, WebhookFailed, WebhookRegistered
from services.api.app import create_app
from services.interactions import aggregate_id
from services.ledger import Ledger
from services.permissions import Role
from services.runtime import Runtime
from services.webhook_signing import verify
from services.webhooks import delivery_id
from tests.helpers import T0, call_with_outcome, new_runtime, seed_project
from tests.receiver import Receiver
from workers.actions import followers
from workers.webhooks import WebhookDispatcher, WebhookSender

TENANT = "hooks"


class World:
    def __init__(self, runtime: Runtime, http: TestClient[Any], admin: str) -> None:
        self.runtime = runtime
        self.http = http
        self.admin = {"Authorization": f"Bearer {admin}"}
        _, platform = runtime.registry.issue_key(TENANT, Role.PLATFORM)
        self.supervisor = {"Authorization": f"Bearer {platform}", "X-Acting-For": "supervisor:sue"}

    @property
    def ledger(self) -> Ledger:
        return self.runtime.ledger(TENANT)

    def register(self, webhook_id: str, url: str, **filters: Any) -> str:
        r = self.http.post("/v1/webhooks", headers=self.admin, json={"webhook_id": webhook_id, "url": url, **filters})
        assert r.status_code == 201, r.text
        secret: str = r.json()["secret"]
        return secret

    def correct(self, call_id: str, code: str) -> None:
        body = {"outcome_code": code, "occurred_at": T0.replace(hour=10).isoformat(), "reason": "misclicked"}
        r = self.http.post(f"/v1/calls/{call_id}/correction", headers=self.supervisor, json=body)
        assert r.status_code in (200, 201), r.text

    def dispatch(self, retries: int = 2, backoff: float = 0.01) -> None:
        dispatcher = WebhookDispatcher(self.runtime.settings, WebhookSender(retries=retries, backoff=backoff))
        while dispatcher.run_once():
            pass

    def deliveries(self, call_id: str, webhook_id: str, version: int = 3) -> list[object]:
        source = f"{aggregate_id(TENANT, 'call', call_id)}/{version}"
        return list(self.ledger.events.get(delivery_id(TENANT, source, webhook_id)))


@pytest.fixture
def world(redis_url: str, shard: str) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    admin = seed_project(runtime, TENANT)
    with TestClient(create_app(runtime)) as http:
        w = World(runtime, http, admin)
        summer = {"project_id": "summer", "name": "S", "direction": "inbound"}
        r = http.post("/v1/projects", headers=w.admin, json=summer)
        assert r.status_code == 201, r.text
        yield w


def test_registration_rotation_and_deletion_over_http_never_show_a_secret_twice(world: World) -> None:
    http, admin = world.http, world.admin
    first = http.post(
        "/v1/webhooks",
        headers={**admin, "Idempotency-Key": "reg-1"},
        json={"webhook_id": "crm", "url": "https://crm.example/hook", "outcome_codes": ["SALE"]},
    )
    assert first.status_code == 201, first.text
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    repeat = http.post(
        "/v1/webhooks",
        headers={**admin, "Idempotency-Key": "reg-1"},
        json={"webhook_id": "crm", "url": "https://crm.example/hook", "outcome_codes": ["SALE"]},
    )
    assert repeat.status_code == 201 and repeat.json()["secret"] is None  # shown once
    rotated = http.post("/v1/webhooks/crm/rotate-secret", headers=admin, json={"grace_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != secret
    target = {"url": "https://crm.example/v2", "project_ids": ["winter"]}
    changed = http.put("/v1/webhooks/crm", headers=admin, json=target)
    assert changed.status_code == 200, changed.text
    listed = http.get("/v1/webhooks", headers=admin)
    assert listed.status_code == 200
    (view,) = listed.json()
    assert (view["webhook_id"], view["url"], view["project_ids"], view["outcome_codes"]) == (
        "crm",
        "https://crm.example/v2",
        ["winter"],
        [],
    )
    assert view["previous_secret_valid_until"] is not None
    assert secret not in listed.text and new not in listed.text and 'secret"' not in listed.text
    # the log holds the secrets sealed, never in clear; the configuration events carry the actor
    keys = ShardKeys(world.runtime.settings.shard, world.runtime.settings.key_prefix)
    entries: StreamEntries = world.runtime.client.xrange(keys.log)  # type: ignore[assignment]
    raw = b"".join(v for _, fields in entries for v in fields.values())
    assert secret.encode() not in raw and new.encode() not in raw
    catalogue = list(world.ledger.events.get(aggregate_id(TENANT, "catalogue")))
    registered = [e for e in catalogue if isinstance(e, WebhookRegistered)]
    assert len(registered) == 1 and registered[0].secret == secret and registered[0].actor.startswith("admin:")
    # admins only; then deleted
    agent = {"Authorization": f"Bearer {world.runtime.registry.issue_key(TENANT, Role.AGENT)[1]}"}
    assert http.delete("/v1/webhooks/crm", headers=agent).status_code == 403
    assert http.delete("/v1/webhooks/crm", headers=admin).status_code == 200
    assert http.get("/v1/webhooks", headers=admin).json() == []
    assert http.delete("/v1/webhooks/crm", headers=admin).status_code == 404


def test_a_delivery_is_signed_and_verifiable_and_a_replay_is_refused(world: World) -> None:
    with Receiver() as receiver:
        secret = world.register("crm", receiver.url)
        call_with_outcome(world.runtime, TENANT, "k1", "SALE")
        world.dispatch()
        world.dispatch()  # again: nothing more
        assert len(receiver.deliveries) == 1
        key, body, headers = receiver.deliveries[0]
        raw = receiver.raw[0]
        event_id = f"{aggregate_id(TENANT, 'call', 'k1')}/3"
        assert key == f"{event_id}:crm"
        assert body["type"] == "OutcomeSelected" and body["event_id"] == event_id
        assert (body["tenant"], body["interaction"], body["interaction_id"]) == (TENANT, "call", "k1")
        assert (body["project_id"], body["outcome_code"], body["webhook_id"]) == ("winter", "SALE", "crm")
        assert body["actor"] == "agent:anna" and body["occurred_at"].startswith("2026-11-22T09:03:05")
        stamp, signature = headers["X-Outcomes-Timestamp"], headers["X-Outcomes-Signature"]
        assert signature.startswith(f"t={stamp},v1=") and signature.count("v1=") == 1
        assert verify(secret, stamp, raw, signature)
        assert verify(["whsec_other", secret], stamp, raw, signature)
        assert not verify("whsec_other", stamp, raw, signature)
        assert not verify(secret, stamp, raw.replace(b"SALE", b"NO_SALE"), signature)  # tampered
        assert not verify(secret, stamp, raw, signature, now=int(stamp) + 301)  # a replay, 5 minutes on
        assert verify(secret, stamp, raw, signature, now=int(stamp) + 299)
        assert not verify(secret, str(int(stamp) + 1), raw, signature)  # the header's time is not the signed one
    (recorded,) = world.deliveries("k1", "crm")
    assert isinstance(recorded, WebhookDelivered) and recorded.attempts == 1 and recorded.status == 200
    assert recorded.source == event_id and recorded.actor == "system"


def test_filters_choose_the_webhooks(world: World) -> None:
    with Receiver() as everything, Receiver() as winter, Receiver() as sales, Receiver() as corrections:
        world.register("all", everything.url)
        world.register("winter", winter.url, project_ids=["winter"])
        world.register("sales", sales.url, outcome_codes=["SALE"])
        world.register("corrections", corrections.url, event_types=["OutcomeCorrected"])
        call_with_outcome(world.runtime, TENANT, "f1", "SALE")
        call_with_outcome(world.runtime, TENANT, "f2", "NO_SALE")
        world.correct("f2", "SALE")
        world.dispatch()

        def seen(r: Receiver) -> list[tuple[str, str, str]]:
            return sorted((b["interaction_id"], b["type"], b["outcome_code"]) for _, b, _ in r.deliveries)

        assert seen(everything) == [
            ("f1", "OutcomeSelected", "SALE"),
            ("f2", "OutcomeCorrected", "SALE"),
            ("f2", "OutcomeSelected", "NO_SALE"),
        ]
        assert seen(winter) == seen(everything)  # every call here is in winter
        assert seen(sales) == [("f1", "OutcomeSelected", "SALE"), ("f2", "OutcomeCorrected", "SALE")]
        assert seen(corrections) == [("f2", "OutcomeCorrected", "SALE")]
        (correction,) = [b for _, b, _ in corrections.deliveries]
        assert (correction["previous_code"], correction["reason"]) == ("NO_SALE", "misclicked")
    # a project filter that matches nothing here
    with Receiver() as summer:
        world.register("summer", summer.url, project_ids=["summer"])
        call_with_outcome(world.runtime, TENANT, "f3", "SALE")
        world.dispatch()
        assert summer.deliveries == []


def test_a_webhook_gets_only_what_was_recorded_after_it_was_registered(world: World) -> None:
    call_with_outcome(world.runtime, TENANT, "early", "SALE")
    with Receiver() as receiver:
        world.register("late", receiver.url)
        call_with_outcome(world.runtime, TENANT, "later", "SALE")
        world.dispatch()
        assert [b["interaction_id"] for _, b, _ in receiver.deliveries] == ["later"]


def last_signed(receiver: Receiver) -> tuple[str, str, bytes]:
    """The last delivery's timestamp and signature headers, and its raw body."""
    _, _, headers = receiver.deliveries[-1]
    return headers["X-Outcomes-Timestamp"], headers["X-Outcomes-Signature"], receiver.raw[-1]


def test_after_a_rotation_both_secrets_sign_during_the_grace_period_only(world: World) -> None:
    with Receiver() as receiver:
        old = world.register("crm", receiver.url)
        r = world.http.post("/v1/webhooks/crm/rotate-secret", headers=world.admin, json={"grace_seconds": 3600})
        new = r.json()["secret"]
        call_with_outcome(world.runtime, TENANT, "g1", "SALE")
        world.dispatch()
        stamp, signature, raw = last_signed(receiver)
        assert signature.count("v1=") == 2
        assert verify(old, stamp, raw, signature) and verify(new, stamp, raw, signature)

        r = world.http.post("/v1/webhooks/crm/rotate-secret", headers=world.admin, json={"grace_seconds": 0})
        newest = r.json()["secret"]
        call_with_outcome(world.runtime, TENANT, "g2", "SALE")
        world.dispatch()
        stamp, signature, raw = last_signed(receiver)
        assert signature.count("v1=") == 1
        assert verify(newest, stamp, raw, signature)
        assert not verify([old, new], stamp, raw, signature)


@pytest.mark.parametrize(
    ("status", "retries", "attempts"),
    [(503, 2, 3), (410, 3, 1)],
    ids=["a-server-error-is-retried-with-backoff", "a-refusal-is-not-retried"],
)
def test_a_failing_receiver_is_recorded_failed(world: World, status: int, retries: int, attempts: int) -> None:
    with Receiver(fail_with=status) as receiver:
        world.register("down", receiver.url)
        call_with_outcome(world.runtime, TENANT, "r1", "SALE")
        world.dispatch(retries=retries)
        assert len(receiver.deliveries) == attempts and len(set(receiver.keys())) == 1  # one key, every try
    (failed,) = world.deliveries("r1", "down")
    assert isinstance(failed, WebhookFailed) and failed.attempts == attempts and f"HTTP {status}" in failed.reason


@pytest.mark.parametrize("status", [429, 500, 408])
def test_a_passing_failure_is_retried_until_delivered(world: World, status: int) -> None:
    with Receiver(fail_with=status, fail_times=2) as receiver:
        world.register("flaky", receiver.url)
        call_with_outcome(world.runtime, TENANT, "r2", "SALE")
        world.dispatch(retries=3)
        assert len(receiver.deliveries) == 3
    (delivered,) = world.deliveries("r2", "flaky")
    assert isinstance(delivered, WebhookDelivered) and delivered.attempts == 3


def test_an_unreachable_receiver_is_recorded_failed(world: World) -> None:
    with Receiver() as receiver:
        url = receiver.url
    world.register("nowhere", url)  # the receiver is closed: connection refused
    call_with_outcome(world.runtime, TENANT, "r4", "SALE")
    world.dispatch(retries=1)
    (failed,) = world.deliveries("r4", "nowhere")
    assert isinstance(failed, WebhookFailed) and failed.attempts == 2 and "ConnectError" in failed.reason


def test_twin_dispatchers_record_each_delivery_once(world: World) -> None:
    with Receiver() as receiver:
        world.register("crm", receiver.url)
        for n in range(5):
            call_with_outcome(world.runtime, TENANT, f"t{n}", "SALE")
        settings = world.runtime.settings
        first, second = (WebhookDispatcher(settings, WebhookSender(retries=0)) for _ in range(2))
        while first.run_once() + second.run_once():
            pass
        for n in range(5):
            assert [type(e) for e in world.deliveries(f"t{n}", "crm")] == [WebhookDelivered]
        assert len(receiver.accepted) == 5  # the receiver deduplicates on the Idempotency-Key
        assert len(receiver.deliveries) <= 10


def test_the_dispatcher_is_one_of_the_shards_followers(world: World) -> None:
    from services.sms_gateway import FileGateway

    names = [f.name for f in followers(world.runtime.settings, FileGateway(world.runtime.settings.redis_url))]
    assert "actions.webhook-dispatcher" in names


def test_the_payload_is_the_documented_one(world: World) -> None:
    """docs/actions.md lists every field of the body."""
    with Receiver() as receiver:
        world.register("doc", receiver.url)
        call_with_outcome(world.runtime, TENANT, "d1", "SALE")
        world.dispatch()
        (raw,) = receiver.raw
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "actions.md").read_text()
    for field in json.loads(raw):
        assert f"`{field}`" in doc, field
