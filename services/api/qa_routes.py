"""QA verdicts over HTTP (PRODUCT.md §4): a reviewer (or supervisor) confirms or disputes the
outcome a call or conversation shows; the QA report reads them back per outcome."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, cast

from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.params import FromQuery

from events.types import Interaction
from projections.qa import QaReport, qa_report
from services.api import bodies
from services.api.common import Principal, command, in_thread, runtime_of
from services.api.report_routes import RequiredId, _as_csv, _blank, _check_range, _csv, _position
from services.errors import BadRequest
from services.idempotency import Receipt
from services.permissions import Action

Req = Request[Any, Any, Any]
#: the longest period the report reads (its days' records are all loaded)
MAX_DAYS = 366
OUTCOME_COLUMNS = (
    "outcome",
    "selections",
    "reviewed",
    "confirmed",
    "disputed",
    "agreement_rate",
    "disputed_into",
    "flags",
    "unclear_with",
)
PAIR_COLUMNS = ("outcome", "should_have_been", "count")


async def _record(
    interaction: Interaction,
    external_id: str,
    data: bodies.RecordVerdictBody,
    principal: Principal,
    state: State,
    request: Req,
) -> Receipt:
    return await command(
        request,
        state,
        principal,
        Action.RECORD_VERDICTS,
        lambda ledger, ctx, key: ledger.record_verdict(
            ctx,
            interaction,
            external_id,
            verdict=data.verdict,
            should_have_been=data.should_have_been,
            note=data.note,
            idempotency=key,
        ),
    )


@post(
    "/calls/{call_id:str}/verdicts",
    status_code=201,
    operation_id="recordCallVerdict",
    summary="Confirm or dispute the call's outcome (QA reviewer or supervisor)",
)
async def call_verdict(
    call_id: str, data: bodies.RecordVerdictBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _record("call", call_id, data, principal, state, request)


@post(
    "/conversations/{conversation_id:str}/verdicts",
    status_code=201,
    operation_id="recordConversationVerdict",
    summary="Confirm or dispute the conversation's closing outcome (QA reviewer or supervisor)",
)
async def conversation_verdict(
    conversation_id: str, data: bodies.RecordVerdictBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _record("conversation", conversation_id, data, principal, state, request)


router = Router(path="/v1", route_handlers=[call_verdict, conversation_verdict])


def outcome_lines(report: QaReport) -> list[list[object]]:
    """Outcome rows flat: flags and unclear_with joined with "|"."""
    lines = []
    for row in report.outcomes:
        flat: dict[str, object] = {"flags": "|".join(row.flags), "unclear_with": "|".join(row.unclear_with)}
        lines.append([_blank(flat[c] if c in flat else getattr(row, c)) for c in OUTCOME_COLUMNS])
    return lines


@get(
    "/v1/reports/qa",
    summary="QA verdicts: agreement per outcome, confused pairs, flagged outcomes",
    description=(
        "Over the project's calls and conversations that started in the tenant-local date range: per outcome "
        "the verdicts on it (each reviewer's latest per interaction), confirmed, disputed and the agreement rate; "
        "the pairs (outcome -> should have been) disputes name, most frequent first; and flags 'disputed', "
        "'overused', 'unclear' (thresholds in docs/reports.md). `format=csv` gives the outcome rows, or with "
        "`table=pairs` the confused pairs."
    ),
    operation_id="getQaReport",
)
async def get_qa_report(
    principal: Principal,
    state: State,
    project_id: RequiredId,
    date_from: FromQuery[date],
    date_to: FromQuery[date],
    format: FromQuery[Literal["json", "csv"]] = "json",
    table: FromQuery[Literal["outcomes", "pairs"]] = "outcomes",
) -> Response[QaReport]:
    principal.require(Action.READ_REPORTS)
    _check_range(date_from, date_to)
    if (date_to - date_from).days >= MAX_DAYS:
        raise BadRequest(f"the period may span at most {MAX_DAYS} days")
    runtime = runtime_of(state)
    keys = await in_thread(runtime.view_keys, principal.tenant_id)

    def read() -> QaReport:
        position = _position(runtime, keys)
        return qa_report(
            runtime.client,
            keys,
            principal.tenant_id,
            project=project_id,
            date_from=date_from,
            date_to=date_to,
            position=position,
        )

    report = await in_thread(read)
    if format == "csv":
        if table == "pairs":
            lines: list[list[object]] = [[p.outcome, p.should_have_been, p.count] for p in report.confused_pairs]
            return cast(Response[QaReport], _as_csv(_csv(PAIR_COLUMNS, lines)))
        return cast(Response[QaReport], _as_csv(_csv(OUTCOME_COLUMNS, outcome_lines(report))))
    return Response(report)
