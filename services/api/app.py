"""The HTTP API: assembly of the routers, authentication, errors, metrics and OpenAPI."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, cast

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.params import FromQuery
from litestar.plugins.prometheus import PrometheusController

from events.connect import async_redis_client
from projections.outcome_counts import NAME as OUTCOME_COUNTS
from projections.outcome_counts import outcome_counts
from services import asyncapi
from services.api import (
    action_routes,
    audit_routes,
    bodies,
    config_routes,
    dashboard_routes,
    dead_letter_routes,
    interaction_routes,
    look_back_routes,
    qa_routes,
    report_routes,
    trend_routes,
    webhook_routes,
)
from services.api.common import Principal, authenticate, in_thread, runtime_of
from services.api.errors import HANDLERS
from services.api.metrics import register_collector, request_metrics
from services.api.openapi import document
from services.api.report_routes import QuotaStatus, _as_csv, _csv, quota_status, quotas_csv
from services.config import Settings
from services.permissions import Action
from services.registry import Authoriser
from services.runtime import Runtime

MAX_BODY_BYTES = 256 * 1024  # PRODUCT.md §7: larger bodies are refused


@get(
    "/v1/projects/{project_id:str}/outcome-counts",
    summary="Outcome selections per outcome in a project",
    description="Every selection so far (all time), per outcome. `format=csv` gives them as CSV.",
    operation_id="getOutcomeCounts",
)
async def get_outcome_counts(
    project_id: str, principal: Principal, state: State, format: FromQuery[Literal["json", "csv"]] = "json"
) -> Response[bodies.OutcomeCounts]:
    principal.require(Action.READ_REPORTS)
    runtime = runtime_of(state)
    ledger = await in_thread(runtime.ledger, principal.tenant_id)
    await in_thread(ledger.outcome_set, principal.tenant_id, project_id)  # 404 for unknown (or another tenant's)
    keys = await in_thread(runtime.view_keys, principal.tenant_id)

    def read() -> tuple[dict[str, int], int]:
        counts = outcome_counts(runtime.client, keys, principal.tenant_id, project_id)
        position = runtime.client.hget(keys.tracking, keys.view_position(OUTCOME_COUNTS))
        return counts, int(position) if position is not None else 0  # type: ignore[arg-type]

    counts, position = await in_thread(read)
    if format == "csv":
        lines = ([code, n] for code, n in sorted(counts.items()))
        return cast(Response[bodies.OutcomeCounts], _as_csv(_csv(("outcome_code", "count"), lines)))
    return Response(bodies.OutcomeCounts(project_id=project_id, counts=counts, position=position))


@get(
    "/v1/projects/{project_id:str}/quotas",
    summary="Quota status per outcome in a project",
    description="Each quota, the selections so far and when it was reached. `format=csv` gives them as CSV.",
    operation_id="getQuotas",
)
async def get_quotas(
    project_id: str, principal: Principal, state: State, format: FromQuery[Literal["json", "csv"]] = "json"
) -> Response[list[QuotaStatus]]:
    principal.require(Action.READ_REPORTS)
    found = await in_thread(quota_status, runtime_of(state), principal.tenant_id, project_id)
    if format == "csv":
        return cast(Response[list[QuotaStatus]], _as_csv(quotas_csv(found)))
    return Response(found)


@get("/schema/asyncapi.json", include_in_schema=False, media_type="application/json")
async def get_asyncapi() -> Response[bytes]:
    """The AsyncAPI 3.0 document of the published streams (services/asyncapi.py)."""
    return Response(await in_thread(asyncapi.encoded), media_type="application/json")


@get("/health", summary="Liveness and Redis reachability", operation_id="health")
async def health(state: State) -> dict[str, str]:
    await in_thread(runtime_of(state).client.ping)
    return {"status": "ok"}


_PATH_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def check_request(request: Request[Any, Any, Any]) -> None:
    """What every request must be before a handler sees it, checked in one place: a body
    within the size limit (even where the handler reads none), path ids of the id shape,
    and a body of exactly its schema's types (Litestar's own decoding converts "60" to 60)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise HTTPException(status_code=413, detail="the request body is over the 256 KiB limit")
    for name, value in request.path_params.items():
        if isinstance(value, str) and not _PATH_ID.match(value):
            raise ValidationException(
                detail=f"path parameter {name!r}",
                extra=[{"message": "must be 1-128 of A-Z a-z 0-9 . _ : -", "key": name, "source": "path"}],
            )
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is not None and request.method in {"POST", "PUT", "PATCH"}:
        body = await request.body()
        if body.strip():
            try:
                msgspec.json.decode(body, type=data.annotation, strict=True)
            except msgspec.ValidationError as error:
                # msgspec says "Expected `int`, got `str` - at `$.flags.revenue`": name the field
                message, _, where = str(error).partition(" - at `$")
                key = where.rstrip("`").lstrip(".") or "data"
                raise ValidationException(
                    detail="invalid body", extra=[{"message": message, "key": key, "source": "body"}]
                ) from None
            except msgspec.DecodeError:
                pass  # malformed JSON: Litestar's own decoding names it


def create_app(runtime: Runtime | None = None) -> Litestar:
    def on_startup(app: Litestar) -> None:
        if not hasattr(app.state, "runtime"):
            app.state.runtime = runtime or Runtime(Settings.from_env())
        settings = app.state.runtime.settings
        register_collector(app.state.runtime)
        threads = ThreadPoolExecutor(settings.api_threads, thread_name_prefix="api")
        asyncio.get_running_loop().set_default_executor(threads)
        # an asyncio client of this event loop's own, for what needs no worker thread
        app.state.redis = async_redis_client(settings.redis_url)
        app.state.authoriser = Authoriser(app.state.redis, settings.key_prefix)

    async def on_shutdown(app: Litestar) -> None:
        await app.state.redis.aclose()
        if runtime is None:  # we made it, we close it
            app.state.runtime.close()

    route_handlers: list[Any] = [
        config_routes.router,
        interaction_routes.router,
        action_routes.router,
        webhook_routes.router,
        dead_letter_routes.router,
        qa_routes.router,
        look_back_routes.router,
        get_outcome_counts,
        get_quotas,
        report_routes.get_outcome_mix,
        report_routes.get_rates,
        report_routes.get_history,
        report_routes.get_sample,
        qa_routes.get_qa_report,
        trend_routes.get_trend,
        trend_routes.get_alerts,
        trend_routes.get_definition_comparison,
        trend_routes.get_follow_up_sla,
        audit_routes.export_log,
        audit_routes.export_history,
        health,
        dashboard_routes.dashboard,
        dashboard_routes.dashboard_asset,
        get_asyncapi,
        PrometheusController,
    ]
    app = Litestar(
        route_handlers=route_handlers,
        dependencies={"principal": Provide(authenticate)},
        exception_handlers=HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        before_request=check_request,
        middleware=[request_metrics],
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=OpenAPIConfig(title="Outcome Ledger", version="0.1.0", path="/schema"),
    )
    document(app.openapi_schema)  # links, security, error responses: services/api/openapi.py
    if runtime is not None:
        app.state.runtime = runtime
    return app
