"""What Litestar cannot infer from the handlers, added to the generated OpenAPI document.

* **Links** between operations (OpenAPI 3.1 §4.8.20): a write answers with a ``Receipt`` whose ``id`` is
  the external id it wrote (project, call, conversation, outcome code, ...), and the links say which
  operations take that id next. Clients can follow them, and stateful fuzzing (schemathesis) chains
  requests along them instead of guessing ids.
* The **bearer API key** every ``/v1`` operation requires (``/health`` and ``/metrics`` are open).
* The **error responses** the handlers really give: every error leaves as ``Error`` JSON
  (``services.api.errors``), not Litestar's default validation body.
* Bodies are **closed**: a Struct with ``forbid_unknown_fields`` rejects unknown fields, so its schema
  says ``additionalProperties: false`` (Litestar leaves it open); and the items of an array keep their
  string constraints (Litestar drops ``tuple[Code, ...]``'s pattern).
* ``/metrics`` is Prometheus text, not JSON.

:func:`document` edits the schema Litestar generated, in place; ``create_app`` calls it once every
route is registered (a route added later would make Litestar rebuild the schema without these).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import msgspec.inspect as mi
from litestar.openapi.spec import (
    Components,
    Link,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)

SECURITY_SCHEME = "apiKey"

#: operations that answer without a key
OPEN_OPERATIONS = frozenset({"health", "MetricsGet"})

ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    title="Error",
    description="Every error: the HTTP status, a stable error code, a message, and details when there are some",
    properties={
        "status": Schema(type=OpenAPIType.INTEGER),
        "error": Schema(type=OpenAPIType.STRING, description="e.g. not_found, invalid_request, outcome_not_selectable"),
        "message": Schema(type=OpenAPIType.STRING),
        "detail": Schema(description="What the rule or the validator found (an object or a list)"),
    },
    required=["status", "error", "message"],
)

#: status -> description, for every authenticated operation
_ANY_ERRORS = {
    "400": "The request is malformed: its parameters or body do not validate",
    "401": "No API key, or an unknown or revoked one",
    "403": "The key's role may not do this (or X-Acting-For is not allowed)",
    "404": "Unknown id, or another tenant's",
    "429": "The tenant is over its request rate",
}
#: and for every operation that writes
_WRITE_ERRORS = {
    "409": "Someone changed it first, or it already exists",
    "422": "A rule was broken; nothing was written",
}
_BODY_ERRORS = {"413": "The body is larger than 256 KiB"}


@dataclass(frozen=True)
class _Link:
    source: str
    status: str
    name: str
    target: str
    parameters: dict[str, str] = field(default_factory=dict)
    request_body: dict[str, str] | None = None


_ID = "$response.body#/id"


def _links() -> list[_Link]:
    links: list[_Link] = []

    def add(source: str, status: str, *targets: tuple[str, str, dict[str, str], dict[str, str] | None]) -> None:
        links.extend(_Link(source, status, name, target, params, body) for name, target, params, body in targets)

    # -- configuration -------------------------------------------------------------------------------
    project = {"project_id": _ID}
    add(
        "createProject",
        "201",
        ("GetOutcomeSet", "getOutcomeSet", project, None),
        ("GetOutcomeCounts", "getOutcomeCounts", project, None),
        ("ChangeProject", "changeProject", project, None),
        ("DefineProjectOutcome", "defineProjectOutcome", project, None),
        ("SearchProjectOutcomes", "searchOutcomes", project, None),
        ("HideOutcome", "hideOutcome", project, None),
        ("StartCall", "startCall", {}, project),
        ("StartConversation", "startConversation", {}, project),
    )
    code = {"code": _ID}
    add(
        "defineGlobalOutcome",
        "201",
        ("ChangeGlobalOutcome", "changeGlobalOutcome", code, code),
        ("EnableGlobalOutcome", "enableGlobalOutcome", code, None),
        ("DisableGlobalOutcome", "disableGlobalOutcome", code, None),
        ("RetireGlobalOutcome", "retireGlobalOutcome", code, None),
        ("AssignOutcome", "assignOutcome", code, None),
        ("HideOutcome", "hideOutcome", code, None),
        ("SearchOutcomes", "searchOutcomes", {"q": _ID}, None),
    )
    assignment = {"code": "$request.path.code", "project_id": "$request.path.project_id"}
    add("assignOutcome", "200", ("UnassignOutcome", "unassignOutcome", assignment, None))
    add("hideOutcome", "200", ("UnhideOutcome", "unhideOutcome", assignment, None))
    project_outcome = {"project_id": "$request.path.project_id", "code": _ID}
    add(
        "defineProjectOutcome",
        "201",
        ("ChangeProjectOutcome", "changeProjectOutcome", project_outcome, code),
        *(
            (f"{verb.title()}ProjectOutcome", "setProjectOutcomeState", {**project_outcome, "verb": verb}, None)
            for verb in ("enable", "disable", "retire")
        ),
        ("GetOutcomeSet", "getOutcomeSet", {"project_id": "$request.path.project_id"}, None),
    )
    add("registerAgent", "201", ("SetAgentTeam", "setAgentTeam", {"agent_id": _ID}, None))
    add("createTeam", "201", ("SetAgentTeam", "setAgentTeam", {}, {"team_id": _ID}))
    add("issueKey", "201", ("RevokeKey", "revokeKey", {"key_id": "$response.body#/key_id"}, None))

    # -- calls ------------------------------------------------------------------------------------------
    # Links leave from the operation that creates the id: every later fact on the same call follows
    # a link from its startCall (a client keeps the id; a fuzzer draws the same startCall response).
    call = {"call_id": _ID}
    add(
        "startCall",
        "201",
        ("CallAnswered", "callAnswered", call, None),
        ("AgentConnected", "agentConnected", call, None),
        ("CallUnanswered", "callUnanswered", call, None),
        ("CallEnded", "callEnded", call, None),
        ("SelectCallOutcome", "selectCallOutcome", call, None),
        ("CorrectCallOutcome", "correctCallOutcome", call, None),
        ("AttachCallReference", "attachCallReference", call, None),
        ("GetCall", "getCall", call, None),
    )

    # -- conversations and contacts -----------------------------------------------------------------------
    conversation = {"conversation_id": _ID}
    add(
        "startConversation",
        "201",
        ("RecordMessage", "recordMessage", conversation, None),
        ("SelectConversationOutcome", "selectConversationOutcome", conversation, None),
        ("CorrectConversationOutcome", "correctConversationOutcome", conversation, None),
        ("CloseConversation", "closeConversation", conversation, None),
        ("AttachConversationReference", "attachConversationReference", conversation, None),
        ("GetConversation", "getConversation", conversation, None),
        # a call inside the conversation, in the conversation's project
        ("StartCall", "startCall", {}, {"conversation_id": _ID, "project_id": "$request.body#/project_id"}),
    )
    add("contactOptedOut", "201", ("StartCall", "startCall", {}, {"contact_id": _ID}))
    return links


LINKS: tuple[_Link, ...] = tuple(_links())


def _operations(openapi: OpenAPI) -> dict[str, Operation]:
    found: dict[str, Operation] = {}
    for item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method, None)
            if operation is not None and operation.operation_id:
                found[operation.operation_id] = operation
    return found


def _error_response(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={"application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Error"))},
    )


def _response(operation: Operation, status: str) -> OpenAPIResponse:
    response = (operation.responses or {}).get(status)
    if not isinstance(response, OpenAPIResponse):
        raise LookupError(f"operation {operation.operation_id!r} documents no {status} response to link from")
    return response


def _structs() -> dict[str, type[msgspec.Struct]]:
    """Every Struct class by name (names two classes share are left out)."""
    found: dict[str, list[type[msgspec.Struct]]] = {}
    pending: list[type[msgspec.Struct]] = [msgspec.Struct]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.setdefault(sub.__name__, []).append(sub)
            pending.append(sub)
    return {name: classes[0] for name, classes in found.items() if len(classes) == 1}


def _close(schema: Schema, struct: type[msgspec.Struct]) -> None:
    """Match the schema of a Struct's body to what msgspec accepts."""
    if schema.type != OpenAPIType.OBJECT or schema.properties is None:
        return
    if struct.__struct_config__.forbid_unknown_fields:
        schema.additional_properties = False
    info = mi.type_info(struct)
    for field_info in info.fields if isinstance(info, mi.StructType) else ():
        array = field_info.type
        prop = schema.properties.get(field_info.encode_name)
        if not isinstance(array, mi.VarTupleType | mi.ListType | mi.SetType | mi.FrozenSetType):
            continue
        item = array.item_type.type if isinstance(array.item_type, mi.Metadata) else array.item_type
        if isinstance(item, mi.StrType) and isinstance(prop, Schema) and isinstance(prop.items, Schema):
            prop.items.pattern = prop.items.pattern or item.pattern
            prop.items.min_length = prop.items.min_length or item.min_length
            prop.items.max_length = prop.items.max_length or item.max_length


