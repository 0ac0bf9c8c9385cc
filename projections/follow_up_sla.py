"""Follow-up SLA (PRODUCT.md §4 "follow-up SLA: open and overdue tasks per owner and team"):
one record per follow-up task, from its events (``FollowUp*``, services/follow_ups.py).

Readings: a task's **owner** is its latest owner -- ``agent:<id>`` when it was reassigned to
an agent, else ``team:<id>``, else ``role:<name>`` (``-`` for none); its **team** is the owning
team (``-`` when the task names none, e.g. reassigned to an agent alone). A task is in a
period by the tenant-local day of its due time. At the query's moment (``as_of``) a task is
**overdue** when it is open and its due time has passed; **completed late** when it was
completed after its due time (completion is when we recorded it). ``sla_met`` = tasks
completed in time ÷ (tasks completed + tasks overdue); null when both are 0.

Keys (prefix ``ShardKeys.view("follow-up-sla")``): ``f:<tenant>`` hash, task id -> JSON record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Literal, cast
from zoneinfo import ZoneInfo

import msgspec
import redis

from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.types import (
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpOpened,
    FollowUpOverdue,
    FollowUpReassigned,
)
from projections.base import Changes, View

NAME = "follow-up-sla"
SlaGroupBy = Literal["owner", "team"]
TaskEvent = FollowUpOpened | FollowUpReassigned | FollowUpCompleted | FollowUpOverdue | FollowUpCancelled
#: the event types the view reads (the others are not even decoded)
TOPICS = frozenset(
    t.type_name for t in (FollowUpOpened, FollowUpReassigned, FollowUpCompleted, FollowUpOverdue, FollowUpCancelled)
)


class Task(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    outcome_code: str
    due_at: datetime
    owner_team: str | None = None
    owner_role: str | None = None
    owner_agent: str | None = None
    status: Literal["open", "completed", "cancelled"] = "open"
    completed_at: datetime | None = None
    #: the due-time timer fired while it was open
    went_overdue: bool = False

    @property
    def owner(self) -> str:
        if self.owner_agent:
            return f"agent:{self.owner_agent}"
        if self.owner_team:
            return f"team:{self.owner_team}"
        return f"role:{self.owner_role}" if self.owner_role else "-"


_task = msgspec.json.Decoder(Task)


def _key(keys: ShardKeys, tenant: str) -> str:
    return f"{keys.view(NAME)}f:{tenant}"


def fold_task(task: Task | None, event: DomainEvent) -> Task | None:
    """One task after one of its events (pure)."""
    if isinstance(event, FollowUpOpened):
        return Task(
            project_id=event.project_id,
            outcome_code=event.outcome_code,
            due_at=event.due_at,
            owner_team=event.owner_team,
            owner_role=event.owner_role,
        )
    if task is None:
        return None  # an event of a task the view never saw opened: cannot happen in the log
    if isinstance(event, FollowUpReassigned):
        return msgspec.structs.replace(
            task, owner_team=event.owner_team, owner_role=event.owner_role, owner_agent=event.owner_agent
        )
    if isinstance(event, FollowUpCompleted):
        return msgspec.structs.replace(task, status="completed", completed_at=event.recorded_at)
    if isinstance(event, FollowUpOverdue):
        return msgspec.structs.replace(task, went_overdue=True)
    if isinstance(event, FollowUpCancelled):
        return msgspec.structs.replace(task, status="cancelled")
    return task


class FollowUpSlaView(View):
    def __init__(
        self, client: redis.Redis, keys: ShardKeys, mapper: StructMapper, batch_size: int = 1000, *, follow: bool = True
    ) -> None:
        super().__init__(NAME, None, client, keys, mapper, batch_size, follow=follow, topics=TOPICS)

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        mine = [e for e in events if isinstance(e, TaskEvent)]
        if not mine:
            return Changes()
        wanted = sorted({(e.tenant_id, str(e.originator_id)) for e in mine})
        self.settle()  # a commit still running may write what is read (View.settle)
        pipe = self.client.pipeline(transaction=False)
        for tenant, ident in wanted:
            pipe.hget(_key(self.keys, tenant), ident)
        # read after the position: the script's position check makes it consistent
        tasks: dict[tuple[str, str], Task | None] = {
            w: _task.decode(raw) if raw else None for w, raw in zip(wanted, pipe.execute(), strict=True)
        }
        for e in mine:
            at = (e.tenant_id, str(e.originator_id))
            tasks[at] = fold_task(tasks[at], e)
        out = Changes()
        for (tenant, ident), task in tasks.items():
            if task is not None:
                out.assignments.append((_key(self.keys, tenant), ident, msgspec.json.encode(task).decode()))
        return out


class SlaRow(msgspec.Struct, frozen=True, kw_only=True):
    #: the owner ("agent:<id>", "team:<id>", "role:<name>", "-") or the team ("-": none)
    key: str
    tasks: int
    open: int
    completed: int
    cancelled: int
    #: open and past due at ``as_of``
    overdue: int
    completed_in_time: int
    completed_late: int
    #: completed in time ÷ (completed + overdue); null when both are 0
    sla_met: float | None


def sla_rows(tasks: Sequence[Task], *, group_by: SlaGroupBy, as_of: datetime) -> list[SlaRow]:
    """Pure: the rows of the given tasks, by owner or team, sorted by key."""
    groups: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        groups[t.owner if group_by == "owner" else t.owner_team or "-"].append(t)
    rows = []
    for key, group in sorted(groups.items()):
        completed = [t for t in group if t.status == "completed"]
        late = sum(1 for t in completed if t.completed_at is not None and t.completed_at > t.due_at)
        overdue = sum(1 for t in group if t.status == "open" and t.due_at < as_of)
        rows.append(
            SlaRow(
                key=key,
                tasks=len(group),
                open=sum(1 for t in group if t.status == "open"),
                completed=len(completed),
                cancelled=sum(1 for t in group if t.status == "cancelled"),
                overdue=overdue,
                completed_in_time=len(completed) - late,
                completed_late=late,
                sla_met=(len(completed) - late) / (len(completed) + overdue) if completed or overdue else None,
            )
        )
    return rows


def follow_up_sla(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    *,
    time_zone: str,
    as_of: datetime,
    group_by: SlaGroupBy = "owner",
    project: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[SlaRow]:
    """The tenant's tasks due in the local date range (and project), by owner or team."""
    zone = ZoneInfo(time_zone)
    chosen = []
    for raw in cast(dict[bytes, bytes], client.hgetall(_key(keys, tenant))).values():
        t = _task.decode(raw)
        due = t.due_at.astimezone(zone).date()
        if (
            (project is None or t.project_id == project)
            and (date_from is None or due >= date_from)
            and (date_to is None or due <= date_to)
        ):
            chosen.append(t)
    return sla_rows(chosen, group_by=group_by, as_of=as_of)
