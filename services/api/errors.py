"""Every error leaves the API as JSON naming the problem; domain errors are mapped here, once."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.handlers import HTTPRouteHandler

from services.errors import DomainError

_HTTP_CODES = {
    400: "invalid_request",  # e.g. malformed JSON (the same code the ingest stream gives it)
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_body(status: int, code: str, message: str, detail: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "error": code, "message": message}
    if detail:
        body["detail"] = detail
    return body


def domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return Response(error_body(exc.status, exc.code, exc.message, exc.detail or None), status_code=exc.status)


def _problem(entry: Any) -> str:
    """One of Litestar's validation entries ({"message", "key", "source"}) as a phrase."""
    if not isinstance(entry, dict):
        return str(entry)
    message = str(entry.get("message", "")).strip()
    key = entry.get("key")
    if key == "data" and message == "'data'":
        # Litestar's words for a request that has no body at all
        return "the request body is empty; send a JSON object"
    if not key or key == "data":
        return message
    source = entry.get("source")
    source = getattr(source, "value", source)  # Litestar gives query/path sources as a ParamType enum
    where = f"{source} field" if source == "body" else (f"{source} parameter" if source else "field")
    return f"{where} `{key}`: {message}"


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    # Litestar's own detail ("Validation failed for POST /v1/...") names no problem: the entries do
    entries = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
    problems = [p for p in (_problem(e) for e in entries) if p]
    message = "invalid request: " + "; ".join(problems) if problems else str(exc.detail)
    return Response(error_body(400, "invalid_request", message, exc.extra or None), status_code=400)


def _too_large(request: Request[Any, Any, Any]) -> str:
    handler = request.scope.get("route_handler")
    limit = handler.resolve_request_max_body_size() if isinstance(handler, HTTPRouteHandler) else None
    if not limit:
        return "the request body is too large"
    size = f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
    return f"the request body is over the {size} limit"


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = _too_large(request) if exc.status_code == 413 else str(exc.detail)
    if isinstance(exc.__cause__, SerializationException) and not message.startswith("JSON is malformed"):
        message = f"JSON is malformed: {message}"  # e.g. msgspec's bare "Input data was truncated"
    return Response(error_body(exc.status_code, code, message, exc.extra or None), status_code=exc.status_code)


HANDLERS: dict[Any, Any] = {
    DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
}