def document(openapi: OpenAPI) -> OpenAPI:
    """Add the links, the security scheme, the error responses and closed bodies; idempotent."""
    operations = _operations(openapi)
    components = openapi.components if isinstance(openapi.components, Components) else Components()
    openapi.components = components
    structs = _structs()
    for name, schema in components.schemas.items():
        if name in structs:
            _close(schema, structs[name])
    components.schemas["Error"] = ERROR_SCHEMA
    components.security_schemes = {
        SECURITY_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            description=(
                "An API key: 'Authorization: Bearer <key>'. A platform key may add 'X-Acting-For: agent:<id>', "
                "'supervisor:<id>' or 'system'."
            ),
        )
    }
    openapi.security = [{SECURITY_SCHEME: []}]

    for operation_id, operation in operations.items():
        responses = operation.responses if operation.responses is not None else {}
        operation.responses = responses
        if operation_id in OPEN_OPERATIONS:
            operation.security = []
            continue
        errors = dict(_ANY_ERRORS)
        if not _is_read(openapi, operation):
            errors |= _WRITE_ERRORS
        if operation.request_body is not None:
            errors |= _BODY_ERRORS
        for status, description in errors.items():
            responses[status] = _error_response(description)

    if (metrics := operations.get("MetricsGet")) is not None:
        metrics.summary = "Prometheus metrics"
        metrics.responses = {
            "200": OpenAPIResponse(
                description="Prometheus text exposition format",
                content={"text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
            )
        }

    for report in (
        "getOutcomeMix",
        "getRates",
        "getHistory",
        "getSample",
        "getQaReport",
        "getOutcomeTrend",
        "getAlerts",
        "getDefinitionComparison",
        "getFollowUpSla",
        "getQuotas",
        "getOutcomeCounts",
    ):
        if (op := operations.get(report)) is None:
            continue
        # ?format=csv: the same rows as CSV (Litestar documents only the JSON answer)
        ok = op.responses.get("200") if op.responses else None
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["text/csv"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))

    for export in ("exportTenantLog", "exportAggregateHistory"):
        if (op := operations.get(export)) is None:
            continue
        ok = op.responses.get("200") if op.responses else None
        if isinstance(ok, OpenAPIResponse):
            ok.description = "JSON lines, streamed: one exported event per line (schema: docs/audit.md)"
            line = Schema(type=OpenAPIType.STRING, description="newline-delimited JSON objects")
            ok.content = {"application/x-ndjson": OpenAPIMediaType(schema=line)}

    for link in LINKS:
        for end in (link.source, link.target):
            if end not in operations:
                raise LookupError(f"link {link.name!r} names no operation {end!r}")
        response = _response(operations[link.source], link.status)
        response.links = response.links or {}
        response.links[link.name] = Link(
            operation_id=link.target,
            parameters=dict(link.parameters) or None,
            request_body=dict(link.request_body) if link.request_body is not None else None,
        )
    return openapi


def _is_read(openapi: OpenAPI, operation: Operation) -> bool:
    return any(item.get is operation for item in (openapi.paths or {}).values())


def links_of(schema: dict[str, Any]) -> dict[str, list[str]]:
    """``{source operationId: [target operationId, ...]}`` in a rendered document (for tests and docs)."""
    found: dict[str, list[str]] = {}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                for link in response.get("links", {}).values():
                    found.setdefault(operation["operationId"], []).append(link["operationId"])
    return found
