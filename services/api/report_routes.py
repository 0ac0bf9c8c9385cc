"""Report endpoints (PRODUCT.md §4): thin adapters over the queries next to their views."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Literal, cast

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.params import FromQuery, QueryParameter

from projections.outcome_mix import NAME as OUTCOME_MIX
from projections.outcome_mix import AsDefined, GroupBy, Kind, MixRow, outcome_mix
from services.api.common import Principal, in_thread, runtime_of
from services.errors import BadRequest
from services.permissions import Action

#: a filter value: the id shape every id has (a longer or odder one names nothing)
FilterId = Annotated[str | None, QueryParameter(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@+-]+$")]
CSV_COLUMNS = ("key", "count", "percentage", "agent_selections", "system_selections", "corrected", "revenue")


class OutcomeMixReport(msgspec.Struct, frozen=True, kw_only=True):
    interaction: Kind
    group_by: GroupBy
    as_defined: AsDefined
    #: interactions in the report
    total: int
    #: the view's tracking position: the report holds every event up to this log position
    position: int
    rows: list[MixRow]


def mix_csv(rows: list[MixRow]) -> str:
    """The report's rows as CSV, one header line, the columns of the JSON rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([getattr(r, column) for column in CSV_COLUMNS])
    return out.getvalue()


@get(
    "/v1/reports/outcome-mix",
    summary="Outcome mix: interactions per outcome (or category, agent, team, project, day, week)",
    description=(
        "Counts and percentages of calls or conversations, each counted once under the outcome that stands "
        "(a conversation's closing one, as corrected; '-' for none), dated by the tenant-local day of its start. "
        "Grouped by outcome, every defined outcome has a row. `format=csv` gives the same rows as CSV."
    ),
    operation_id="getOutcomeMix",
)
async def get_outcome_mix(
    principal: Principal,
    state: State,
    interaction: FromQuery[Kind] = "call",
    project: FilterId = None,
    agent: FilterId = None,
    team: FilterId = None,
    channel: FilterId = None,
    direction: FromQuery[Literal["inbound", "outbound"] | None] = None,
    termination_reason: Annotated[str | None, QueryParameter(max_length=128)] = None,
    date_from: FromQuery[date | None] = None,
    date_to: FromQuery[date | None] = None,
    group_by: FromQuery[GroupBy] = "outcome",
    as_defined: FromQuery[AsDefined] = "then",
    format: FromQuery[Literal["json", "csv"]] = "json",
) -> Response[OutcomeMixReport]:
    principal.require(Action.READ_REPORTS)
    if date_from is not None and date_to is not None and date_from > date_to:
        raise BadRequest(f"date_from {date_from} is after date_to {date_to}")
    runtime = runtime_of(state)
    keys = runtime.shard_keys(principal.tenant_id)

    def read() -> tuple[list[MixRow], int]:
        # the position first: the rows hold at least every event up to it
        position = runtime.client.hget(keys.tracking, OUTCOME_MIX)
        rows = outcome_mix(
            runtime.client,
            keys,
            principal.tenant_id,
            interaction=interaction,
            project=project,
            agent=agent,
            team=team,
            channel=channel,
            direction=direction,
            termination_reason=termination_reason,
            date_from=date_from,
            date_to=date_to,
            group_by=group_by,
            as_defined=as_defined,
        )
        return rows, int(position) if position is not None else 0  # type: ignore[arg-type]

    rows, position = await in_thread(read)
    if format == "csv":
        # documented as text/csv next to the JSON (services/api/openapi.py); typed as the JSON
        # answer so the document keeps the report's schema
        return cast(Response[OutcomeMixReport], Response(mix_csv(rows), media_type="text/csv; charset=utf-8"))
    report = OutcomeMixReport(
        interaction=interaction,
        group_by=group_by,
        as_defined=as_defined,
        total=sum(r.count for r in rows),
        position=position,
        rows=rows,
    )
    return Response(report)
