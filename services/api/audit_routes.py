"""History export over HTTP for the auditor role (services/export.py; docs/audit.md)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.datastructures import State
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream

from services.api.common import Principal, in_thread, runtime_of
from services.export import AggregateKind, Exporter, check_aggregate, ndjson
from services.permissions import Action

NDJSON = "application/x-ndjson"
#: a cursor: a log position or an aggregate version already seen (0: from the start)
After = Annotated[int, QueryParameter(ge=0, le=2**63 - 1)]
#: at most this many lines (default: to the end)
Limit = Annotated[int | None, QueryParameter(ge=1, le=1_000_000)]


async def _exporter(principal: Principal, state: State) -> Exporter:
    principal.require(Action.AUDIT)
    runtime = runtime_of(state)
    keys = await in_thread(runtime.shard_keys, principal.tenant_id)
    return Exporter(runtime.client, keys, principal.tenant_id)


@get(
    "/v1/audit/log",
    summary="The tenant's whole log, in order, as JSON lines (auditor)",
    description=(
        "Every event of the tenant in log order, one JSON object per line (schema: docs/audit.md), streamed. "
        "`after` resumes after a log position (the `position` of the last line received); `limit` caps the lines."
    ),
    operation_id="exportTenantLog",
    media_type=NDJSON,
)
async def export_log(principal: Principal, state: State, after: After = 0, limit: Limit = None) -> Stream:
    exporter = await _exporter(principal, state)
    return Stream(ndjson(exporter.log(after, limit)), media_type=NDJSON)


@get(
    "/v1/audit/history",
    summary="One aggregate's history as JSON lines (auditor)",
    description=(
        "The events of one call, conversation, contact, the catalogue, ... named as the platform names it "
        "(`kind` and `id`; the catalogue takes no id), in order, one JSON object per line (schema: "
        "docs/audit.md). `after` resumes after an aggregate version (the `version` of the last line)."
    ),
    operation_id="exportAggregateHistory",
    media_type=NDJSON,
)
async def export_history(
    principal: Principal,
    state: State,
    kind: FromQuery[AggregateKind],
    id: Annotated[str | None, QueryParameter(min_length=1, max_length=256)] = None,
    after: After = 0,
    limit: Limit = None,
) -> Stream:
    exporter = await _exporter(principal, state)
    external_id = check_aggregate(kind, id)
    lines = await in_thread(exporter.history, kind, external_id, after, limit)  # 404 before the first line
    return Stream(ndjson(lines), media_type=NDJSON)
