"""Contact-list effects of an outcome (PRODUCT.md §1 "Contact handling", §3): pure.

A selection (or a correction, taken as a new selection) whose outcome has contact handling
records, on the contact's dialing record, one event per effect, each naming the selection
as its ``source``:

- ``reset_attempts`` -> ``AttemptsReset``; ``remove_from_list`` -> ``ContactRemovedFromList``;
  ``move_to_list`` -> ``ContactMovedToList``; ``roll_to_project`` -> ``RolledToProject``;
- ``final`` -> ``ContactFinalised`` (also on the company's record for a whole company);
- ``list_reload`` -> ``ListReloadRequested`` on the project's list's record;
- ``do_not_call`` -> ``DoNotCallAdded``: this number (the interaction's, else the contact's
  first; with none known, all numbers -- a suppression errs toward not calling) or all;
- ``recall`` -> ``RecallScheduled``; ``waiting_period`` -> ``WaitingPeriodStarted``.

Times follow from the selection's ``occurred_at``, never from when a worker got to it, so
the same selection always decides the same events. Calls link to the contact's open recall
(``count_attempt``, ``called_back``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from events.codec import DomainEvent
from events.types import (
    AttemptsReset,
    AttemptsResetReverted,
    CallAttemptCounted,
    ContactFinalised,
    ContactHandling,
    ContactListChangeReverted,
    ContactMovedToList,
    ContactRemovedFromList,
    DialingEvent,
    DialingUndo,
    DoNotCallAdded,
    DoNotCallLifted,
    FinalLifted,
    ListReloadRequested,
    OutcomeCorrected,
    OutcomeSelected,
    ProjectSettings,
    RecallCalledBack,
    RecallCancelled,
    RecallHandedOver,
    RecallScheduled,
    RecallSpec,
    RolledToProject,
    RollToProjectReverted,
    WaitingPeriodLifted,
    WaitingPeriodSpec,
    WaitingPeriodStarted,
)
from services.dialing import ContactListRecord, DialingRecord, current_list, project_dialing
from services.interactions import Call, Contact, aggregate_id
from services.rules import Context, make
from services.rules.dialability import next_callable


def source_of(event: DomainEvent) -> str:
    """ "<aggregate id>/<version>": what a correction looks for to undo a selection's effects."""
    return f"{event.originator_id}/{event.originator_version}"


def dialing_id(tenant_id: str, contact_id: str) -> UUID:
    return aggregate_id(tenant_id, "dialing", contact_id)


def company_id(tenant_id: str, company: str) -> UUID:
    return aggregate_id(tenant_id, "company-dialing", company)


def list_id(tenant_id: str, contact_list: str) -> UUID:
    return aggregate_id(tenant_id, "contact-list", contact_list)


@dataclass(frozen=True)
class Target:
    """The contact a selection acts on, and its records as they stand now."""

    contact_id: str
    project: ProjectSettings
    contact: Contact | None = None
    #: the number the interaction used
    number: str | None = None
    #: the agent of the interaction (owner of an agent-owned recall)
    agent_id: str | None = None
    record: DialingRecord | None = None
    company: DialingRecord | None = None
    contact_list: ContactListRecord | None = None

    @property
    def time_zone(self) -> str:
        return self.contact.time_zone if self.contact else "UTC"

    def current_list(self) -> str | None:
        return current_list(self.contact, self.record)


class _Writer:
    """Numbers the events of one decision per aggregate, from the versions it read."""

    def __init__(self, ctx: Context, common: dict[str, Any], versions: dict[UUID, int]) -> None:
        self.ctx, self.common, self.versions = ctx, common, versions
        self.events: list[DomainEvent] = []

    def add(self, cls: type[DomainEvent], aggregate: UUID, **fields: Any) -> None:
        version = self.versions.get(aggregate, 0) + 1
        self.versions[aggregate] = version
        self.events.append(make(cls, aggregate, version, self.ctx, **self.common, **fields))


def _writer_for(cause: OutcomeSelected | OutcomeCorrected, target: Target, ctx: Context) -> _Writer:
    """A writer of the events ``cause`` decides for the target's records, each naming it."""
    records = (target.record, target.company, target.contact_list)
    common = {
        "contact_id": target.contact_id,
        "source": source_of(cause),
        "project_id": cause.project_id,
        "occurred_at": cause.occurred_at,
    }
    return _Writer(ctx, common, {record.id: record.version for record in records if record is not None})


