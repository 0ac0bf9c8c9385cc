"""The application: each command loads, decides (services.rules), saves -- nothing else.

One ``Ledger`` serves one shard (one eventsourcing application log); tenants map to
shards in the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Mapper, Tracking

from events.codec import DomainEvent, StructMapper, SubjectKeys, now
from events.store import (
    AlreadyRecorded,
    RedisApplicationRecorder,
    RedisFactory,
    VersionConflict,
)
from events.store import IdempotencyKeyReused as StoredKeyReused
from events.types import (
    CallAnswered,
    CallStarted,
    ContactHandling,
    DialingEvent,
    Interaction,
    OutcomeCorrected,
    OutcomeDefinition,
    OutcomeSelected,
    ProjectSettings,
)
from services import dialing as dialing_state
from services.catalogue import ActiveOutcome, Catalogue, active_set, agent_outcomes, project_catalogue
from services.errors import Conflict, DomainError, IdempotencyKeyReused, NotFound, OutcomeSetChanged
from services.follow_ups import FollowUp, project_follow_up
from services.idempotency import Idempotency, Receipt
from services.interactions import (
    Call,
    Contact,
    Conversation,
    Selection,
    aggregate_id,
    project_call,
    project_contact,
    project_conversation,
    source_of,
)
from services.rules import Context
from services.rules import config as config_rules
from services.rules import contact_lists as list_rules
from services.rules import follow_ups as follow_up_rules
from services.rules import interactions as rules
from services.rules import qa as qa_rules
from services.rules import sms as sms_rules
from services.rules.dialability import Dialability, Mode, dialability
from services.rules.interactions import Choice
from services.sms import Sms, project_sms
from services.suppressions import Suppressions
from services.timers import timers_for

S = TypeVar("S")
T = TypeVar("T")

#: decisions taken again when a configuration change elsewhere raced the save
MAX_ATTEMPTS = 3


class OutcomeSet(msgspec.Struct, frozen=True, kw_only=True):
    """What a platform needs to build the agent's outcome picker."""

    project_id: str
    version: int
    #: False when the project closes without asking (auto-close)
    prompt: bool
    outcomes: list[ActiveOutcome]


class SmsPlan(NamedTuple):
    """What ``Ledger.sms_plan`` decided, and read on the way: enough for the check just
    before sending (``workers.actions.send_or_refuse``) without reading it again."""

    events: list[DomainEvent]
    #: the interaction's contact as loaded (None: it names none)
    contact: Contact | None
    #: whether the tenant has suppressed numbers at all (a suppression secret)
    suppressing: bool


