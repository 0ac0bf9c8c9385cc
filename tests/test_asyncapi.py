"""The AsyncAPI document (services/asyncapi.py): valid against the AsyncAPI 3.0.0 JSON schema
(vendored, tests/schemas/README.md), every internal reference resolves, it names every event
type and ingest command, the entry formats it gives are what the code produces (a webhook
body, a flow entry), and the service serves it at /schema/asyncapi.json."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import jsonschema
import pytest
from litestar.testing import TestClient

from events.catalogue import contract_types
from events.types import FlowRedirected, MessageRecorded, OutcomeCorrected, OutcomeDefinition
from services.api.app import create_app
from services.asyncapi import document
from services.commands import COMMANDS
from services.interactions import Conversation
from services.webhooks import payload
from tests.helpers import new_runtime
from workers.flows import flow_entry

SCHEMA = Path(__file__).parent / "schemas" / "asyncapi-3.0.0.json"
SHA256 = "d4571a420e6ffb7fcc7066c95a6db1202f299a3c51daa103d0706bf30f95e626"
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(document()))
    return loaded


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    raw = SCHEMA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SHA256, "the vendored schema is not the one tests/schemas/README.md names"
    return jsonschema.Draft7Validator(json.loads(raw))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_document_is_valid_asyncapi_3(doc: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert not errors, "\n".join(errors[:20])


def test_the_validation_sees_a_broken_document(doc: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    """Negative controls: the schema's references resolve deep enough to refuse these."""
    for path, value in (
        (("operations", "sendLog", "action"), "publish"),
        (("channels", "log", "parameters", "shard", "schema"), {"type": "string"}),
        (("components", "schemas", "CallStarted", "type"), "objekt"),
    ):
        broken = copy.deepcopy(doc)
        node = broken
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        assert list(validator.iter_errors(broken)), f"{path} = {value!r} passed validation"


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    refs = set(_refs(doc))
    assert refs and all(r.startswith("#/") for r in refs)
    for ref in refs:
        _resolve(doc, ref)


def test_it_names_every_event_type_and_ingest_command(doc: dict[str, Any]) -> None:
    log = doc["channels"]["log"]["messages"]
    assert set(log) == set(contract_types())
    assert all(m["payload"]["$ref"] == f"#/components/schemas/{n}" for n, m in log.items())
    assert {m["name"] for m in doc["channels"]["ingest"]["messages"].values()} == set(COMMANDS)


def _schema_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A component schema, standalone (its references resolved against the document)."""
    return {**doc["components"]["schemas"][name], "components": doc["components"]}


def test_a_webhook_body_is_what_the_document_says(doc: dict[str, Any]) -> None:
    event = OutcomeCorrected(
        originator_id=uuid4(),
        originator_version=4,
        recorded_at=NOW,
        tenant_id="acme",
        actor="supervisor:sam",
        occurred_at=NOW,
        interaction="call",
        interaction_id="c1",
        project_id="winter",
        previous_code="NO_SALE",
        outcome_code="SALE",
        outcome_set_version=3,
        definition=OutcomeDefinition(code="SALE", name="Sale"),
        reason="QA review",
    )
    body = json.loads(payload(event, "crm"))
    schema = _schema_of(doc, "WebhookPayload")
    jsonschema.validate(body, schema)
    assert set(body) == set(schema["properties"]) == set(schema["required"])


def test_flow_entries_are_what_the_document_says(doc: dict[str, Any]) -> None:
    conversation = Conversation(
        id=uuid4(), version=3, tenant_id="acme", conversation_id="v1", project_id="p", channel="sms", started_at=NOW
    )
    common: dict[str, Any] = {"originator_id": conversation.id, "recorded_at": NOW, "tenant_id": "acme"}
    common |= {"actor": "system", "occurred_at": NOW, "conversation_id": "v1"}
    redirected = FlowRedirected(originator_version=3, flow="bot", **common)
    message = MessageRecorded(originator_version=4, direction="received", channel="sms", body="hi", **common)
    schema = _schema_of(doc, "FlowEntry")
    for event in (redirected, message):
        entry = flow_entry(event, "bot", conversation)
        jsonschema.validate(entry, schema)
        assert set(entry) <= set(schema["properties"])


def test_the_service_serves_it(redis_url: str, shard: str, doc: dict[str, Any]) -> None:
    runtime = new_runtime(redis_url, shard)
    try:
        with TestClient(create_app(runtime)) as client:
            r = client.get("/schema/asyncapi.json")
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
            assert r.json() == doc
            assert "/schema/asyncapi.json" not in client.get("/schema/openapi.json").json()["paths"]
    finally:
        runtime.close()
