"""The AsyncAPI 3.0 document of the streams Outcome Ledger publishes and reads, generated
from the same types as the event catalogue (docs/events.md) and served at
``GET /schema/asyncapi.json``.

    python -m services.asyncapi > asyncapi.json

Channels (entry formats: docs/actions.md, docs/architecture.md):

* ``log`` -- the shard's event log: one entry per domain event (every registered type);
* ``flow`` -- a flow's stream of hand-overs, messages and hand-backs;
* ``contactLists`` -- the published stream of contact-list changes, per tenant;
* ``webhook`` -- the outcome events POSTed to a tenant's webhook URLs;
* ``ingest`` / ``rejections`` -- a tenant's ingest stream (the commands of
  ``services/commands.py``) and what was refused;
* ``deadLetters`` -- log entries a worker gave up on.

Redis stream entries are flat string fields; where a field holds JSON (``body`` of an ingest
entry, ``data`` of a contact-list change) or msgpack (``s`` of a log entry) the payload schema
shows the decoded value and says how it is carried. Key names use parameters for the parts
that vary; a parameter holding a Redis hash tag includes its braces (``{s00}``).
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Annotated, Any, Literal

import msgspec

from events.catalogue import contract_types, value_types
from events.keys import DEFAULT_PREFIX
from services.commands import COMMANDS
from services.dialing import CONTACT_LIST_CHANGES

VERSION = "0.1.0"
REF = "#/components/schemas/{name}"
Text = Annotated[str, msgspec.Meta(description="a stream field (text)")]
#: the channel parameters holding a Redis hash tag (braces included)
SHARD = {"shard": {"description": "the shard's hash tag with its braces", "examples": ["{s00}"]}}
INGEST_TAG = {"ingest_tag": {"description": "the tenant's ingest hash tag with its braces", "examples": ["{in:acme}"]}}
Rfc3339 = Annotated[str, msgspec.Meta(description="RFC 3339 time")]


class LogEntryFields(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a log entry beside ``s`` (the event); the entry id is ``<notification id>-0``."""

    o: Annotated[str, msgspec.Meta(description="aggregate id")]
    v: Annotated[str, msgspec.Meta(description="aggregate version")]
    t: Annotated[str, msgspec.Meta(description="stable event type name")]
    h: Annotated[str, msgspec.Meta(description="aggregate hash chain: sha1(prev h, originator, version, topic, state)")]
    c: Annotated[str, msgspec.Meta(description="log hash chain: sha1(prev c, notification id, h)")]
    n: Annotated[str, msgspec.Meta(description="tenant")]


class FlowEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An entry of a flow's stream (workers/flows.py ``flow_entry``)."""

    type: Literal["redirected", "message", "returned"]
    event_id: Annotated[str, msgspec.Meta(description="<conversation aggregate id>/<version>; unique per entry")]
    tenant: Text
    flow: Text
    conversation_id: Text
    project_id: Text
    channel: Text
    contact_id: Annotated[str, msgspec.Meta(description="empty when unknown")]
    occurred_at: Rfc3339
    body: Annotated[str, msgspec.Meta(description="message entries only: the customer's text")] | None = None


class WebhookPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON a webhook receives (services/webhooks.py ``payload``): compact, keys sorted,
    every key present, ``null`` where not applicable."""

    type: Literal["OutcomeSelected", "OutcomeCorrected"]
    event_id: Annotated[str, msgspec.Meta(description="<aggregate id>/<version>: unique and stable")]
    webhook_id: str
    tenant: str
    interaction: Literal["call", "conversation"]
    interaction_id: str
    project_id: str
    outcome_code: str
    outcome_name: str
    previous_code: str | None
    reason: str | None
    revenue: Annotated[str, msgspec.Meta(description="a decimal")] | None
    agent_id: str | None
    automatic: str | None
    occurred_at: Rfc3339
    recorded_at: Rfc3339
    actor: str


class WebhookHeaders(msgspec.Struct, frozen=True, kw_only=True, rename={"idempotency_key": "Idempotency-Key",
                     "timestamp": "X-Outcomes-Timestamp", "signature": "X-Outcomes-Signature"}):  # fmt: skip
    idempotency_key: Annotated[str, msgspec.Meta(description="<event id>:<webhook id>, the same on every retry")]
    timestamp: Annotated[str, msgspec.Meta(description="Unix seconds when this attempt was signed")]
    signature: Annotated[
        str, msgspec.Meta(description="t=<timestamp>,v1=<hex>[,v1=<hex>]: HMAC-SHA256 over '<timestamp>.<raw body>'")
    ]


class IngestEntryFields(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of an ingest entry beside ``type`` and ``body``."""

    target: Annotated[str, msgspec.Meta(description="the call, conversation or contact id (none for *.started)")] = ""
    key: Annotated[str, msgspec.Meta(description="idempotency key (default: the entry id)")] = ""
    acting_for: Annotated[str, msgspec.Meta(description="agent:<id>, supervisor:<id> or system (default)")] = "system"


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """An ingest entry that could not be carried out (services/ingest.py)."""

    input: Annotated[str, msgspec.Meta(description="the ingest entry id")]
    type: Text
    status: Annotated[str, msgspec.Meta(description="the HTTP status the same request would get")]
    error: Text
    message: Text