def recall_due(occurred_at: datetime, spec: RecallSpec, project: ProjectSettings, time_zone: str) -> datetime:
    """Whole days of the delay keep the contact's local time of day (a call-back "tomorrow"
    across a DST change is at the same local hour); the rest is elapsed time. A due time
    outside the project's calling hours moves to the next window."""
    days, rest = divmod(spec.delay_seconds, 86_400)
    local = occurred_at.astimezone(ZoneInfo(time_zone))
    due = (local + timedelta(days=days)).astimezone(occurred_at.tzinfo) + timedelta(seconds=rest)
    return next_callable(due, project.calling_hours, time_zone) or due


def _waiting(out: _Writer, record_id: UUID, selection: OutcomeSelected | OutcomeCorrected, target: Target,
             spec: WaitingPeriodSpec) -> None:  # fmt: skip
    previous = target.record.waiting.get(selection.project_id) if target.record else None
    repeated = previous is not None and previous.outcome_code == selection.outcome_code
    seconds = spec.repeat_seconds if repeated and spec.repeat_seconds else spec.seconds
    until = selection.occurred_at + timedelta(seconds=seconds)
    out.add(WaitingPeriodStarted, record_id, outcome_code=selection.outcome_code, until=until, repeated=repeated)


def _recall(out: _Writer, record_id: UUID, selection: OutcomeSelected | OutcomeCorrected, target: Target,
            spec: RecallSpec) -> None:  # fmt: skip
    due = recall_due(selection.occurred_at, spec, target.project, target.time_zone)
    owner = target.agent_id if spec.owner == "agent" else None
    handover = due + timedelta(seconds=spec.handover_after_seconds) if owner and spec.handover_after_seconds else None
    out.add(
        RecallScheduled,
        record_id,
        due_at=due,
        time_zone=target.time_zone,
        max_attempts=spec.max_attempts,
        agent_may_change_time=spec.agent_may_change_time,
        owner_agent=owner,
        handover_at=handover,
    )


def _lists(out: _Writer, record_id: UUID, handling: ContactHandling, target: Target) -> None:
    if handling.remove_from_list:
        out.add(ContactRemovedFromList, record_id, contact_list=target.project.contact_list or target.current_list())
    if handling.move_to_list is not None:
        out.add(ContactMovedToList, record_id, from_list=target.current_list(), to_list=handling.move_to_list)
    if handling.list_reload and (reloaded := target.project.contact_list or target.current_list()) is not None:
        out.add(ListReloadRequested, list_id(out.ctx.tenant_id, reloaded), contact_list=reloaded)


def plan(selection: OutcomeSelected | OutcomeCorrected, target: Target, ctx: Context) -> list[DomainEvent]:
    """The contact-list events the selection's outcome asks for (none without handling)."""
    handling = selection.definition.contact_handling
    record_id = dialing_id(ctx.tenant_id, target.contact_id)
    out = _writer_for(selection, target, ctx)
    if handling.reset_attempts:
        out.add(AttemptsReset, record_id)
    _lists(out, record_id, handling, target)
    if handling.roll_to_project is not None:
        out.add(RolledToProject, record_id, to_project=handling.roll_to_project)
    if (final := handling.final) is not None:
        company = target.contact.company_id if target.contact and final.whole_company else None
        out.add(ContactFinalised, record_id, scope=final.scope, company_id=company)
        if company is not None:
            out.add(ContactFinalised, company_id(ctx.tenant_id, company), scope=final.scope, company_id=company)
    if (dnc := handling.do_not_call) is not None:
        number = target.number or (target.contact.numbers[0] if target.contact and target.contact.numbers else None)
        every = dnc.numbers == "all" or number is None
        out.add(DoNotCallAdded, record_id, number=None if every else number, all_numbers=every, scope=dnc.scope)
    if handling.recall is not None:
        _recall(out, record_id, selection, target, handling.recall)
    if handling.waiting_period is not None:
        _waiting(out, record_id, selection, target, handling.waiting_period)
    return out.events


# -- calls to the contact -----------------------------------------------------------------------


def _call_fields(call: Call, source: str, at: datetime) -> dict[str, Any]:
    assert call.contact_id is not None
    return {"contact_id": call.contact_id, "source": source, "project_id": call.project_id, "occurred_at": at}


