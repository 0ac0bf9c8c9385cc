"""Report endpoints over time and definitions (PRODUCT.md §4): each outcome's share over time,
alerts, the mix against an earlier definition version, follow-up SLA, quota status -- thin
adapters over the queries next to their views; JSON or ``format=csv``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Literal, TypeVar, cast

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.params import FromQuery, QueryParameter

from events.codec import DomainEvent
from events.keys import ShardKeys
from events.types import AlertRule, OutcomeFlags
from projections.alerts import NAME as ALERTS
from projections.alerts import AlertRow, alerts
from projections.follow_up_sla import NAME as FOLLOW_UP_SLA
from projections.follow_up_sla import SlaGroupBy, SlaRow, follow_up_sla
from projections.outcome_mix import NAME as OUTCOME_MIX
from projections.outcome_mix import AsDefined, Kind, MixFilter
from projections.trends import Period, TrendBy, TrendRow, outcome_trend
from services.api.common import Principal, in_thread, runtime_of
from services.api.report_routes import FilterId, RequiredId, _as_csv, _blank, _check_range, _csv
from services.catalogue import Catalogue
from services.definition_versions import Comparison, catalogue_at, compare, definitions_of
from services.errors import NotFound
from services.interactions import aggregate_id
from services.permissions import Action
from services.runtime import Runtime

Format = Literal["json", "csv"]
R = TypeVar("R")


def _position(runtime: Runtime, keys: ShardKeys, view: str) -> int:
    # read before the rows: the rows hold at least every event up to it
    raw = runtime.client.hget(keys.tracking, keys.view_position(view))
    return int(raw) if isinstance(raw, bytes) else 0


def _rows_csv(columns: tuple[str, ...], rows: Sequence[msgspec.Struct]) -> str:
    return _csv(columns, ([_blank(getattr(r, c)) for c in columns] for r in rows))


def _columns(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(cls.__struct_fields__)


def _answer(report: R, rows: Sequence[msgspec.Struct], row_type: type[msgspec.Struct], format: Format) -> Response[R]:
    """The report as JSON, or its rows as CSV (a column per field of the row type)."""
    if format == "csv":
        return cast(Response[R], _as_csv(_rows_csv(_columns(row_type), rows)))
    return Response(report)


# -- trend ---------------------------------------------------------------------------------------------


class TrendReport(msgspec.Struct, frozen=True, kw_only=True):
    interaction: Kind
    period: Period
    by: TrendBy
    as_defined: AsDefined
    position: int
    rows: list[TrendRow]


@get(
    "/v1/reports/trend",
    summary="Each outcome's (or category's) share of interactions per day or ISO week",
    description=(
        "Interactions counted as in the outcome mix, in the tenant-local day or ISO week of their start; a "
        "period with interactions lists every defined outcome. The outcome-mix filters apply. `format=csv` "
        "gives the rows as CSV."
    ),
    operation_id="getOutcomeTrend",
)
async def get_trend(
    principal: Principal,
    state: State,
    interaction: FromQuery[Kind] = "call",
    project: FilterId = None,
    agent: FilterId = None,
    team: FilterId = None,
    channel: FilterId = None,
    contact_list: FilterId = None,
    date_from: FromQuery[date | None] = None,
    date_to: FromQuery[date | None] = None,
    period: FromQuery[Period] = "day",
    by: FromQuery[TrendBy] = "outcome",
    as_defined: FromQuery[AsDefined] = "then",
    format: FromQuery[Format] = "json",
) -> Response[TrendReport]:
    principal.require(Action.READ_REPORTS)
    _check_range(date_from, date_to)
    runtime = runtime_of(state)
    tenant = principal.tenant_id
    f = MixFilter(
        interaction, project, agent, team, channel, date_from=date_from, date_to=date_to, contact_list=contact_list
    )

    def read() -> TrendReport:
        keys = runtime.view_keys(tenant)  # one generation per query
        position = _position(runtime, keys, OUTCOME_MIX)
        rows = outcome_trend(runtime.client, keys, tenant, f, period=period, by=by, as_defined=as_defined)
        return TrendReport(
            interaction=interaction, period=period, by=by, as_defined=as_defined, position=position, rows=rows
        )

    report = await in_thread(read)
    return _answer(report, report.rows, TrendRow, format)


# -- alerts --------------------------------------------------------------------------------------------


class AlertsReport(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    rows: list[AlertRow]


@get(
    "/v1/reports/alerts",
    summary="Outcome-mix alerts: rare negative outcomes rising, positive without success, off target",
    description=(
        "One row per OutcomeAlertRaised event (rules and thresholds: docs/reports.md), whose ISO week overlaps "
        "the tenant-local date range. `format=csv` gives the rows as CSV."
    ),
    operation_id="getAlerts",
)
async def get_alerts(
    principal: Principal,
    state: State,
    project: FilterId = None,
    rule: FromQuery[AlertRule | None] = None,
    date_from: FromQuery[date | None] = None,
    date_to: FromQuery[date | None] = None,
    format: FromQuery[Format] = "json",
) -> Response[AlertsReport]:
    principal.require(Action.READ_REPORTS)
    _check_range(date_from, date_to)
    runtime = runtime_of(state)
    tenant = principal.tenant_id

    def read() -> AlertsReport:
        keys = runtime.view_keys(tenant)  # one generation per query
        position = _position(runtime, keys, ALERTS)
        rows = alerts(
            runtime.client,
            keys,
            tenant,
            project=project,
            rule=rule,
            date_from=date_from,
            date_to=date_to,
        )
        return AlertsReport(position=position, rows=rows)

    report = await in_thread(read)
    return _answer(report, report.rows, AlertRow, format)


# -- definition versions -------------------------------------------------------------------------------


class DefinitionComparisonReport(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    interaction: Kind
    #: the chosen earlier outcome-set version, and the project's version now
    version: int
    current_version: int
    position: int
    comparison: Comparison


def _catalogue_then(runtime: Runtime, tenant: str, project_id: str, version: int) -> tuple[Catalogue, Catalogue]:
    ledger = runtime.ledger(tenant)
    now = ledger.catalogue(tenant)
    if project_id not in now.projects:
        raise NotFound(f"project {project_id!r} not found")
    events = (e for e in ledger.events.get(aggregate_id(tenant, "catalogue")) if isinstance(e, DomainEvent))
    then = catalogue_at(events, project_id, version)
    if then is None:
        raise NotFound(f"project {project_id!r} has no outcome-set version {version}")
    return now, then


def _flag_line(flags: OutcomeFlags | None) -> str:
    if flags is None:
        return ""
    return "|".join(f"{name}={getattr(flags, name)}" for name in OutcomeFlags.__struct_fields__)


@get(
    "/v1/reports/definition-comparison",
    summary="The project's mix read with today's outcome definitions and with an earlier outcome-set version",
    description=(
        "Categories (rolled up the outcome tree) and flag counts (contact, presentation, success, first-call "
        "resolution, positive, negative) of the same interactions under both definition sets, and per outcome "
        "what changed. `format=csv` gives the categories; `table=flags` or `table=outcomes` the other tables."
    ),
    operation_id="getDefinitionComparison",
)
async def get_definition_comparison(
    principal: Principal,
    state: State,
    project_id: RequiredId,
    version: Annotated[int, QueryParameter(ge=1, le=1_000_000_000)],
    interaction: FromQuery[Kind] = "call",
    date_from: FromQuery[date | None] = None,
    date_to: FromQuery[date | None] = None,
    format: FromQuery[Format] = "json",
    table: FromQuery[Literal["categories", "flags", "outcomes"]] = "categories",
) -> Response[DefinitionComparisonReport]:
    principal.require(Action.READ_REPORTS)
    _check_range(date_from, date_to)
    runtime = runtime_of(state)
    tenant = principal.tenant_id

    def read() -> DefinitionComparisonReport:
        now, then = _catalogue_then(runtime, tenant, project_id, version)
        keys = runtime.view_keys(tenant)  # one generation per query
        position = _position(runtime, keys, OUTCOME_MIX)
        found = compare(
            runtime.client,
            keys,
            tenant,
            project=project_id,
            now=definitions_of(now),
            then=definitions_of(then),
            interaction=interaction,
            date_from=date_from,
            date_to=date_to,
        )
        return DefinitionComparisonReport(
            project_id=project_id,
            interaction=interaction,
            version=version,
            current_version=now.projects[project_id].set_version,
            position=position,
            comparison=found,
        )

    report = await in_thread(read)
    if format == "csv":
        c = report.comparison
        if table == "outcomes":
            columns = ("code", "count", "category_now", "category_then", "flags_now", "flags_then", "changed")
            lines = (
                [o.code, o.count, _blank(o.category_now), _blank(o.category_then), _flag_line(o.flags_now),
                 _flag_line(o.flags_then), o.changed]
                for o in c.outcomes
            )  # fmt: skip
            text = _csv(columns, lines)
        elif table == "flags":
            text = _rows_csv(("flag", "count_now", "count_then"), list(c.flags))
        else:
            text = _rows_csv(
                ("category", "count_now", "percentage_now", "count_then", "percentage_then"), list(c.categories)
            )
        return cast(Response[DefinitionComparisonReport], _as_csv(text))
    return Response(report)


# -- follow-up SLA -------------------------------------------------------------------------------------


class FollowUpSlaReport(msgspec.Struct, frozen=True, kw_only=True):
    group_by: SlaGroupBy
    #: the moment "overdue" is judged at
    as_of: datetime
    position: int
    rows: list[SlaRow]


@get(
    "/v1/reports/follow-ups",
    summary="Follow-up SLA: tasks open, overdue and completed in time, per owner or team",
    description=(
        "Follow-up tasks whose due time falls in the tenant-local date range, grouped by their latest owner or "
        "owning team (docs/reports.md). `format=csv` gives the rows as CSV."
    ),
    operation_id="getFollowUpSla",
)
async def get_follow_up_sla(
    principal: Principal,
    state: State,
    group_by: FromQuery[SlaGroupBy] = "owner",
    project: FilterId = None,
    date_from: FromQuery[date | None] = None,
    date_to: FromQuery[date | None] = None,
    format: FromQuery[Format] = "json",
) -> Response[FollowUpSlaReport]:
    principal.require(Action.READ_REPORTS)
    _check_range(date_from, date_to)
    runtime = runtime_of(state)
    tenant = principal.tenant_id
    as_of = datetime.now(UTC)

    def read() -> FollowUpSlaReport:
        time_zone = runtime.ledger(tenant).catalogue(tenant).time_zone
        keys = runtime.view_keys(tenant)  # one generation per query
        position = _position(runtime, keys, FOLLOW_UP_SLA)
        rows = follow_up_sla(
            runtime.client,
            keys,
            tenant,
            time_zone=time_zone,
            as_of=as_of,
            group_by=group_by,
            project=project,
            date_from=date_from,
            date_to=date_to,
        )
        return FollowUpSlaReport(group_by=group_by, as_of=as_of, position=position, rows=rows)

    report = await in_thread(read)
    return _answer(report, report.rows, SlaRow, format)
