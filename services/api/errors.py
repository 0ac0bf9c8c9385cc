"""Every error leaves the API as JSON naming the problem; domain errors are mapped here, once."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from services.errors import DomainError


def error_body(status: int, code: str, message: str, detail: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "error": code, "message": message}
    if detail:
        body["detail"] = detail
    return body


def domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return Response(error_body(exc.status, exc.code, exc.message, exc.detail or None), status_code=exc.status)


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    return Response(error_body(400, "invalid_request", str(exc.detail), exc.extra or None), status_code=400)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }.get(exc.status_code, "http_error")
    return Response(error_body(exc.status_code, code, str(exc.detail), exc.extra or None), status_code=exc.status_code)


HANDLERS: dict[Any, Any] = {
    DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
}