def count_attempt(call: Call, record: DialingRecord | None, source: str, ctx: Context) -> list[DomainEvent]:
    """An outbound call to a known contact is one more attempt in its project, and counts
    toward the project's open recall when there is one."""
    if call.direction != "outbound" or call.contact_id is None:
        return []
    project = call.project_id
    attempts = (record.attempts.get(project, 0) if record else 0) + 1
    recall = record.recalls.get(project) if record else None
    linked = recall if recall is not None and recall.open else None
    out = _Writer(ctx, _call_fields(call, source, call.started_at), {record.id: record.version} if record else {})
    out.add(
        CallAttemptCounted,
        dialing_id(ctx.tenant_id, call.contact_id),
        call_id=call.call_id,
        attempts=attempts,
        recall=linked.source if linked else None,
        recall_attempts=len(linked.calls) + 1 if linked else 0,
    )
    return out.events


def called_back(call: Call, record: DialingRecord | None, source: str, ctx: Context) -> list[DomainEvent]:
    """A person answered a call linked to the open recall: the recall is done."""
    recall = record.recalls.get(call.project_id) if record else None
    if record is None or recall is None or recall.called_back_by is not None or call.call_id not in recall.calls:
        return []
    assert call.answered_at is not None
    out = _Writer(ctx, _call_fields(call, source, call.answered_at), {record.id: record.version})
    out.add(RecallCalledBack, record.id, call_id=call.call_id, recall=recall.source)
    return out.events


# -- corrections: undo what the corrected selection caused (PRODUCT.md §2) -----------------------

#: what moves the contact between lists; the last of them says where it is
_LIST_CHANGES = (ContactMovedToList, ContactRemovedFromList, ContactListChangeReverted)


def _last(history: Sequence[DialingEvent], kind: type | tuple[type, ...], project_id: str | None = None) -> int:
    """The index of the last event of that kind (in that project), -1 when none."""
    for index in range(len(history) - 1, -1, -1):
        event = history[index]
        if isinstance(event, kind) and (project_id is None or event.project_id == project_id):
            return index
    return -1


def _before(history: Sequence[DialingEvent], index: int) -> DialingRecord | None:
    """The record as it was just before ``history[index]``."""
    return project_dialing(None, history[:index])


def _undo_lists(out: _Writer, record_id: UUID, mine: list[tuple[int, DialingEvent]], history: Sequence[DialingEvent],
                asks: ContactHandling) -> None:  # fmt: skip
    """Back to the list the contact was on before the selection's moves -- only while the
    contact is still where they put it (a later move is someone else's decision)."""
    changes = [(i, e) for i, e in mine if isinstance(e, ContactMovedToList | ContactRemovedFromList)]
    if not changes or _last(history, _LIST_CHANGES) != changes[-1][0]:
        return
    last = changes[-1][1]
    if (isinstance(last, ContactMovedToList) and asks.move_to_list == last.to_list) or (
        isinstance(last, ContactRemovedFromList) and asks.remove_from_list and asks.move_to_list is None
    ):
        return  # the new outcome asks for the same place: nothing to undo
    before = _before(history, changes[0][0])
    as_saved = before is None or not before.list_changed
    restored = None if as_saved or before is None else before.contact_list
    out.add(ContactListChangeReverted, record_id, undoes=source_of(last), replaced=last.source,
            contact_list=restored, as_saved=as_saved)  # fmt: skip


