"""Report endpoints (PRODUCT.md §4): thin adapters over the queries next to their views."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal, cast

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.params import FromQuery, QueryParameter

from events.keys import ShardKeys
from projections.history import BadCursor, HistoryFilter, HistoryRow, Sample, history, sample
from projections.interactions import NAME as INTERACTIONS
from projections.interactions import NO_OUTCOME
from projections.outcome_counts import outcome_counts
from projections.outcome_mix import NAME as OUTCOME_MIX
from projections.outcome_mix import AsDefined, GroupBy, Kind, MixRow, outcome_mix
from projections.rates import Period, Rates, rates
from services.api.common import Principal, in_thread, runtime_of
from services.errors import BadRequest, NotFound
from services.permissions import Action
from services.runtime import Runtime

#: a filter value: the id shape every id has (a longer or odder one names nothing)
FilterId = Annotated[str | None, QueryParameter(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@+-]+$")]
QUOTA_COLUMNS = ("outcome_code", "quota", "selections", "reached_at")
CSV_COLUMNS = ("key", "count", "percentage", "agent_selections", "system_selections", "corrected", "revenue")


class QuotaStatus(msgspec.Struct, frozen=True, kw_only=True):
    outcome_code: str
    quota: int
    #: selections so far in the project (all time: a quota is not per period)
    selections: int
    reached_at: datetime | None


def quota_status(runtime: Runtime, tenant: str, project_id: str) -> list[QuotaStatus]:
    """The project's quotas (PRODUCT.md §1): each outcome's quota, its selections and when
    ``QuotaReached`` was recorded; 404 for an unknown project."""
    ledger = runtime.ledger(tenant)
    project = ledger.catalogue(tenant).projects.get(project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found")
    counts = outcome_counts(runtime.client, runtime.view_keys(tenant), tenant, project_id)
    return [
        QuotaStatus(
            outcome_code=code,
            quota=quota,
            selections=counts.get(code, 0),
            reached_at=ledger.quota_reached(tenant, project_id, code),
        )
        for code, quota in sorted(project.settings.quotas.items())
    ]


def quotas_csv(quotas: list[QuotaStatus]) -> str:
    """The quota status as CSV (``reached_at`` empty while not reached)."""
    return _csv(QUOTA_COLUMNS, ([q.outcome_code, q.quota, q.selections, _blank(q.reached_at)] for q in quotas))


class OutcomeMixReport(msgspec.Struct, frozen=True, kw_only=True):
    interaction: Kind
    group_by: GroupBy
    as_defined: AsDefined
    #: interactions in the report
    total: int
    #: the view's tracking position: the report holds every event up to this log position
    position: int
    rows: list[MixRow]
    #: with a project filter: its quota status per outcome (PRODUCT.md §1 quotas)
    quotas: list[QuotaStatus] | None = None


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
    summary="Outcome mix: interactions per outcome (or category, agent, team, contact list, project, day, week)",
    description=(
        "Counts and percentages of calls or conversations, each counted once under the outcome that stands "
        "(a conversation's closing one, as corrected; '-' for none), dated by the tenant-local day of its start; "
        "agent, team and contact list as of the selection. Grouped by outcome, every defined outcome has a row. "
        "With a project: its quota status per outcome. `format=csv` gives the same rows as CSV (`table=quotas`: "
        "the quota status)."
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
    contact_list: FilterId = None,
    date_from: FromQuery[date | None] = None,
    date_to: FromQuery[date | None] = None,
    group_by: FromQuery[GroupBy] = "outcome",
    as_defined: FromQuery[AsDefined] = "then",
    format: FromQuery[Literal["json", "csv"]] = "json",
    table: FromQuery[Literal["rows", "quotas"]] = "rows",
) -> Response[OutcomeMixReport]:
    principal.require(Action.READ_REPORTS)
    if date_from is not None and date_to is not None and date_from > date_to:
        raise BadRequest(f"date_from {date_from} is after date_to {date_to}")
    runtime = runtime_of(state)
    keys = await in_thread(runtime.view_keys, principal.tenant_id)

    def read() -> tuple[list[MixRow], int]:
        # the position first: the rows hold at least every event up to it
        position = runtime.client.hget(keys.tracking, keys.view_position(OUTCOME_MIX))
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
            contact_list=contact_list,
            group_by=group_by,
            as_defined=as_defined,
        )
        return rows, int(position) if position is not None else 0  # type: ignore[arg-type]

    rows, position = await in_thread(read)
    quotas = await in_thread(quota_status, runtime, principal.tenant_id, project) if project else None
    if format == "csv" and table == "quotas":
        if quotas is None:
            raise BadRequest("table=quotas needs a project")
        return cast(Response[OutcomeMixReport], _as_csv(quotas_csv(quotas)))
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
        quotas=quotas,
    )
    return Response(report)


# -- rates, history, sampling (projections/interactions.py and the queries next to it) -----------------

#: a required id (an outcome code, a project)
RequiredId = Annotated[str, QueryParameter(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@+-]+$")]
RATE_COLUMNS = tuple(Rates.__struct_fields__)
HISTORY_COLUMNS = (
    "kind",
    "id",
    "project",
    "channel",
    "direction",
    "contact_id",
    "agent",
    "outcome",
    "started_at",
    "answered_at",
    "finished_at",
    "duration_seconds",
    "telephony_status",
    "termination_reason",
    "outcomes",
    "corrections",
    "references",
)


def _position(runtime: Runtime, keys: ShardKeys) -> int:
    # read before the rows: the rows hold at least every event up to it
    raw = runtime.client.hget(keys.tracking, keys.view_position(INTERACTIONS))
    return int(raw) if isinstance(raw, bytes) else 0


def _csv(header: Sequence[str], lines: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return out.getvalue()


def _blank(value: object) -> object:
    return "" if value is None else value


def history_line(r: HistoryRow) -> list[object]:
    """A history row flat: outcomes "CODE" (late ones "CODE(late)") and corrections
    "FROM>TO" joined with "|", references "kind:reference"."""
    flat: dict[str, object] = {
        "outcomes": "|".join(o.code + ("(late)" if o.late else "") for o in r.outcomes),
        "corrections": "|".join(f"{c.previous_code or NO_OUTCOME}>{c.outcome_code}" for c in r.corrections),
        "references": "|".join(f"{x.kind}:{x.reference}" for x in r.references),
    }
    return [_blank(flat[c] if c in flat else getattr(r, c)) for c in HISTORY_COLUMNS]


def _as_csv(text: str) -> Response[Any]:
    return Response(text, media_type="text/csv; charset=utf-8")


def _check_range(date_from: date | None, date_to: date | None) -> None:
    if date_from is not None and date_to is not None and date_from > date_to:
        raise BadRequest(f"date_from {date_from} is after date_to {date_to}")


class RatesReport(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    #: the tenant-local days of the period, first and last
    first_day: date
    last_day: date
    as_defined: AsDefined
    position: int
    rates: Rates


@get(
    "/v1/reports/rates",
    summary="Rates of a project for a day or the 30 days ending on a date",
    description=(
        "Live-answered calls, contact, presentation, success and abandoned rates, revenue, average handle and "
        "wrap-up time and first-call resolution (PRODUCT.md §4; docs/reports.md), with their numerators and "
        "denominators; a rate is null when its denominator is 0. Give `day` or `rolling_30_days_ending`. "
        "`format=csv` gives one line."
    ),
    operation_id="getRates",
)
async def get_rates(
    principal: Principal,
    state: State,
    project_id: RequiredId,
    day: FromQuery[date | None] = None,
    rolling_30_days_ending: FromQuery[date | None] = None,
    as_defined: FromQuery[AsDefined] = "then",
    format: FromQuery[Literal["json", "csv"]] = "json",
) -> Response[RatesReport]:
    principal.require(Action.READ_REPORTS)
    if (day is None) == (rolling_30_days_ending is None):
        raise BadRequest("give either day or rolling_30_days_ending")
    runtime = runtime_of(state)
    keys = await in_thread(runtime.view_keys, principal.tenant_id)
    period = Period.of(day, rolling_30_days_ending)

    def read() -> RatesReport:
        position = _position(runtime, keys)
        found = rates(
            runtime.client,
            keys,
            principal.tenant_id,
            project=project_id,
            day=day,
            rolling_30_days_ending=rolling_30_days_ending,
            as_defined=as_defined,
        )
        return RatesReport(
            project_id=project_id,
            first_day=period.first,
            last_day=period.last,
            as_defined=as_defined,
            position=position,
            rates=found,
        )

    report = await in_thread(read)
    if format == "csv":
        line = [project_id, period.first, period.last, *(_blank(getattr(report.rates, c)) for c in RATE_COLUMNS)]
        text = _csv(("project_id", "first_day", "last_day", *RATE_COLUMNS), [line])
        return cast(Response[RatesReport], _as_csv(text))
    return Response(report)


class HistoryReport(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    rows: list[HistoryRow]
    #: pass as `cursor` for the next page; null on the last page
    next_cursor: str | None


@get(
    "/v1/reports/history",
    summary="History table: every call and conversation with its outcomes and corrections",
    description=(
        "Oldest start first, one row per interaction: the outcome that stands (or '-'), every selection "
        "(kept-active, late), corrections with both values, agent, times, duration, references. Pages follow "
        "`next_cursor` (opaque; for CSV in the `X-Next-Cursor` header). Filters: project, agent, outcome "
        "(any selection shows it; '-' for none), tenant-local date range, interaction kind."
    ),
    operation_id="getHistory",
)
async def get_history(
    principal: Principal,
    state: State,
    project: FilterId = None,
    agent: FilterId = None,
    outcome: FilterId = None,
    interaction: FromQuery[Kind | None] = None,
    date_from: FromQuery[date | None] = None,
    date_to: FromQuery[date | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, QueryParameter(min_length=1, max_length=512)] = None,
    format: FromQuery[Literal["json", "csv"]] = "json",
) -> Response[HistoryReport]:
    principal.require(Action.READ_REPORTS)
    _check_range(date_from, date_to)
    runtime = runtime_of(state)
    keys = await in_thread(runtime.view_keys, principal.tenant_id)
    f = HistoryFilter(project=project, agent=agent, outcome=outcome, kind=interaction)

    def read() -> HistoryReport:
        position = _position(runtime, keys)
        page = history(
            runtime.client,
            keys,
            principal.tenant_id,
            f=f,
            date_from=date_from,
            date_to=date_to,
            limit=limit,
            cursor=cursor,
        )
        return HistoryReport(position=position, rows=page.rows, next_cursor=page.next_cursor)

    try:
        report = await in_thread(read)
    except BadCursor as error:
        raise BadRequest(str(error)) from error
    if format == "csv":
        response = _as_csv(_csv(HISTORY_COLUMNS, (history_line(r) for r in report.rows)))
        if report.next_cursor is not None:
            response.headers["X-Next-Cursor"] = report.next_cursor
        return cast(Response[HistoryReport], response)
    return Response(report)


class SampleReport(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    date_from: date
    date_to: date
    sample: Sample


@get(
    "/v1/reports/sample",
    summary="QA sample: N random interactions with an outcome in a period, reproducible by seed",
    description=(
        "Draws `n` of the interactions that show `outcome_code` (any selection, as corrected) and started in the "
        "tenant-local date range, with their recording/transcript references. The same `seed` over the same "
        "period gives the same sample; without one a seed is chosen and returned."
    ),
    operation_id="getSample",
)
async def get_sample(
    principal: Principal,
    state: State,
    outcome_code: RequiredId,
    date_from: date,
    date_to: date,
    n: Annotated[int, QueryParameter(ge=1, le=1000)] = 10,
    seed: Annotated[int | None, QueryParameter(ge=0, le=2**63 - 1)] = None,
    format: FromQuery[Literal["json", "csv"]] = "json",
) -> Response[SampleReport]:
    principal.require(Action.READ_REPORTS)
    _check_range(date_from, date_to)
    runtime = runtime_of(state)
    keys = await in_thread(runtime.view_keys, principal.tenant_id)
    chosen_seed = seed if seed is not None else secrets.randbits(63)

    def read() -> SampleReport:
        position = _position(runtime, keys)
        found = sample(
            runtime.client,
            keys,
            principal.tenant_id,
            outcome_code=outcome_code,
            date_from=date_from,
            date_to=date_to,
            n=n,
            seed=chosen_seed,
        )
        return SampleReport(position=position, date_from=date_from, date_to=date_to, sample=found)

    report = await in_thread(read)
    if format == "csv":
        return cast(Response[SampleReport], _as_csv(_csv(HISTORY_COLUMNS, map(history_line, report.sample.rows))))
    return Response(report)
