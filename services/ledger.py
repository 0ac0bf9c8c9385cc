"""The application: each command loads, decides (services.rules), saves -- nothing else.

One ``Ledger`` serves one shard (one eventsourcing application log); tenants map to
shards in the registry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper

from events.codec import DomainEvent, StructMapper, SubjectKeys, now
from events.store import AlreadyRecorded, RedisApplicationRecorder, RedisFactory, VersionConflict
from events.store import IdempotencyKeyReused as StoredKeyReused
from events.types import OutcomeFlags
from services import rules
from services.aggregates import (
    Call,
    Catalogue,
    Project,
    aggregate_id,
    project_call,
    project_catalogue,
    project_project,
)
from services.errors import Conflict, IdempotencyKeyReused, NotFound, OutcomeSetChanged

S = TypeVar("S")


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """What a write answers; a repeat with the same idempotency key gets the same."""

    kind: str
    id: str
    version: int


@dataclass(frozen=True)
class Idempotency:
    key: str
    #: digest of the request (method, path, body): same key + other body is refused
    digest: str

    @staticmethod
    def of(key: str, *parts: bytes) -> Idempotency:
        h = hashlib.sha256()
        for part in parts:
            h.update(len(part).to_bytes(8, "big") + part)
        return Idempotency(key, h.hexdigest())


class Ledger(Application[UUID]):
    name = "OutcomeLedger"
    env = {"PERSISTENCE_MODULE": "events.store"}

    def construct_mapper(self) -> Mapper[UUID]:
        assert isinstance(self.factory, RedisFactory)
        self.subject_keys = SubjectKeys(self.factory.client)
        return StructMapper(keys=self.subject_keys)

    # -- plumbing ------------------------------------------------------------------
    def _get(self, id_: UUID, projector: Callable[[Any, Iterable[Any]], S | None], what: str) -> S:
        try:
            return self.repository.get(id_, projector_func=projector)  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            raise NotFound(f"{what} not found") from None

    def _commit(
        self,
        events: Sequence[DomainEvent],
        ctx: rules.Context,
        receipt: Receipt,
        idempotency: Idempotency | None = None,
        expect: Sequence[tuple[UUID, int]] = (),
    ) -> Receipt:
        kwargs: dict[str, Any] = {"tenant": ctx.tenant_id}
        if idempotency is not None:
            kwargs |= {
                "idempotency_key": idempotency.key,
                "idempotency_digest": idempotency.digest,
                "receipt": msgspec.json.encode(receipt).decode(),
            }
        if expect:
            kwargs["expect"] = expect
        try:
            self.save(*events, **kwargs)
        except AlreadyRecorded as repeat:
            return msgspec.json.decode(repeat.receipt, type=Receipt)
        except StoredKeyReused:
            raise IdempotencyKeyReused(
                f"idempotency key {idempotency.key if idempotency else ''!r} was already used with a different request"
            ) from None
        except VersionConflict as error:
            raise OutcomeSetChanged(f"the outcome set changed while the selection was checked ({error})") from None
        except IntegrityError:
            raise Conflict(f"{receipt.kind} {receipt.id} was changed concurrently; reload and retry") from None
        return receipt

    def _repeat(self, ctx: rules.Context, idempotency: Idempotency | None) -> Receipt | None:
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

    # -- queries -------------------------------------------------------------------
    def catalogue(self, tenant_id: str) -> Catalogue:
        return self._get(aggregate_id(tenant_id, "catalogue"), project_catalogue, "tenant")

    def project(self, tenant_id: str, project_id: str) -> Project:
        return self._get(aggregate_id(tenant_id, "project", project_id), project_project, f"project {project_id!r}")

    def call(self, tenant_id: str, call_id: str) -> Call:
        return self._get(aggregate_id(tenant_id, "call", call_id), project_call, f"call {call_id!r}")

    # -- commands ------------------------------------------------------------------
    def create_tenant(self, tenant_id: str, name: str, time_zone: str, actor: str = "system") -> Receipt:
        ctx = rules.Context(tenant_id, actor, now())
        events = rules.create_tenant(aggregate_id(tenant_id, "catalogue"), ctx, name, time_zone)
        return self._commit(events, ctx, Receipt(kind="tenant", id=tenant_id, version=1))

    def define_outcome(
        self,
        ctx: rules.Context,
        *,
        code: str,
        name: str,
        description: str = "",
        category: str = "",
        flags: OutcomeFlags | None = None,
        selectable: bool = True,
        applies_to: tuple[str, ...] = ("call", "conversation"),
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        if (repeat := self._repeat(ctx, idempotency)) is not None:
            return repeat
        catalogue = self.catalogue(ctx.tenant_id)
        events = rules.define_outcome(
            catalogue,
            ctx,
            code=code,
            name=name,
            description=description,
            category=category,
            flags=flags or OutcomeFlags(),
            selectable=selectable,
            applies_to=applies_to,
        )
        return self._commit(
            events, ctx, Receipt(kind="outcome", id=code, version=events[-1].originator_version), idempotency
        )

    def create_project(
        self,
        ctx: rules.Context,
        *,
        project_id: str,
        name: str,
        direction: str,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        if (repeat := self._repeat(ctx, idempotency)) is not None:
            return repeat
        catalogue = self.catalogue(ctx.tenant_id)
        events = rules.create_project(
            aggregate_id(ctx.tenant_id, "project", project_id),
            catalogue,
            ctx,
            project_id=project_id,
            name=name,
            direction=direction,
        )
        return self._commit(events, ctx, Receipt(kind="project", id=project_id, version=2), idempotency)

    def start_call(
        self,
        ctx: rules.Context,
        *,
        call_id: str,
        project_id: str,
        direction: str,
        occurred_at: datetime,
        agent_id: str | None = None,
        contact_id: str | None = None,
        contact_number: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        if (repeat := self._repeat(ctx, idempotency)) is not None:
            return repeat
        project = self.project(ctx.tenant_id, project_id)
        events = rules.start_call(
            aggregate_id(ctx.tenant_id, "call", call_id),
            project,
            ctx,
            call_id=call_id,
            direction=direction,
            occurred_at=occurred_at,
            agent_id=agent_id,
            contact_id=contact_id,
            contact_number=contact_number,
        )
        return self._commit(events, ctx, Receipt(kind="call", id=call_id, version=1), idempotency)

    def end_call(
        self,
        ctx: rules.Context,
        *,
        call_id: str,
        occurred_at: datetime,
        termination_reason: str = "",
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        if (repeat := self._repeat(ctx, idempotency)) is not None:
            return repeat
        call = self.call(ctx.tenant_id, call_id)
        events = rules.end_call(call, ctx, occurred_at=occurred_at, termination_reason=termination_reason)
        return self._commit(
            events, ctx, Receipt(kind="call", id=call_id, version=events[-1].originator_version), idempotency
        )

    def select_outcome(
        self,
        ctx: rules.Context,
        *,
        call_id: str,
        code: str,
        occurred_at: datetime,
        revenue: Decimal | None = None,
        agent_id: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        if (repeat := self._repeat(ctx, idempotency)) is not None:
            return repeat
        call = self.call(ctx.tenant_id, call_id)
        project = self.project(ctx.tenant_id, call.project_id)
        catalogue = self.catalogue(ctx.tenant_id)
        events = rules.select_outcome(
            call,
            project,
            catalogue,
            ctx,
            code=code,
            occurred_at=occurred_at,
            revenue=revenue,
            agent_id=agent_id,
        )
        # The project's outcome set must not move between the check and the write.
        expect = [(project.id, project.version)]
        return self._commit(
            events, ctx, Receipt(kind="call", id=call_id, version=events[-1].originator_version), idempotency, expect
        )
