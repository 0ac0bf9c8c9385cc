"""May this number be called now in this project? (PRODUCT.md §3 "Contact lists"): pure.

The answer weighs, in this order (the first that holds is the reason given):

0. ``erased`` -- the contact was erased, or the number is one an erased contact had
   (docs/erasure.md): never called again, whatever record it comes with;
1. ``do_not_call`` -- a do-not-call entry for the number (or all the contact's numbers), in
   this project or tenant-wide;
2. ``opted_out`` -- the contact opted out of calls (``voice`` or ``all``);
3. ``final`` / ``company_final`` -- finalised by any project, or by this one since its list was
   last reloaded; for a business contact possibly its whole company;
4. automatic calls only: ``rolled_to_project`` (the record went to another project) and
   ``not_on_list`` (moved or removed from the project's list);
5. ``recall_owned`` -- an open recall owned by an agent until its hand-over: the dialer does
   not place it, and another agent may not call it manually;
6. automatic calls only: ``waiting_period``, ``recall_pending`` (not due yet);
7. ``outside_calling_hours`` -- the project's calling hours in the contact's time zone.

``until`` is when the call becomes possible: the latest of the time-bound reasons that hold,
moved into the next calling-hours window; None when a reason lasts until someone lifts it.
Waiting periods and pending recalls restrict the dialer only: an agent may call by hand.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from events.types import CallingHours, ProjectSettings
from services.dialing import DialingRecord, DialingView

Mode = Literal["automatic", "manual"]
#: calls are blocked outright by these channels of opt-out
CALL_OPT_OUTS = frozenset({"voice", "all"})


class Dialability(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    #: why not (see the module's list); None when allowed
    reason: str | None = None
    #: when it becomes possible; None when allowed, or when the reason has no end
    until: datetime | None = None


# -- calling hours --------------------------------------------------------------------------------


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _window(day: date, hours: CallingHours, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The window opening on ``day`` (local): an end at or before the start is the next day's."""
    start = datetime.combine(day, _clock(hours.start), zone)
    end_day = day if _clock(hours.end) > _clock(hours.start) else day + timedelta(days=1)
    return start, datetime.combine(end_day, _clock(hours.end), zone)


def next_callable(moment: datetime, hours: CallingHours | None, time_zone: str) -> datetime | None:
    """``moment`` when it is inside calling hours, else when the next window opens (local wall
    clock, so a DST change moves it in UTC); None when the hours have no weekday at all."""
    if hours is None:
        return moment
    zone = ZoneInfo(time_zone)
    today = moment.astimezone(zone).date()
    for offset in range(-1, 8):  # yesterday: a window that runs past midnight
        day = today + timedelta(days=offset)
        if day.weekday() not in hours.weekdays:
            continue
        start, end = _window(day, hours, zone)
        if moment < end:
            return max(moment, start)
    return None


# -- the answer ---------------------------------------------------------------------------------


def _finals(record: DialingRecord | None, project_id: str, reloaded_at: datetime | None) -> bool:
    if record is None:
        return False
    for final in record.finals:
        if final.scope == "all":
            return True
        if final.project_id == project_id and (reloaded_at is None or final.at > reloaded_at):
            return True
    return False


def _permanent(view: DialingView, project_id: str, number: str | None, mode: Mode) -> str | None:
    """The first reason that lasts until someone lifts it."""
    if view.erased:
        return "erased"
    record = view.record
    if record is not None and any(d.covers(project_id, number) for d in record.do_not_call):
        return "do_not_call"
    if view.contact is not None and CALL_OPT_OUTS & set(view.contact.opted_out):
        return "opted_out"
    if _finals(record, project_id, view.list_reloaded_at):
        return "final"
    if _finals(view.company, project_id, view.list_reloaded_at):
        return "company_final"
    if mode == "automatic" and record is not None and project_id in record.rolled:
        return "rolled_to_project"
    return None


def _timed(
    view: DialingView, project_id: str, now: datetime, mode: Mode, agent_id: str | None
) -> list[tuple[str, datetime | None]]:
    """The reasons with an end (None: an end only someone else's action brings), in order."""
    found: list[tuple[str, datetime | None]] = []
    record = view.record
    recall = record.recalls.get(project_id) if record else None
    if recall is not None and recall.open:
        owner = recall.owner_at(now)
        if owner is not None and (mode == "automatic" or (agent_id is not None and agent_id != owner)):
            found.append(("recall_owned", recall.handover_at))
    if mode == "automatic" and record is not None:
        period = record.waiting.get(project_id)
        if period is not None and now < period.until:
            found.append(("waiting_period", period.until))
        if recall is not None and recall.open and now < recall.due_at:
            found.append(("recall_pending", recall.due_at))
    return found


def dialability(
    view: DialingView,
    project_id: str,
    project: ProjectSettings,
    number: str | None,
    now: datetime,
    mode: Mode = "automatic",
    *,
    agent_id: str | None = None,
) -> Dialability:
    """May ``number`` of the contact be called at ``now`` in the project, by the dialer
    (``automatic``) or by an agent (``manual``, as ``agent_id`` when given)?"""
    if (reason := _permanent(view, project_id, number, mode)) is not None:
        return Dialability(allowed=False, reason=reason)
    if mode == "automatic" and project.contact_list is not None:
        current = view.effective_list()
        if view.record is not None and view.record.list_changed and current != project.contact_list:
            return Dialability(allowed=False, reason="not_on_list")
    timed = _timed(view, project_id, now, mode, agent_id)
    if any(until is None for _, until in timed):
        return Dialability(allowed=False, reason=timed[0][0])
    earliest = max([now, *(until for _, until in timed if until is not None)])
    opens = next_callable(earliest, project.calling_hours, view.time_zone)
    if timed:
        return Dialability(allowed=False, reason=timed[0][0], until=opens)
    if opens is None or opens > now:
        return Dialability(allowed=False, reason="outside_calling_hours", until=opens)
    return Dialability(allowed=True)