def _undo_one(out: _Writer, record: DialingRecord, index: int, event: DialingEvent, history: Sequence[DialingEvent],
              correction: OutcomeCorrected) -> None:  # fmt: skip
    """Undo one effect of the corrected selection when it still holds and the new outcome
    does not ask for it again (a new recall or waiting period replaces the old one anyway)."""
    asks, project, replaced = correction.definition.contact_handling, event.project_id, event.source
    undo = {"undoes": source_of(event), "replaced": replaced}
    if isinstance(event, RecallScheduled):
        recall = record.recalls.get(project)
        if asks.recall is None and recall is not None and recall.source == replaced and recall.open:
            out.add(RecallCancelled, record.id, **undo)
    elif isinstance(event, WaitingPeriodStarted):
        period = record.waiting.get(project)
        if asks.waiting_period is None and period is not None and period.source == replaced:
            out.add(WaitingPeriodLifted, record.id, **undo)
    elif isinstance(event, RolledToProject):
        still = record.rolled.get(project) == event.to_project and _last(history, RolledToProject, project) == index
        if asks.roll_to_project != event.to_project and still:
            out.add(RollToProjectReverted, record.id, to_project=event.to_project, **undo)
    elif isinstance(event, AttemptsReset):
        # the attempts before the reset count again, with those made since; a later reset
        # stands (it is another selection's)
        if not asks.reset_attempts and _last(history, AttemptsReset, project) == index:
            before = _before(history, index)
            earlier = before.attempts.get(project, 0) if before else 0
            out.add(AttemptsResetReverted, record.id, attempts=earlier + record.attempts.get(project, 0), **undo)
    elif not correction.lift_suppressions:
        return  # a suppression stands unless the correction explicitly lifts it
    elif isinstance(event, ContactFinalised) and any(f.source == replaced for f in record.finals):
        out.add(FinalLifted, record.id, **undo)
    elif isinstance(event, DoNotCallAdded) and any(d.source == replaced for d in record.do_not_call):
        out.add(DoNotCallLifted, record.id, **undo)


def undo_replaced(
    correction: OutcomeCorrected,
    replaced: str,
    target: Target,
    history: Sequence[DialingEvent],
    company_history: Sequence[DialingEvent],
    ctx: Context,
) -> list[DomainEvent]:
    """What the corrected selection (``replaced``, its source) caused on the contact's record
    -- and on its company's, for a whole-company final -- undone, each event naming the
    correction as its source and the undone event. Suppressions (do-not-call, finals) are
    lifted only when the correction says so (``lift_suppressions``), and only the entries
    that selection created. ``history`` / ``company_history``: the records' events, in order."""
    record, company = target.record, target.company
    out = _writer_for(correction, target, ctx)
    if record is not None:
        # an undo is never itself undone: correcting a correction leaves the first undo standing
        mine = [(i, e) for i, e in enumerate(history) if e.source == replaced and not isinstance(e, DialingUndo)]
        _undo_lists(out, record.id, mine, history, correction.definition.contact_handling)
        for index, event in mine:
            _undo_one(out, record, index, event, history, correction)
    if company is not None and correction.lift_suppressions:
        still = any(f.source == replaced for f in company.finals)
        for event in company_history:
            if still and isinstance(event, ContactFinalised) and event.source == replaced:
                out.add(FinalLifted, company.id, undoes=source_of(event), replaced=replaced)
    return out.events


def redrive(
    correction: OutcomeCorrected,
    replaced: str | None,
    target: Target,
    history: Sequence[DialingEvent],
    company_history: Sequence[DialingEvent],
    ctx: Context,
) -> list[DomainEvent]:
    """A correction's contact-list events, for one save: first what the corrected selection
    caused undone, then what the new outcome asks for, decided on the record as the undo
    leaves it (a move then starts from the list the contact is back on; a lifted waiting
    period does not make the new one a repeat)."""
    undone = undo_replaced(correction, replaced, target, history, company_history, ctx) if replaced else []
    own = [e for e in undone if target.record is not None and e.originator_id == target.record.id]
    theirs = [e for e in undone if target.company is not None and e.originator_id == target.company.id]
    after = replace(target, record=project_dialing(target.record, own), company=project_dialing(target.company, theirs))
    return undone + plan(correction, after, ctx)


# -- the recall hand-over (a durable timer set with the recall) ------------------------------------


def hand_over(record: DialingRecord | None, contact_id: str, recall_source: str, ctx: Context) -> list[DomainEvent]:
    """The hand-over time of the recall ``recall_source`` came: anyone's now, recorded once --
    unless it is no longer the open, agent-owned recall (called back, attempts used up,
    cancelled by a correction or replaced by a later recall)."""
    found = [(p, r) for p, r in (record.recalls.items() if record else ()) if r.source == recall_source]
    if record is None or not found:
        return []
    project, recall = found[0]
    if not recall.open or recall.handed_over or recall.owner_agent is None or recall.handover_at is None:
        return []
    at = recall.handover_at
    common = {"contact_id": contact_id, "source": recall_source, "project_id": project, "occurred_at": at}
    out = _Writer(ctx, common, {record.id: record.version})
    out.add(RecallHandedOver, record.id, recall=recall_source, from_agent=recall.owner_agent)
    return out.events
