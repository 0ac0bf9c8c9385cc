"""History export (services/export.py) over HTTP (the real ASGI app) and the CLI, against real
Redis: an aggregate's history and the tenant's whole log as JSON lines with the stable type
names, in order, resumable with ``after``; personal fields decrypted while the subject's key
exists and shown as erased after it is destroyed; only the auditor role may export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient

from events.codec import ERASED, SubjectKeys
from services.api.app import create_app
from services.export import WITHHELD, Exporter, ndjson
from services.permissions import Role
from services.runtime import Runtime
from tests.helpers import new_runtime, seed_project, selected_call
from tests.history_strategies import tenant_events
from tests.stack import Stack

NUMBER = "+358401234567"


@dataclass
class World:
    runtime: Runtime
    client: TestClient[Any]
    keys: dict[Role, dict[str, str]]

    def lines(self, path: str, **params: Any) -> list[dict[str, Any]]:
        r = self.client.get(path, headers=self.keys[Role.AUDITOR], params=params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/x-ndjson")
        assert r.text == "" or r.text.endswith("\n")
        return [json.loads(line) for line in r.text.splitlines()]


def _calls(runtime: Runtime) -> None:
    """acme and beta interleaved on one shard: acme's log is not the shard's log."""
    for tenant in ("acme", "beta"):
        seed_project(runtime, tenant)
    for i in range(6):
        for tenant in ("acme", "beta"):
            selected_call(runtime.ledger(tenant), tenant, f"c-{i}", "SALE", project_id="winter", contact_number=NUMBER)


@pytest.fixture()
def world(redis_url: str, shard: str) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    try:
        _calls(runtime)
        keys = {role: {"Authorization": f"Bearer {runtime.registry.issue_key('acme', role)[1]}"} for role in Role}
        with TestClient(create_app(runtime)) as client:
            yield World(runtime, client, keys)
    finally:
        runtime.close()


def test_a_calls_history_is_its_events_in_order_with_stable_names_and_the_number_decrypted(world: World) -> None:
    lines = world.lines("/v1/audit/history", kind="call", id="c-2")
    assert [(x["type"], x["schema_version"], x["version"]) for x in lines] == [
        ("CallStarted", 1, 1),
        ("CallEnded", 1, 2),
        ("OutcomeSelected", 1, 3),
    ]
    assert {x["aggregate_id"] for x in lines} == {lines[0]["event"]["originator_id"]}
    assert [x["position"] for x in lines] == sorted(x["position"] for x in lines)
    started = lines[0]
    assert started["event"]["call_id"] == "c-2" and started["event"]["tenant_id"] == "acme"
    assert started["event"]["contact_number"] == NUMBER and started["erased"] == []
    # the hashes are the stored chain hashes of those log entries
    log = world.runtime.shard_keys("acme").log
    for x in lines:
        ((_, fields),) = world.runtime.client.xrange(log, f"{x['position']}-0", f"{x['position']}-0")
        assert (x["hash"], x["chain"]) == (fields[b"h"].decode(), fields[b"c"].decode())
    # resumable after a version, and capped
    assert world.lines("/v1/audit/history", kind="call", id="c-2", after=1) == lines[1:]
    assert world.lines("/v1/audit/history", kind="call", id="c-2", after=1, limit=1) == lines[1:2]
    assert world.lines("/v1/audit/history", kind="call", id="c-2", after=3) == []


def test_the_catalogue_history_needs_no_id_and_the_webhook_secret_is_withheld(world: World) -> None:
    admin = world.keys[Role.ADMIN]
    r = world.client.post("/v1/webhooks", headers=admin, json={"webhook_id": "crm", "url": "https://crm.example/in"})
    assert r.status_code in (200, 201), r.text
    lines = world.lines("/v1/audit/history", kind="catalogue")
    assert lines[0]["type"] == "TenantCreated" and [x["version"] for x in lines] == list(range(1, len(lines) + 1))
    secrets = [x for x in lines if "secret" in x["event"]]
    assert secrets and all(x["event"]["secret"] == WITHHELD for x in secrets)
    assert r.json()["secret"] not in json.dumps(lines)


def test_after_erasure_the_personal_field_reads_erased_and_is_named(world: World) -> None:
    SubjectKeys(world.runtime.client, world.runtime.settings.key_prefix).destroy("acme", "call:c-1")
    started = world.lines("/v1/audit/history", kind="call", id="c-1")[0]
    assert started["event"]["contact_number"] == ERASED and started["erased"] == ["contact_number"]
    other = world.lines("/v1/audit/history", kind="call", id="c-3")[0]
    assert other["event"]["contact_number"] == NUMBER  # another subject's key is untouched


def test_the_tenant_log_is_the_tenants_events_in_log_order_and_pages_join_up(world: World) -> None:
    lines = world.lines("/v1/audit/log")
    expected = tenant_events(world.runtime, "acme")
    assert [(x["type"], x["aggregate_id"], x["version"]) for x in lines] == [
        (type(e).type_name, str(e.originator_id), e.originator_version) for e in expected
    ]
    assert {x["event"]["tenant_id"] for x in lines} == {"acme"}
    positions = [x["position"] for x in lines]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    # beta's events sit between acme's on the shard: acme's positions are not contiguous
    assert positions[-1] - positions[0] + 1 > len(positions)
    pages: list[dict[str, Any]] = []
    after = 0
    while page := world.lines("/v1/audit/log", after=after, limit=7):
        pages += page
        after = page[-1]["position"]
    assert pages == lines


def test_small_batches_read_the_same_lines(world: World) -> None:
    keys = world.runtime.shard_keys("acme")
    whole = list(Exporter(world.runtime.client, keys, "acme").log())
    assert list(Exporter(world.runtime.client, keys, "acme", batch=2).log()) == whole
    assert list(Exporter(world.runtime.client, keys, "acme", batch=2).log(limit=5)) == whole[:5]
    history = list(Exporter(world.runtime.client, keys, "acme").history("call", "c-4"))
    assert list(Exporter(world.runtime.client, keys, "acme", batch=2).history("call", "c-4")) == history


@pytest.mark.parametrize("role", list(Role))
def test_only_the_auditor_may_export(world: World, role: Role) -> None:
    for path, params in (("/v1/audit/log", {}), ("/v1/audit/history", {"kind": "call", "id": "c-1"})):
        r = world.client.get(path, headers=world.keys[role], params=params)
        if role is Role.AUDITOR:
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 403, r.text
            assert r.json()["error"] == "forbidden" and "may not export history" in r.json()["message"]


def test_another_tenants_call_is_not_found_for_the_auditor(world: World) -> None:
    r = world.client.get("/v1/audit/history", headers=world.keys[Role.AUDITOR], params={"kind": "call", "id": "c-9"})
    assert r.status_code == 404 and r.json()["message"] == "call 'c-9' not found"
    beta_auditor = world.runtime.registry.issue_key("beta", Role.AUDITOR)[1]
    theirs = world.client.get(
        "/v1/audit/log", headers={"Authorization": f"Bearer {beta_auditor}"}, params={"limit": 1000}
    )
    assert {json.loads(x)["event"]["tenant_id"] for x in theirs.text.splitlines()} == {"beta"}


def test_the_cli_exports_the_same_lines(stack: Stack) -> None:
    runtime = stack.runtime()
    try:
        _calls(runtime)
        keys = runtime.shard_keys("acme")
        expected = [json.loads(x) for x in b"".join(ndjson(Exporter(runtime.client, keys, "acme").log())).splitlines()]
    finally:
        runtime.close()
    assert [json.loads(x) for x in stack.cli("export", "log", "acme").splitlines()] == expected
    history = [
        json.loads(x) for x in stack.cli("export", "history", "acme", "call", "c-0", "--after", "1").splitlines()
    ]
    assert [x["type"] for x in history] == ["CallEnded", "OutcomeSelected"]
    catalogue = stack.cli("export", "history", "acme", "catalogue", "--limit", "1")
    assert json.loads(catalogue)["type"] == "TenantCreated"