class ContactListEntryFields(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a contact-list change beside ``type`` and ``data`` (services/dialing.py
    ``published_changes``); the entry id is the event's log position."""

    id: Annotated[str, msgspec.Meta(description="<aggregate id>/<version>: unique, stable")]
    contact_id: Text
    project_id: Text
    source: Annotated[str, msgspec.Meta(description="the selection (or call) that caused it")]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A log entry a worker gave up on (workers/lua/dead_letter.lua; ``outcomes dlq``)."""

    worker: Text
    nid: Annotated[str, msgspec.Meta(description="log position of the entry")]
    type: Annotated[str, msgspec.Meta(description="event type name")]
    reason: Text
    attempts: Text


# -- the document --------------------------------------------------------------------------------------


def _entry(fields: dict[str, Any], type_schema: dict[str, Any], payload_name: str, payload: dict[str, Any]) -> Any:
    """An object schema: the fixed fields, ``type``, and the decoded payload field."""
    properties = {**fields["properties"], "type": type_schema, payload_name: payload}
    return {**fields, "properties": properties, "required": [*fields.get("required", []), "type", payload_name]}


def _message(name: str, title: str, payload: Any, content_type: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "title": title, "contentType": content_type, "payload": payload, **extra}


@cache
def encoded() -> bytes:
    """The document as JSON (it changes only with the code: made once per process)."""
    return msgspec.json.encode(document())


def document() -> dict[str, Any]:
    events = sorted(contract_types().items())
    entry_types = [LogEntryFields, FlowEntry, WebhookPayload, WebhookHeaders, IngestEntryFields, Rejection,
                   ContactListEntryFields, DeadLetter]  # fmt: skip
    bodies = sorted({c.body for c in COMMANDS.values()}, key=lambda b: b.__name__)
    _, schemas = msgspec.json.schema_components(
        [*(cls for _, cls in events), *value_types(), *bodies, *entry_types], ref_template=REF
    )

    def ref(name: str) -> dict[str, str]:
        return {"$ref": REF.format(name=name)}

    log_messages = {
        name: _message(
            name,
            f"{name} v{cls.type_version}",
            {**ref(name), "description": "field `s`: msgpack [schema version, this body]"},
            "application/msgpack",
            headers=ref("LogEntryFields"),
        )
        for name, cls in events
    }
    list_messages = {
        cls.type_name: _message(
            cls.type_name,
            f"Contact list: {cls.type_name}",
            _entry(
                schemas["ContactListEntryFields"],
                {"const": cls.type_name},
                "data",
                {**ref(cls.type_name), "description": "field `data`: the whole event as JSON text"},
            ),
            "application/json",
        )
        for cls in CONTACT_LIST_CHANGES
    }
    ingest_messages = {
        name.replace(".", "_"): _message(
            name,
            f"Ingest: {name}",
            _entry(
                schemas["IngestEntryFields"],
                {"const": name},
                "body",
                {**ref(command.body.__name__), "description": "field `body`: this object as JSON text"},
            ),
            "application/json",
        )
        for name, command in sorted(COMMANDS.items())
    }
    channels: dict[str, Any] = {
        "log": {
            "address": f"{DEFAULT_PREFIX}:{{shard}}:log",
            "title": "The shard's event log",
            "description": "Every domain event of the shard's tenants, once, in log order (docs/events.md).",
            "parameters": SHARD,
            "messages": log_messages,
        },
        "flow": {
            "address": f"{DEFAULT_PREFIX}:{{shard}}:flow:{{tenant}}:{{flow}}",
            "title": "A flow's stream",
            "description": "Hand-overs to a flow (bot, survey), the customer's messages it takes over, hand-backs.",
            "parameters": {
                **SHARD,
                "tenant": {"description": "tenant id"},
                "flow": {"description": "the flow named by the outcome's redirect_to_flow"},
            },
            "messages": {"FlowEntry": _message("FlowEntry", "Flow entry", ref("FlowEntry"), "application/json")},
        },
        "contactLists": {
            "address": f"{DEFAULT_PREFIX}:{{shard}}:pub:contact-lists:{{tenant}}",
            "title": "Contact-list changes, for dialers",
            "description": "Written by the same script as the events: published exactly when recorded, once.",
            "parameters": {
                **SHARD,
                "tenant": {"description": "tenant id"},
            },
            "messages": list_messages,
        },
        "webhook": {
            "address": None,
            "title": "A tenant's webhook URL",
            "description": "Outcome events POSTed to each matching webhook, signed (docs/actions.md, Webhooks).",
            "messages": {
                "WebhookPayload": _message(
                    "WebhookPayload",
                    "Outcome event",
                    ref("WebhookPayload"),
                    "application/json",
                    headers=ref("WebhookHeaders"),
                )
            },
        },
        "ingest": {
            "address": f"{DEFAULT_PREFIX}:{{ingest_tag}}:ingest",
            "title": "A tenant's ingest stream",
            "description": "The facts and selections a platform may publish instead of calling HTTP.",
            "parameters": INGEST_TAG,
            "messages": ingest_messages,
        },
        "rejections": {
            "address": f"{DEFAULT_PREFIX}:{{ingest_tag}}:rejections",
            "title": "What the ingest worker refused, and why",
            "parameters": INGEST_TAG,
            "messages": {"Rejection": _message("Rejection", "Rejection", ref("Rejection"), "application/json")},
        },
        "deadLetters": {
            "address": f"{DEFAULT_PREFIX}:{{shard}}:dead-letters",
            "title": "Dead letters",
            "description": "Log entries a worker gave up on after its attempts; 'outcomes dlq' lists and requeues.",
            "parameters": SHARD,
            "messages": {"DeadLetter": _message("DeadLetter", "Dead letter", ref("DeadLetter"), "application/json")},
        },
    }
    actions = {"ingest": "receive"}  # the rest Outcome Ledger sends
    operations = {
        f"{actions.get(name, 'send')}{name[0].upper()}{name[1:]}": {
            "action": actions.get(name, "send"),
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{m}"} for m in channel["messages"]],
        }
        for name, channel in channels.items()
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Outcome Ledger streams",
            "version": VERSION,
            "description": (
                "The streams Outcome Ledger publishes (the event log, flow streams, contact-list changes, "
                "webhooks, dead letters) and the ingest stream it reads. Keys start with REDIS_KEY_PREFIX "
                f"(default '{DEFAULT_PREFIX}'). Generated from the event and body types."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"redis": {"host": "localhost:6379", "protocol": "redis", "description": "REDIS_URL"}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas},
    }


if __name__ == "__main__":
    sys.stdout.write(msgspec.json.format(encoded(), indent=2).decode() + "\n")