def outcome_set_of(catalogue: Catalogue, project_id: str) -> OutcomeSet:
    """The project's picker from a catalogue state (now, or as of a past moment)."""
    project = catalogue.projects.get(project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found")
    active = sorted(active_set(catalogue, project_id).values(), key=lambda o: o.definition.code)
    prompt = not project.settings.auto_close_without_outcome
    return OutcomeSet(project_id=project_id, version=project.set_version, prompt=prompt, outcomes=active)


class Ledger(Application[UUID]):
    name = "OutcomeLedger"
    env = {
        "PERSISTENCE_MODULE": "events.store",
        # states are immutable: cache them, and fast-forward from the log on every get
        "AGGREGATE_CACHE_MAXSIZE": "20000",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }

    def construct_mapper(self) -> Mapper[UUID]:
        assert isinstance(self.factory, RedisFactory)
        self.subject_keys = SubjectKeys(self.factory.client, self.factory.connection.keys.base_prefix)
        self.suppressions = Suppressions(self.factory.client, self.factory.connection.keys)
        return StructMapper(keys=self.subject_keys)

    # -- plumbing ------------------------------------------------------------------------------
    def _get(self, id_: UUID, projector: Callable[[Any, Iterable[Any]], S | None], what: str) -> S:
        try:
            return self.repository.get(id_, projector_func=projector)  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            raise NotFound(f"{what} not found") from None

    def _cached(self, id_: UUID) -> Any:
        """The aggregate's cached state, or None."""
        try:
            return self.repository.cache.get(id_) if self.repository.cache else None
        except KeyError:
            return None

    @contextmanager
    def _reading(
        self, ids: Sequence[UUID], subjects: Sequence[tuple[str, str]] = (), secrets: Sequence[str] = ()
    ) -> Iterator[None]:
        """One Redis round trip for the aggregates a command loads: each read from the
        version this process has cached (all of it when none is); with the keys of the
        data subjects (tenant, subject) that decoding them will ask for, and the
        suppression secrets of the tenants named, unless cached."""
        assert isinstance(self.recorder, RedisApplicationRecorder)
        wanted = []
        for id_ in ids:
            cached = self._cached(id_)
            wanted.append((id_, cached.version if cached is not None else None))
        missing = [s for s in subjects if not self.subject_keys.cached(*s)]
        unknown = [t for t in secrets if not self.suppressions.known(t)]
        keys: list[str | tuple[str, str]] = [self.subject_keys.name(*s) for s in missing]
        keys += [self.suppressions.secret_field(t) for t in unknown]
        with self.recorder.reading(wanted, keys) as found:
            for (tenant, subject), key in zip(missing, found[: len(missing)], strict=True):
                self.subject_keys.prime(tenant, subject, key)
            for tenant, secret in zip(unknown, found[len(missing) :], strict=True):
                self.suppressions.prime(tenant, secret)
            yield

    def _repeat(self, ctx: Context, idempotency: Idempotency | None) -> Receipt | None:
        """The first answer, when this request was already recorded under its key."""
        if idempotency is None:
            return None
        assert isinstance(self.recorder, RedisApplicationRecorder)
        try:
            repeat = self.recorder.recorded_result(ctx.tenant_id, idempotency.key, idempotency.digest)
        except StoredKeyReused:
            raise IdempotencyKeyReused(
                f"idempotency key {idempotency.key!r} was already used with a different request"
            ) from None
        return msgspec.json.decode(repeat.receipt, type=Receipt) if repeat else None

    def _run(
        self,
        ctx: Context,
        idempotency: Idempotency | None,
        kind: str,
        external_id: str,
        decide: Callable[[], tuple[Sequence[DomainEvent], Sequence[tuple[UUID, int]]]],
        version_of: UUID | None = None,
    ) -> Receipt:
        """Answer a repeat; else decide, then save atomically with the preconditions.

        A save that finds the tenant's configuration moved since the decision is decided
        again on the new state -- unless what moved is the outcome set the decision was
        checked against: then the write fails with a conflict (PRODUCT.md §2).
        """
        if (repeat := self._repeat(ctx, idempotency)) is not None:
            return repeat
        for _attempt in range(MAX_ATTEMPTS):
            try:
                events, expect = decide()
            except DomainError:
                # a twin of this request (same key, same body) may have committed since we
                # looked: its result is the answer, not the rule it now trips over
                if (repeat := self._repeat(ctx, idempotency)) is not None:
                    return repeat
                raise
            try:
                return self._save(ctx, idempotency, kind, external_id, events, expect, version_of)
            except VersionConflict:
                if self._outcome_set_moved(ctx.tenant_id, events):
                    break
        raise OutcomeSetChanged("the project's outcome set changed while the request was checked; reload it and retry")

    def _outcome_set_moved(self, tenant_id: str, events: Sequence[DomainEvent]) -> bool:
        checked = {
            (e.project_id, e.outcome_set_version) for e in events if isinstance(e, OutcomeSelected | OutcomeCorrected)
        }
        projects = self.catalogue(tenant_id).projects
        return any(p not in projects or projects[p].set_version != v for p, v in checked)

    def _save(
        self,
        ctx: Context,
        idempotency: Idempotency | None,
        kind: str,
        external_id: str,
        events: Sequence[DomainEvent],
        expect: Sequence[tuple[UUID, int]],
        version_of: UUID | None,
    ) -> Receipt:
        own = [e for e in events if version_of is None or e.originator_id == version_of]
        version = own[-1].originator_version if own else 0
        hidden_in = tuple(sorted({p for e in events for p in getattr(e, "hidden_in", ())}))
        receipt = Receipt(
            kind=kind,
            id=external_id,
            version=version,
            events=tuple(type(e).type_name for e in events),
            hidden_in=hidden_in,
        )
        if not events:
            return receipt
        kwargs: dict[str, Any] = {"tenant": ctx.tenant_id}
        if idempotency is not None:
            kwargs |= {
                "idempotency_key": idempotency.key,
                "idempotency_digest": idempotency.digest,
                "receipt": msgspec.json.encode(receipt).decode(),
            }
        if expect:
            kwargs["expect"] = expect
        if timers := timers_for(events):
            # durable with the events that set them: written by the same script
            kwargs["timers"] = [(t.member(), t.due_ms) for t in timers]
        try:
            self.save(*events, **kwargs)
        except AlreadyRecorded as first:  # a concurrent twin of this request won the race
            return msgspec.json.decode(first.receipt, type=Receipt)
        except StoredKeyReused:
            raise IdempotencyKeyReused(
                f"idempotency key {idempotency.key if idempotency else ''!r} was already used with a different request"
            ) from None
        except VersionConflict:
            raise
        except IntegrityError:
            raise Conflict(f"{kind} {external_id!r} was changed concurrently; reload and retry") from None
        return receipt

    # -- loading ---------------------------------------------------------------------------------
    def catalogue(self, tenant_id: str) -> Catalogue:
        return self._get(aggregate_id(tenant_id, "catalogue"), project_catalogue, "tenant")

    def call(self, tenant_id: str, call_id: str) -> Call:
        return self._get(aggregate_id(tenant_id, "call", call_id), project_call, f"call {call_id!r}")

    def conversation(self, tenant_id: str, conversation_id: str) -> Conversation:
        return self._get(
            aggregate_id(tenant_id, "conversation", conversation_id),
            project_conversation,
            f"conversation {conversation_id!r}",
        )

    def contact(self, tenant_id: str, contact_id: str) -> Contact | None:
        try:
            return self.repository.get(aggregate_id(tenant_id, "contact", contact_id), projector_func=project_contact)
        except AggregateNotFoundError:
            return None

    def _conversation_of(self, tenant_id: str, call: Call) -> Conversation | None:
        return self.conversation(tenant_id, call.conversation_id) if call.conversation_id else None

    # -- queries -----------------------------------------------------------------------------------
    def outcome_set(self, tenant_id: str, project_id: str) -> OutcomeSet:
        return outcome_set_of(self.catalogue(tenant_id), project_id)

    def search_outcomes(self, tenant_id: str, text: str = "", project_id: str | None = None) -> list[OutcomeDefinition]:
        """Outcomes whose code or description (or name) contains the text, case-insensitively."""
        catalogue = self.catalogue(tenant_id)
        if project_id is not None and project_id not in catalogue.projects:
            raise NotFound(f"project {project_id!r} not found")
        found = [g.definition for g in catalogue.outcomes.values()]
        if project_id is not None:
            found += [p.definition for p in catalogue.projects[project_id].outcomes.values()]
        needle = text.casefold()
        return sorted(
            (
                d
                for d in found
                if needle in d.code.casefold() or needle in d.description.casefold() or needle in d.name.casefold()
            ),
            key=lambda d: d.code,
        )

    # -- configuration -------------------------------------------------------------------------------
    def create_tenant(self, tenant_id: str, name: str, time_zone: str, actor: str = "system") -> Receipt:
        ctx = Context(tenant_id, actor, now())
        cid = aggregate_id(tenant_id, "catalogue")
        return self._run(
            ctx, None, "tenant", tenant_id, lambda: (config_rules.create_tenant(cid, ctx, name, time_zone), ())
        )

    def configure(
        self,
        ctx: Context,
        kind: str,
        external_id: str,
        decide: Callable[[Catalogue], Sequence[DomainEvent]],
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Any configuration change: a rule from ``services.rules.config`` on the catalogue."""
        return self._run(ctx, idempotency, kind, external_id, lambda: (decide(self.catalogue(ctx.tenant_id)), ()))

    def define_outcome(
        self,
        ctx: Context,
        definition: OutcomeDefinition,
        *,
        project_id: str | None = None,
        availability: Literal["all", "assigned"] = "all",
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self.configure(
            ctx,
            "outcome",
            definition.code,
            lambda c: config_rules.define_outcome(c, ctx, definition, project_id=project_id, availability=availability),
            idempotency,
        )

    def create_project(
        self,
        ctx: Context,
        project_id: str,
        settings: ProjectSettings,
        hidden: Sequence[str] = (),
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self.configure(
            ctx,
            "project",
            project_id,
            lambda c: config_rules.create_project(c, ctx, project_id, settings, hidden),
            idempotency,
        )

    # -- interaction facts ------------------------------------------------------------------------------
    def _expect(self, catalogue: Catalogue) -> list[tuple[UUID, int]]:
        # the outcome set must not move between the check and the write
        return [(catalogue.id, catalogue.version)]

    def start_call(
        self,
        ctx: Context,
        *,
        call_id: str,
        project_id: str,
        direction: str,
        occurred_at: datetime,
        conversation_id: str | None = None,
        agent_id: str | None = None,
        contact_id: str | None = None,
        contact_number: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        def decide() -> tuple[Sequence[DomainEvent], Sequence[tuple[UUID, int]]]:
            catalogue = self.catalogue(ctx.tenant_id)
            conversation = self.conversation(ctx.tenant_id, conversation_id) if conversation_id else None
            try:
                self.call(ctx.tenant_id, call_id)
            except NotFound:
                pass
            else:
                raise Conflict(f"call {call_id!r} was already started")
            return rules.start_call(
                catalogue,
                ctx,
                call_id=call_id,
                project_id=project_id,
                direction=direction,
                occurred_at=occurred_at,
                conversation=conversation,
                agent_id=agent_id,
                contact_id=contact_id,
                contact_number=contact_number,
            ), ()

        return self._run(ctx, idempotency, "call", call_id, decide, aggregate_id(ctx.tenant_id, "call", call_id))

    def call_fact(
        self,
        ctx: Context,
        call_id: str,
        decide: Callable[[Catalogue, Call, Conversation | None], Sequence[DomainEvent]],
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """A fact or selection on a call: load the catalogue, the call and its conversation."""
        call_aggregate = aggregate_id(ctx.tenant_id, "call", call_id)

        def run() -> tuple[Sequence[DomainEvent], Sequence[tuple[UUID, int]]]:
            cached = self._cached(call_aggregate)
            ahead = [aggregate_id(ctx.tenant_id, "catalogue"), call_aggregate]
            if isinstance(cached, Call) and cached.conversation_id:
                ahead.append(aggregate_id(ctx.tenant_id, "conversation", cached.conversation_id))
            with self._reading(ahead):
                catalogue = self.catalogue(ctx.tenant_id)
                call = self.call(ctx.tenant_id, call_id)
                conversation = self._conversation_of(ctx.tenant_id, call)
            return decide(catalogue, call, conversation), self._expect(catalogue)

        return self._run(ctx, idempotency, "call", call_id, run, call_aggregate)

    def conversation_fact(
        self,
        ctx: Context,
        conversation_id: str,
        decide: Callable[[Catalogue, Conversation], Sequence[DomainEvent]],
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        conv_aggregate = aggregate_id(ctx.tenant_id, "conversation", conversation_id)

        def run() -> tuple[Sequence[DomainEvent], Sequence[tuple[UUID, int]]]:
            with self._reading([aggregate_id(ctx.tenant_id, "catalogue"), conv_aggregate]):
                catalogue = self.catalogue(ctx.tenant_id)
                conversation = self.conversation(ctx.tenant_id, conversation_id)
            return decide(catalogue, conversation), self._expect(catalogue)

        return self._run(ctx, idempotency, "conversation", conversation_id, run, conv_aggregate)

    def record_verdict(
        self,
        ctx: Context,
        interaction: Interaction,
        external_id: str,
        *,
        verdict: qa_rules.Verdict,
        should_have_been: str | None = None,
        note: str = "",
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """A QA reviewer's verdict on the outcome a call or conversation shows."""

        def decide(catalogue: Catalogue, state: Call | Conversation) -> Sequence[DomainEvent]:
            return qa_rules.record_verdict(
                catalogue, state, ctx, verdict=verdict, should_have_been=should_have_been, note=note
            )

        if interaction == "call":
            return self.call_fact(ctx, external_id, lambda cat, call, _conv: decide(cat, call), idempotency)
        return self.conversation_fact(ctx, external_id, decide, idempotency)

    def end_call(
        self,
        ctx: Context,
        *,
        call_id: str,
        occurred_at: datetime,
        termination_reason: str = "",
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.end_call(
                cat, call, ctx, occurred_at=occurred_at, termination_reason=termination_reason, conversation=conv
            ),
            idempotency,
        )

    def select_call_outcome(
        self, ctx: Context, *, call_id: str, choice: Choice, idempotency: Idempotency | None = None
    ) -> Receipt:
        return self.call_fact(
            ctx,
            call_id,
            lambda cat, call, conv: rules.select_outcome(cat, call, ctx, choice, conversation=conv),
            idempotency,
        )

    def start_conversation(
        self,
        ctx: Context,
        *,
        conversation_id: str,
        project_id: str,
        channel: str,
        occurred_at: datetime,
        contact_id: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        def decide() -> tuple[Sequence[DomainEvent], Sequence[tuple[UUID, int]]]:
            catalogue = self.catalogue(ctx.tenant_id)
            try:
                self.conversation(ctx.tenant_id, conversation_id)
            except NotFound:
                pass
            else:
                raise Conflict(f"conversation {conversation_id!r} was already started")
            return rules.start_conversation(
                catalogue,
                ctx,
                conversation_id=conversation_id,
                project_id=project_id,
                channel=channel,
                occurred_at=occurred_at,
                contact_id=contact_id,
            ), ()

        return self._run(
            ctx,
            idempotency,
            "conversation",
            conversation_id,
            decide,
            aggregate_id(ctx.tenant_id, "conversation", conversation_id),
        )

    def save_contact(
        self,
        ctx: Context,
        *,
        contact_id: str,
        name: str | None,
        numbers: tuple[str, ...],
        time_zone: str,
        company_id: str | None,
        contact_list: str | None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self._run(
            ctx,
            idempotency,
            "contact",
            contact_id,
            lambda: (
                rules.save_contact(
                    self.contact(ctx.tenant_id, contact_id),
                    ctx,
                    contact_id=contact_id,
                    name=name,
                    numbers=numbers,
                    time_zone=time_zone,
                    company_id=company_id,
                    contact_list=contact_list,
                ),
                (),
            ),
            aggregate_id(ctx.tenant_id, "contact", contact_id),
        )

    def opt_out(
        self,
        ctx: Context,
        *,
        contact_id: str,
        channel: str,
        occurred_at: datetime,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self._run(
            ctx,
            idempotency,
            "contact",
            contact_id,
            lambda: (
                rules.opt_out(
                    self.contact(ctx.tenant_id, contact_id),
                    ctx,
                    contact_id=contact_id,
                    channel=channel,
                    occurred_at=occurred_at,
                ),
                (),
            ),
            aggregate_id(ctx.tenant_id, "contact", contact_id),
        )

    def erase_contact(self, ctx: Context, *, contact_id: str, suppressed: tuple[str, ...]) -> Receipt:
        """Record the erasure (services/erasure.py does the rest); once, however often asked."""
        return self._run(
            ctx,
            None,
            "contact",
            contact_id,
            lambda: (
                rules.erase_contact(
                    self.contact(ctx.tenant_id, contact_id), ctx, contact_id=contact_id, suppressed=suppressed
                ),
                (),
            ),
            aggregate_id(ctx.tenant_id, "contact", contact_id),
        )

    def erased(
        self, tenant_id: str, contact: Contact | None, numbers: Sequence[str | None], *, suppressing: bool = True
    ) -> bool:
        """Never to be called or texted: the contact was erased, or a number is an erased
        contact's (``suppressing=False``: the tenant was just read to have no suppressed number)."""
        if contact is not None and contact.erased:
            return True
        return suppressing and self.suppressions.any_suppressed(tenant_id, numbers)

    def record_quota_reached(self, tenant_id: str, project_id: str, outcome_code: str, selections: int) -> bool:
        """True when this call recorded it; False when not reached, or recorded before."""
        ctx = Context(tenant_id, "system", now())
        events = rules.quota_reached(
            self.catalogue(tenant_id), ctx, project_id=project_id, outcome_code=outcome_code, selections=selections
        )
        if not events:
            return False
        try:
            self.save(*events, tenant=tenant_id)
        except IntegrityError:
            return False  # reached once already: version 1 exists
        return True

    # -- follow-up actions (workers/actions.py) -------------------------------------------------------
    def save_tracked(self, tenant_id: str | None, events: Sequence[DomainEvent], tracking: Tracking) -> None:
        """Events a worker decided, with the log position that caused them, in one write:
        a redelivered or twin position raises IntegrityError and writes nothing."""
        kwargs: dict[str, Any] = {"tenant": tenant_id} if tenant_id else {}
        if timers := timers_for(events):  # durable with the events that set them
            kwargs["timers"] = [(t.member(), t.due_ms) for t in timers]
        processing = ProcessingEvent[UUID](tracking=tracking)
        # events, not aggregates: added as they are (``collect_events`` asks of each whether it
        # is an event through a runtime Protocol check, tens of microseconds per event)
        processing.events.extend(events)
        processing.saved_kwargs.update(kwargs)
        self._record(processing)

    def follow_up_requests(self, selection: OutcomeSelected | OutcomeCorrected) -> list[DomainEvent]:
        """The follow-up task the selection's outcome asks for, and for a correction the
        replaced selection's open task cancelled (decided, not saved)."""
        ctx = Context(selection.tenant_id, "system", now())
        cancelled: list[DomainEvent] = []
        if isinstance(selection, OutcomeCorrected) and (replaced := self._replaced(selection)) is not None:
            task = self._follow_up_of(selection.tenant_id, replaced.source)
            cancelled = follow_up_rules.cancel_replaced(task, selection, ctx)
        return cancelled + follow_up_rules.open_follow_up(selection, ctx)

    def follow_up(self, tenant_id: str, follow_up_id: UUID) -> FollowUp:
        return self._owned(tenant_id, follow_up_id, project_follow_up, FollowUp, "follow-up")

    def _follow_up_of(self, tenant_id: str, source: str) -> FollowUp | None:
        try:
            return self.follow_up(tenant_id, aggregate_id(tenant_id, "follow-up", source))
        except NotFound:
            return None

    def change_follow_up(
        self,
        ctx: Context,
        follow_up_id: str,
        decide: Callable[[FollowUp], Sequence[DomainEvent]],
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Complete or reassign a follow-up task (a rule of ``services.rules.follow_ups``)."""
        return self._change(ctx, "follow-up", follow_up_id, self.follow_up, decide, idempotency)

    def follow_up_due(self, ctx: Context, follow_up_id: UUID, idempotency: Idempotency) -> Receipt:
        """The durable scheduler's timer: overdue if still open."""
        return self.change_follow_up(ctx, str(follow_up_id), lambda task: follow_up_rules.due(task, ctx), idempotency)

    def follow_ups_of_interaction(self, tenant_id: str, interaction: Interaction, external_id: str) -> list[FollowUp]:
        """Every follow-up task the interaction's selections and corrections opened, in order."""
        return self._caused_by(tenant_id, interaction, external_id, self._follow_up_of)

    def sms_requests(self, selection: OutcomeSelected | OutcomeCorrected) -> list[DomainEvent]:
        """The SMS the selection's outcome asks for (decided, not saved)."""
        return self.sms_plan(selection).events

    def sms_plan(self, selection: OutcomeSelected | OutcomeCorrected) -> SmsPlan:
        """The SMS the selection's outcome asks for (decided, not saved), with what the
        erasure check before sending needs, read along (``SmsPlan``)."""
        tenant_id = selection.tenant_id
        ctx = Context(tenant_id, "system", now())
        catalogue_id = aggregate_id(tenant_id, "catalogue")
        # the interaction's own data subject, whose key opens its number when it has no
        # contact (events/types.py CallStarted.data_subject), and the tenant's suppression
        # secret: read in the same round trip
        subject = (tenant_id, f"{selection.interaction}:{selection.interaction_id}")
        with self._reading([selection.originator_id, catalogue_id], [subject], [tenant_id]):
            catalogue = self.catalogue(tenant_id)
            call = self.call(tenant_id, selection.interaction_id) if selection.interaction == "call" else None
            conversation = None if call else self.conversation(tenant_id, selection.interaction_id)
        suppressing = self.suppressions.known(tenant_id)  # no secret yet: no number suppressed
        contact_id = call.contact_id if call else conversation.contact_id if conversation else None
        contact = self.contact(tenant_id, contact_id) if contact_id else None
        cancelled: list[DomainEvent] = []
        if isinstance(selection, OutcomeCorrected):
            replaced = self._replaced(selection)
            sms = self._sms_of(tenant_id, replaced.source) if replaced else None
            cancelled = sms_rules.cancel_replaced(replaced, sms, ctx)
        events = cancelled + sms_rules.request_sms(selection, catalogue, ctx, call=call, contact=contact)
        return SmsPlan(events, contact, suppressing)

    def _replaced(self, correction: OutcomeCorrected) -> Selection | None:
        """The selection a correction replaced: the interaction's outcome just before it."""
        before = correction.originator_version - 1
        if correction.interaction == "call":
            call: Call = self.repository.get(correction.originator_id, version=before, projector_func=project_call)
            return call.outcome
        conversation: Conversation = self.repository.get(
            correction.originator_id, version=before, projector_func=project_conversation
        )
        return conversation.closing_outcome

    def _sms_of(self, tenant_id: str, source: str) -> Sms | None:
        try:
            return self.sms(tenant_id, aggregate_id(tenant_id, "sms", source))
        except NotFound:
            return None

    def sms(self, tenant_id: str, sms_id: UUID) -> Sms:
        return self._owned(tenant_id, sms_id, project_sms, Sms, "SMS")

    def _owned(
        self, tenant_id: str, id_: UUID, projector: Callable[[Any, Iterable[Any]], Any], cls: type[T], what: str
    ) -> T:
        """The tenant's aggregate of that kind; NotFound alike for an unknown id, another
        tenant's, or an id that names something else."""
        try:
            found: object = self._get(id_, projector, what)
        except TypeError:  # the id names another kind of aggregate
            found = None
        if not isinstance(found, cls) or getattr(found, "tenant_id", None) != tenant_id:
            raise NotFound(f"{what} not found")
        return found

    def _change(
        self,
        ctx: Context,
        kind: str,
        external_id: str,
        load: Callable[[str, UUID], S],
        decide: Callable[[S], Sequence[DomainEvent]],
        idempotency: Idempotency | None,
    ) -> Receipt:
        """A command on an aggregate the client names by its id (an SMS, a follow-up)."""
        try:
            uuid = UUID(external_id)
        except ValueError:
            raise NotFound(f"{kind} not found") from None  # as for an unknown id

        def run() -> tuple[Sequence[DomainEvent], Sequence[tuple[UUID, int]]]:
            return decide(load(ctx.tenant_id, uuid)), ()

        return self._run(ctx, idempotency, kind, external_id, run, uuid)

    def sms_of_interaction(self, tenant_id: str, interaction: Interaction, external_id: str) -> list[Sms]:
        """Every SMS the interaction's selections and corrections asked for, in order."""
        return self._caused_by(tenant_id, interaction, external_id, self._sms_of)

    def _caused_by(
        self,
        tenant_id: str,
        interaction: Interaction,
        external_id: str,
        find: Callable[[str, str], T | None],
    ) -> list[T]:
        """What the interaction's selections and corrections caused, found by their sources."""
        load = self.call if interaction == "call" else self.conversation
        state = load(tenant_id, external_id)  # NotFound for an unknown one
        found = []
        for event in self.events.get(state.id):
            if isinstance(event, OutcomeSelected | OutcomeCorrected):
                caused = find(tenant_id, source_of(event))
                if caused is not None:
                    found.append(caused)
        return found

    def send_sms_draft(
        self, ctx: Context, *, sms_id: str, body: str, idempotency: Idempotency | None = None
    ) -> Receipt:
        """The agent sends a draft, completed and edited; the sender worker delivers it."""
        return self._change(
            ctx, "SMS", sms_id, self.sms, lambda sms: sms_rules.approve_draft(sms, ctx, body), idempotency
        )

    def quota_reached(self, tenant_id: str, project_id: str, outcome_code: str) -> datetime | None:
        """When the outcome reached its quota in the project, if it did."""
        try:
            events = list(self.events.get(aggregate_id(tenant_id, "quota", f"{project_id}/{outcome_code}"), limit=1))
        except AggregateNotFoundError:
            return None
        return events[0].recorded_at if events else None  # type: ignore[attr-defined, no-any-return]

    def agent_outcome_codes(self, tenant_id: str, project_id: str) -> list[str]:
        return [o.definition.code for o in agent_outcomes(self.catalogue(tenant_id), project_id)]

    # -- contact lists and dialability (workers/contact_lists.py) ---------------------------------------
    def _optional(self, id_: UUID, projector: Callable[[Any, Iterable[Any]], S | None]) -> S | None:
        try:
            return self.repository.get(id_, projector_func=projector)  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            return None

    def dialing_record(self, tenant_id: str, contact_id: str) -> dialing_state.DialingRecord | None:
        return self._optional(list_rules.dialing_id(tenant_id, contact_id), dialing_state.project_dialing)

    def _list_record(self, tenant_id: str, contact_list: str | None) -> dialing_state.ContactListRecord | None:
        if contact_list is None:
            return None
        return self._optional(list_rules.list_id(tenant_id, contact_list), dialing_state.project_contact_list)

    def _company_record(self, tenant_id: str, contact: Contact | None) -> dialing_state.DialingRecord | None:
        if contact is None or contact.company_id is None:
            return None
        return self._optional(list_rules.company_id(tenant_id, contact.company_id), dialing_state.project_dialing)

    def contact_list_effects(self, selection: OutcomeSelected | OutcomeCorrected) -> list[DomainEvent]:
        """The contact-list events the selection's outcome asks for; for a correction, first
        what the corrected selection caused undone (decided, not saved)."""
        correction = selection if isinstance(selection, OutcomeCorrected) else None
        if selection.definition.contact_handling == ContactHandling() and correction is None:
            return []
        tenant_id = selection.tenant_id
        call = self.call(tenant_id, selection.interaction_id) if selection.interaction == "call" else None
        contact_id = call.contact_id if call else self.conversation(tenant_id, selection.interaction_id).contact_id
        if contact_id is None:
            return []  # nobody to act on: the interaction names no contact
        contact = self.contact(tenant_id, contact_id)
        record = self.dialing_record(tenant_id, contact_id)
        project = self.catalogue(tenant_id).projects[selection.project_id].settings
        target = list_rules.Target(
            contact_id=contact_id,
            project=project,
            contact=contact,
            number=call.contact_number if call else None,
            agent_id=(selection.agent_id if isinstance(selection, OutcomeSelected) else None)
            or (call.agent_id if call else None),
            record=record,
            company=self._company_record(tenant_id, contact),
            contact_list=self._list_record(
                tenant_id, project.contact_list or (contact.contact_list if contact else None)
            ),
        )
        ctx = Context(tenant_id, "system", now())
        if correction is None:
            return list_rules.plan(selection, target, ctx)
        replaced = self._replaced(correction)
        source = replaced.source if replaced else None
        history, company_history = self._history(target.record), self._history(target.company)
        return list_rules.redrive(correction, source, target, history, company_history, ctx)

    def _history(self, record: dialing_state.DialingRecord | None) -> list[DialingEvent]:
        """A dialing record's events up to the version read (what a correction searches)."""
        if record is None:
            return []
        return [e for e in self.events.get(record.id, lte=record.version) if isinstance(e, DialingEvent)]

    def recall_handover(self, ctx: Context, contact_id: str, recall: str, idempotency: Idempotency) -> Receipt:
        """The durable scheduler's timer: an agent's recall not called back is anyone's now."""
        record_id = list_rules.dialing_id(ctx.tenant_id, contact_id)

        def run() -> tuple[Sequence[DomainEvent], Sequence[tuple[UUID, int]]]:
            record = self.dialing_record(ctx.tenant_id, contact_id)
            return list_rules.hand_over(record, contact_id, recall, ctx), ()

        # the planner may append to the same record meanwhile: decide again on the new
        # version rather than drop the hand-over (the timer would be completed regardless)
        for _attempt in range(MAX_ATTEMPTS - 1):
            try:
                return self._run(ctx, idempotency, "dialing", contact_id, run, record_id)
            except Conflict:
                continue
        return self._run(ctx, idempotency, "dialing", contact_id, run, record_id)

    def call_attempts(self, event: CallStarted | CallAnswered) -> list[DomainEvent]:
        """A call to a contact: an attempt counted (started), a recall called back (answered)."""
        if isinstance(event, CallStarted) and (event.contact_id is None or event.direction != "outbound"):
            return []  # not an attempt: spare the loads (most calls in an inbound centre)
        tenant_id = event.tenant_id
        call = self.call(tenant_id, event.call_id)
        if call.contact_id is None:
            return []
        record = self.dialing_record(tenant_id, call.contact_id)
        ctx = Context(tenant_id, "system", now())
        source = list_rules.source_of(event)
        if isinstance(event, CallStarted):
            return list_rules.count_attempt(call, record, source, ctx)
        return list_rules.called_back(call, record, source, ctx)

    def dialability(
        self,
        tenant_id: str,
        contact_id: str,
        project_id: str,
        number: str | None,
        at: datetime,
        mode: Mode = "automatic",
        agent_id: str | None = None,
    ) -> Dialability:
        project = self.catalogue(tenant_id).projects.get(project_id)
        if project is None:
            raise NotFound(f"project {project_id!r} not found")
        contact = self.contact(tenant_id, contact_id)
        record = self.dialing_record(tenant_id, contact_id)
        # the number asked about, else every number the contact has
        erased = self.erased(tenant_id, contact, (number,) if number else contact.numbers if contact else ())
        if contact is None and record is None and not erased:
            raise NotFound(f"contact {contact_id!r} not found")
        reloads = self._list_record(tenant_id, project.settings.contact_list)
        view = dialing_state.DialingView(
            erased=erased,
            contact=contact,
            record=record,
            company=self._company_record(tenant_id, contact),
            list_reloaded_at=reloads.reloaded_at if reloads else None,
        )
        return dialability(view, project_id, project.settings, number, at, mode, agent_id=agent_id)

    def _record(self, processing_event: ProcessingEvent[UUID]) -> Any:
        # contact-list changes are published for dialers by the script that stores them
        if changes := dialing_state.published_changes(processing_event.events):
            processing_event.saved_kwargs["publish"] = changes
        return super()._record(processing_event)
