"""Follow-up actions (PRODUCT.md §3), as followers of the shard log with tracking positions.

Each follower reads the log after its own position in the shard's tracking hash and saves
what it decides together with the position of the entry that caused it, in one script
(``Ledger.save_tracked``). A worker killed at any instant resumes from the last position
written; a twin that gets there first makes the second write fail whole. So what is
recorded happens exactly once. What leaves the building cannot be taken back: an SMS
sent just before a kill is sent again on restart, carrying the same idempotency key (the
SMS id), so a gateway that deduplicates sees it once, and one that does not sees at most
one duplicate per SMS in flight at the kill (``LogFollower.in_flight``).

- ``SmsPlanner``: for each selection or correction whose outcome has an SMS template,
  records ``SmsRequested`` (and ``SmsSuppressed`` when the contact opted out or has no
  number); in the worker it also sends an auto-sent SMS at once and records the answer in
  the same write.
- ``SmsSender``: for each ``SmsRequested`` not yet settled and not a draft (an approved
  draft, a request recorded without sending), sends it through the gateway and records
  ``SmsSent`` or ``SmsFailed`` (``SmsSuppressed`` when the contact opted out in between, or
  the contact or its number was erased: docs/erasure.md).

Each follower runs in one worker process at a time, the holder of its lease
(workers/leases.py); several processes share the followers between them. A partitioned
follower's work is split by aggregate into units, each with its own position and lease
(workers/partitions.py, ``OUTCOMES_ACTION_PARTITIONS``), so several processes share it too.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, cast
from uuid import UUID

import msgspec
import redis
from eventsourcing.persistence import IntegrityError, Tracking

from events.archive import entries_at, read_log
from events.codec import ERASED, DomainEvent, StructMapper, now
from events.connect import redis_client
from events.keys import ShardKeys, decode_originator_id
from events.store import RedisFactory, StreamEntries, register_lua
from events.types import OutcomeCorrected, OutcomeSelected, SmsDraftApproved, SmsRequested
from services.config import Settings
from services.ledger import Ledger, SmsPlan
from services.rules import Context
from services.rules import sms as sms_rules
from services.sms import Sms, project_sms
from services.sms_gateway import Gateway
from workers.partitions import adopt, follower_of, partition_of, unit_name

log = logging.getLogger("outcomes.actions")

#: what a follower decided for one entry: (tenant, events to record)
Decided = tuple[str | None, Sequence[DomainEvent]]
#: their positions in the shard's tracking hash
PLANNER, SENDER, FOLLOW_UPS = "actions.sms-planner", "actions.sms-sender", "actions.follow-up-planner"
#: failed attempts at one log entry before it goes to the dead-letter stream
MAX_ATTEMPTS = int(os.environ.get("OUTCOMES_MAX_ATTEMPTS", "5"))


class LogTail:
    """The shard log's latest entries as the followers of one worker process read them.

    Every action follower reads the whole log after its own position, so each entry was
    read from Redis (a round trip, and a reply parsed) once per follower. Shared by the
    followers of a process (``followers``), the tail hands a follower whose position it
    holds the entries after it without asking Redis; a follower at (or past) its end reads
    Redis (``read_log``) and the tail grows by what it read. The log only grows at its end
    and its entries never change (archived ones are read from the archive alike), so what
    the tail gives is what a read would have given then: every entry after the position,
    up to where some follower of the process last read. What lies beyond, the follower
    reads at its next turn."""

    def __init__(self, keep: int = 2000) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        #: the log's entries after position ``_after`` up to ``_last``, all of them, in order
        self._after = self._last = 0
        self._positions: list[int] = []
        self._entries: StreamEntries = []

    def read(self, client: redis.Redis, keys: ShardKeys, after: int, count: int) -> StreamEntries:
        """Up to ``count`` log entries after position ``after``."""
        with self._lock:
            if self._after <= after < self._last:
                start = bisect.bisect_right(self._positions, after)
                return self._entries[start : start + count]
        entries = read_log(client, keys, after, None, count)
        if entries:
            self._add(after, entries)
        return entries

    def _add(self, after: int, entries: StreamEntries) -> None:
        positions = [entry_position(eid) for eid, _ in entries]
        with self._lock:
            if after == self._last:  # right after the tail: it grows
                self._positions += positions
                self._entries += entries
            elif positions[-1] > self._last:  # further on (or a longer run): it starts there
                self._after, self._positions, self._entries = after, positions, list(entries)
            else:
                return  # behind the tail (a follower catching up): kept as it was
            self._last = positions[-1]
            if len(self._positions) > self.keep:  # the oldest go
                drop = len(self._positions) - self.keep
                self._after = self._positions[drop - 1]
                del self._positions[:drop], self._entries[:drop]


def entry_position(entry_id: bytes) -> int:
    """A log entry's position: its id is ``<position>-0``."""
    return int(entry_id.split(b"-")[0])


class LogFollower:
    """Reads the shard log after its tracking position and decides, entry by entry."""

    name = ""
    #: the event types this follower acts on; the rest only move its position
    wanted: frozenset[bytes] = frozenset()
    #: how many of a batch's entries are decided at once. Only for a follower whose decisions
    #: depend on nothing the batch writes but through the same aggregate (an interaction, an
    #: SMS); what they do outside (an SMS sent) is then in flight together.
    parallel = 1
    #: whether its work may be split by the entry's aggregate (workers/partitions.py): only
    #: for a follower whose decisions for one aggregate depend on nothing another writes
    partitioned = False
    #: seconds the worker loop lets entries gather after a short batch before reading again:
    #: fewer, larger batches (each costs reads and a position write whatever its size) for
    #: a follower whose effects may come that much later
    linger = 0.05
    #: seconds a lazily run follower (``run_once(lazy=True)``) may leave its position
    #: unwritten when only the position moved (nothing decided)
    position_lag = 1.0

    @classmethod
    def in_flight(cls) -> int:
        """At most how many entries may have acted outside without being recorded: those
        decided ahead plus those decided and not yet written (``_Ahead``)."""
        return 2 * cls.parallel if cls.parallel > 1 else 1

    def __init__(
        self,
        settings: Settings,
        batch_size: int = 100,
        max_attempts: int = MAX_ATTEMPTS,
        partition: int = 0,
        partitions: int = 1,
    ) -> None:
        self.keys = ShardKeys(settings.shard, settings.key_prefix)
        #: this unit's part of the follower's work (workers/partitions.py); its name is the
        #: unit's: its tracking position, lease and dead letters
        self.partitions = partitions if self.partitioned else 1
        self.partition = partition if self.partitions > 1 else 0
        self.follower = self.name
        self.name = unit_name(self.name, self.partition, self.partitions)
        self._adopted = False
        # its own Ledger: while one thread brings a cached aggregate (the tenant's catalogue)
        # up to date, the others use it as cached instead of queueing for it; what a
        # follower decides rests on the events it follows, which carry what was in force
        env = {**settings.ledger_env(), "REDIS_SHARD": settings.shard, "FASTFORWARD_SKIPPING": "y"}
        self.ledger: Ledger = Ledger(env=env)
        assert isinstance(self.ledger.factory, RedisFactory)
        self.client: redis.Redis = self.ledger.factory.client  # the Ledger's own connections
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        # decisions of a batch made ahead, in threads (``_Ahead``); written in log order
        self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix=self.name) if self.parallel > 1 else None
        self._dead_letter = register_lua(self.client, "workers", "dead_letter.lua")
        #: where this unit has got to (None: read the stored position), and what it last
        #: stored itself; between them only entries that decided nothing (``run_once(lazy=True)``)
        self._covered: int | None = None
        self._stored = 0
        self._stored_at = 0.0
        #: where it reads the log: shared by the followers of a worker process (``followers``)
        self.tail = LogTail()

    @property
    def mapper(self) -> StructMapper:
        return cast(StructMapper, self.ledger.mapper)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self.ledger.close()

    def position(self) -> int:
        value = self.client.hget(self.keys.tracking, self.name)
        return int(cast(bytes, value)) if value is not None else 0

    def forget_position(self) -> None:
        """Read the stored position again next time (another process may have moved it)."""
        self._covered = None

    def _track(self, tenant_id: str | None, events: Sequence[DomainEvent], nid: int) -> None:
        """Save what was decided with the position ``nid``, in one write."""
        self.ledger.save_tracked(tenant_id, events, Tracking(self.name, nid))
        self._covered = self._stored = nid
        self._stored_at = time.monotonic()

    def store_position(self) -> None:
        """Write the position a lazy run left unwritten, if any (before the loop waits)."""
        if self._covered is not None and self._covered > self._stored:
            try:
                self._track(None, [], self._covered)
            except IntegrityError:  # a twin moved it: read it again
                self._covered = None

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        """(tenant, events to record) for one wanted event."""
        raise NotImplementedError

    def run_once(self, *, lazy: bool = False) -> int:
        """Handle the next batch of log entries; returns how many entries it covered.

        ``lazy`` (the worker loop): the position is kept in memory between batches, and a
        batch that decided nothing leaves it unwritten for up to ``position_lag`` seconds
        (``store_position`` writes it before the loop waits). A kill meanwhile only makes
        the next holder go over entries that decided nothing; their decisions are
        written with their positions as always, so nothing is done twice."""
        if not self._adopted:  # this layout of partitions, before the first position is read
            adopt(self.client, self.keys, self.follower, self.partitions)
            self._adopted = True
        if not lazy or self._covered is None:
            self._covered = self._stored = self.position()
        try:
            return self._run_batch(self._covered, lazy)
        except BaseException:
            self._covered = None  # whatever happened, read the stored position next time
            raise

    def _run_batch(self, position: int, lazy: bool) -> int:
        entries = self.tail.read(self.client, self.keys, position, self.batch_size)
        if not entries:
            return 0
        wanted = self.select(entries)
        if self.partitions > 1:  # the others' entries: only the position moves past them
            wanted = [(nid, fields) for nid, fields in wanted if self.mine(fields)]
        ahead = _Ahead(self, wanted)
        recorded = position
        pending: list[tuple[int, Decided]] = []  # decided ahead, one tenant, not yet written

        def flush() -> None:
            """Write what was decided ahead, with the last one's position: one script."""
            nonlocal recorded
            if pending:
                events = [event for _, (_, decided) in pending for event in decided]
                self._track(pending[0][1][0], events, pending[-1][0])
                recorded = pending[-1][0]
                pending.clear()

        try:
            for i, (nid, fields) in enumerate(wanted):
                try:
                    decided = ahead.result(i)
                    if decided is None:  # it may depend on what came before: decide it now
                        flush()
                        if self.act(fields, nid):
                            recorded = nid  # the stored position
                    elif decided[1]:
                        if pending and pending[0][1][0] != decided[0]:
                            flush()
                        pending.append((nid, decided))
                        if len(pending) >= self.parallel:
                            flush()
                except IntegrityError:
                    raise
                except Exception as error:
                    flush()
                    if not self._gave_up(recorded, nid, fields, error):
                        raise  # retried from the position on the next turn
                    recorded = nid
            flush()
            last = entry_position(entries[-1][0])
            self._stored = max(self._stored, recorded)  # ``recorded`` was written (by whichever script)
            # nothing to record at the end of the batch: move the position alone (lazily: later)
            if last > recorded and (not lazy or time.monotonic() - self._stored_at >= self.position_lag):
                self._track(None, [], last)
            self._covered = last
        except IntegrityError:
            self._covered = None
            return 0  # a twin follower recorded this position first: read the position again
        return len(entries)

    def wait_for_more(self, timeout_ms: int) -> None:
        """Block until the log has an entry after the position (or the timeout passes)."""
        position = self._covered if self._covered is not None else self.position()
        self.client.xread({self.keys.log: f"{position}-0"}, count=1, block=timeout_ms)

    def select(self, entries: StreamEntries) -> list[tuple[int, dict[bytes, bytes]]]:
        """The batch's entries to decide, with their positions: those of the wanted types."""
        return [(entry_position(eid), fields) for eid, fields in entries if fields[b"t"] in self.wanted]

    def mine(self, fields: dict[bytes, bytes]) -> bool:
        """Whether the entry is this unit's: by its aggregate, so one aggregate's entries
        (a selection and its corrections, an SMS and its answer) stay in one unit, in order."""
        return partition_of(fields[b"o"], self.partitions) == self.partition

    def act(self, fields: dict[bytes, bytes], nid: int) -> bool:
        """Do what the entry asks; True when that recorded the position (with the events)."""
        return self.commit(self.decide_entry(fields), nid)

    def decide_entry(self, fields: dict[bytes, bytes]) -> Decided:
        """(tenant, events to record) for one wanted log entry."""
        return self.decide(self.decode(fields))

    def commit(self, decided: Decided, nid: int) -> bool:
        tenant, events = decided
        if not events:
            return False
        self._track(tenant, events, nid)
        return True

    def decode(self, fields: dict[bytes, bytes]) -> DomainEvent:
        return self.mapper.decode(fields[b"t"].decode(), fields[b"s"])

    def _gave_up(self, position: int, nid: int, fields: dict[bytes, bytes], error: Exception) -> bool:
        """Count a failed attempt at the entry; at ``max_attempts`` move it to the
        dead-letter stream with the reason, and the position past it, in one script."""
        event_type, tenant = fields[b"t"].decode(), fields.get(b"n", b"").decode()
        attempts = int(self.client.hincrby(self.keys.attempts, f"{self.name}:{nid}", 1))
        reason = f"{type(error).__name__}: {error}"
        log.warning("%s: entry %d (%s) failed, attempt %d: %s", self.name, nid, event_type, attempts, reason)
        if attempts < self.max_attempts:
            return False
        keys = [self.keys.tracking, self.keys.dead_letters, self.keys.attempts]
        args = [self.name, str(position), str(nid), event_type, reason, str(attempts), tenant]
        if not self._dead_letter(keys=keys, args=args):
            return False  # the position moved meanwhile: read it again
        log.error("%s: entry %d (%s) dead-lettered after %d attempts", self.name, nid, event_type, attempts)
        return True


class _Ahead:
    """A batch's decisions made ahead in the follower's threads, at most ``parallel`` ahead
    of the one being written (so at most that many, plus those decided and not yet
    written, have acted outside at a kill). An entry whose aggregate an earlier entry of
    the batch also touched is not decided ahead: it may depend on that one (a correction
    on its selection), so it is decided after the earlier one is written."""

    def __init__(self, follower: LogFollower, wanted: list[tuple[int, dict[bytes, bytes]]]) -> None:
        self.follower = follower
        self.wanted = wanted
        self.futures: dict[int, Future[Decided]] = {}
        self.submitted = 0
        seen: set[bytes] = set()
        self.independent = set()
        for i, (_, fields) in enumerate(wanted):
            if fields[b"o"] not in seen:
                self.independent.add(i)
            seen.add(fields[b"o"])

    def result(self, i: int) -> Decided | None:
        """Entry i's decision, or None when it is to be decided in order. The entry asked
        for that no thread has yet (the batch's first) is decided in this thread, once the
        next ones are handed out: a hand-off to a thread and back costs more CPU than a
        small decision (most batches of a paced load have one or two entries)."""
        pool = self.follower._pool
        if pool is None:
            return None
        here = i == self.submitted and i in self.independent
        if here:
            self.submitted += 1
        while self.submitted < min(i + self.follower.parallel, len(self.wanted)):
            if self.submitted in self.independent:
                fields = self.wanted[self.submitted][1]
                self.futures[self.submitted] = pool.submit(self.follower.decide_entry, fields)
            self.submitted += 1
        if here:
            return self.follower.decide_entry(self.wanted[i][1])
        future = self.futures.pop(i, None)
        return future.result() if future is not None else None


class SmsPlanner(LogFollower):
    """Records the SMS a selection's outcome asks for. Given the gateway, it sends an
    auto-sent request at once, as the sender would (``deliver``), and records the request and
    the gateway's answer in one write (with its position): the log still says all that was
    done, and the sender, following the log, finds that SMS settled and leaves it
    (``unsettled``). Without it (tests), the sender sends it."""

    name = PLANNER
    wanted = frozenset({b"OutcomeSelected", b"OutcomeCorrected"})
    #: a selection's SMS depends on its own interaction only (a correction on its selection)
    parallel = 16
    partitioned = True  # by interaction
    linger = 0.005  # the SMS goes from here: a short wait only

    def __init__(self, settings: Settings, gateway: Gateway | None = None, **options: int) -> None:
        super().__init__(settings, **options)
        self.gateway = gateway

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        assert isinstance(event, OutcomeSelected | OutcomeCorrected)
        plan = self.ledger.sms_plan(event)
        requested = plan.events
        last = requested[-1] if requested else None
        if self.gateway is not None and isinstance(last, SmsRequested) and not last.draft:
            sms = project_sms(None, [last])
            assert sms is not None
            ctx = Context(sms.tenant_id, "system", now())
            # the contact and the tenant's suppressions as the plan read them, a moment ago
            sent = send_or_refuse(self.ledger, self.gateway, sms, ctx, plan=plan)
            return event.tenant_id, [*requested, *sent]
        return event.tenant_id, requested


class FollowUpPlanner(LogFollower):
    """Opens the follow-up task a selection's outcome asks for (its overdue timer set in the
    same write), and cancels the open task of a selection a correction replaced."""

    name = FOLLOW_UPS
    wanted = frozenset({b"OutcomeSelected", b"OutcomeCorrected"})
    parallel = 8  # as the SMS planner
    partitioned = True  # by interaction, as the SMS planner

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        assert isinstance(event, OutcomeSelected | OutcomeCorrected)
        return event.tenant_id, self.ledger.follow_up_requests(event)


#: the events after which an SMS is settled: nothing more is sent
_SETTLING = frozenset({b"SmsSent", b"SmsFailed", b"SmsSuppressed", b"SmsCancelled"})


def unsettled(entries: StreamEntries, wanted: frozenset[bytes]) -> list[tuple[int, dict[bytes, bytes]]]:
    """The wanted entries of a batch, but an SMS request settled by a later entry of the same
    batch (sent by the planner in the same write, suppressed, cancelled): known from the log
    alone, without reading the SMS."""
    settled: set[bytes] = set()
    chosen: list[tuple[int, dict[bytes, bytes]]] = []
    for eid, fields in reversed(entries):
        kind = fields[b"t"]
        if kind in _SETTLING:
            settled.add(fields[b"o"])
        elif kind in wanted and not (kind == b"SmsRequested" and fields[b"o"] in settled):
            chosen.append((entry_position(eid), fields))
    chosen.reverse()
    return chosen


class SmsSender(LogFollower):
    name = SENDER
    #: a request goes at once, a draft once the agent approves it
    wanted = frozenset({b"SmsRequested", b"SmsDraftApproved"})
    #: each SMS is its own aggregate: a batch's sends overlap, and their answers are written
    #: together (so up to twice this many may have gone unrecorded at a kill: ``in_flight``)
    parallel = 16
    partitioned = True  # by SMS: its request and what settles it are entries of the SMS

    def __init__(self, settings: Settings, gateway: Gateway, **options: int) -> None:
        super().__init__(settings, **options)
        self.gateway = gateway

    def select(self, entries: StreamEntries) -> list[tuple[int, dict[bytes, bytes]]]:
        return unsettled(entries, self.wanted)

    def decide_entry(self, fields: dict[bytes, bytes]) -> Decided:
        # decided from the SMS as loaded: the log entry gives its id and tenant, undecoded
        sms_id = decode_originator_id(fields[b"o"].decode())
        if b"n" not in fields or not isinstance(sms_id, UUID):  # not an SMS of a tenant
            return super().decide_entry(fields)
        return self.settle(fields[b"n"].decode(), sms_id)

    def decide(self, event: DomainEvent) -> tuple[str | None, Sequence[DomainEvent]]:
        assert isinstance(event, SmsRequested | SmsDraftApproved)
        return self.settle(event.tenant_id, event.originator_id)

    def settle(self, tenant_id: str, sms_id: UUID) -> Decided:
        """Send the SMS if it is still to go; its answer (or the refusal) to record."""
        sms = self.ledger.sms(tenant_id, sms_id)
        if sms.status != "pending":  # settled already, or a draft still with the agent
            return tenant_id, []
        ctx = Context(tenant_id, "system", now())
        return tenant_id, send_or_refuse(self.ledger, self.gateway, sms, ctx)


def send_or_refuse(
    ledger: Ledger, gateway: Gateway, sms: Sms, ctx: Context, *, plan: SmsPlan | None = None
) -> list[DomainEvent]:
    """Just before sending (planner or sender): refused when the contact opted out since the
    request, or the contact or its number was erased (docs/erasure.md); else sent. ``plan``:
    the request was just made from it, so its contact is the one to check (not read again)."""
    contact_id = sms.request.contact_id
    if plan is not None:
        contact, suppressing = plan.contact, plan.suppressing
    else:
        contact, suppressing = (ledger.contact(sms.tenant_id, contact_id) if contact_id else None), True
    to_number = sms.request.to_number
    assert to_number is not None  # a request without a number is suppressed when made
    # an erased contact's request reads back "[erased]" (no key): refused like its number
    erased = to_number == ERASED or ledger.erased(sms.tenant_id, contact, (to_number,), suppressing=suppressing)
    return sms_rules.refused_before_sending(sms, contact, ctx, erased=erased) or deliver(gateway, sms, ctx)


def deliver(gateway: Gateway, sms: Sms, ctx: Context) -> list[DomainEvent]:
    """Hand a pending SMS to the gateway; the answer as the SMS's next event."""
    to_number = sms.request.to_number
    assert to_number is not None  # a request without a number is suppressed when made
    delivery = gateway.send(str(sms.id), to_number, sms.body)
    if not delivery.ok:
        log.warning("SMS %s failed after %d attempts: %s", sms.id, delivery.attempts, delivery.reason)
    return sms_rules.delivered(
        sms,
        ctx,
        gateway=gateway.name,
        ok=delivery.ok,
        attempts=delivery.attempts,
        message_id=delivery.message_id,
        reason=delivery.reason,
    )


class _Build(Protocol):
    def __call__(self, settings: Settings, gateway: Gateway, /, *, partition: int, partitions: int) -> LogFollower: ...


def _builders() -> dict[str, _Build]:
    """Each action follower by its name, in the order to run them."""
    from workers.contact_lists import PLANNER as LISTS  # they build on LogFollower
    from workers.contact_lists import ContactListPlanner
    from workers.flows import PUBLISHER, FlowPublisher
    from workers.webhooks import DISPATCHER, WebhookDispatcher

    return {
        PLANNER: lambda settings, gateway, **part: SmsPlanner(settings, gateway, **part),
        SENDER: lambda settings, gateway, **part: SmsSender(settings, gateway, **part),
        FOLLOW_UPS: lambda settings, _, **part: FollowUpPlanner(settings, **part),
        LISTS: lambda settings, _, **part: ContactListPlanner(settings, **part),
        PUBLISHER: lambda settings, _, **part: FlowPublisher(settings, **part),
        DISPATCHER: lambda settings, _, **part: WebhookDispatcher(settings, **part),
    }


def _units(build: _Build, settings: Settings, gateway: Gateway) -> list[LogFollower]:
    """A follower's units: one per partition when it is partitioned, else itself."""
    first = build(settings, gateway, partition=0, partitions=settings.action_partitions)
    rest = [build(settings, gateway, partition=p, partitions=first.partitions) for p in range(1, first.partitions)]
    return [first, *rest]


def followers(settings: Settings, gateway: Gateway) -> list[LogFollower]:
    """This shard's action followers (each partition of a partitioned one a unit of its
    own), in the order to run them."""
    units = [unit for build in _builders().values() for unit in _units(build, settings, gateway)]
    tail = LogTail()
    for unit in units:  # each entry read from Redis once for them all, not once per follower
        unit.tail = tail
    return units


def follower(name: str, settings: Settings, gateway: Gateway) -> LogFollower:
    """The one action follower (or unit, ``<follower>#<p>``) of that name (each has its own
    Ledger and threads)."""
    try:
        build = _builders()[follower_of(name)]
    except KeyError:
        raise LookupError(f"no action follower {name!r}") from None
    part = int(name.partition("#")[2] or 0)
    return build(settings, gateway, partition=part, partitions=max(settings.action_partitions, part + 1))


# -- the dead-letter stream (``outcomes dlq``) ------------------------------------------------------


class DeadLetter(msgspec.Struct, frozen=True):
    id: str
    worker: str
    nid: int
    type: str
    reason: str
    attempts: int
    #: the tenant of the log entry ("" when the entry has none)
    tenant: str = ""


def _dead_letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    text = {k.decode(): v.decode() for k, v in fields.items()}
    return DeadLetter(
        entry_id.decode(),
        text["worker"],
        int(text["nid"]),
        text["type"],
        text["reason"],
        int(text["attempts"]),
        text.get("tenant", ""),
    )


def dead_letters(client: redis.Redis, keys: ShardKeys, tenant: str | None = None) -> list[DeadLetter]:
    """The shard's dead letters, oldest first; only the tenant's when one is named."""
    entries = cast(StreamEntries, client.xrange(keys.dead_letters))
    found = [_dead_letter(entry_id, fields) for entry_id, fields in entries]
    return [letter for letter in found if tenant is None or letter.tenant == tenant]


def dead_letter(client: redis.Redis, keys: ShardKeys, entry_id: str) -> DeadLetter:
    """One dead letter by its id; LookupError when there is none (or the id is malformed)."""
    try:
        found = cast(StreamEntries, client.xrange(keys.dead_letters, entry_id, entry_id))
    except redis.ResponseError:  # not a stream id
        found = []
    if not found:
        raise LookupError(f"no dead-letter entry {entry_id!r}")
    return _dead_letter(*found[0])


def requeue(settings: Settings, gateway: Gateway, entry_id: str) -> DeadLetter:
    """Run the dead-lettered entry again, now; on success it leaves the dead-letter stream.

    Its worker's position is past it, so what is decided is saved without a position;
    the aggregates' versions still keep it once (a twin's write fails whole). Only the
    entry's own follower is built."""
    keys = ShardKeys(settings.shard, settings.key_prefix)
    client = redis_client(settings.redis_url)
    try:
        letter = dead_letter(client, keys, entry_id)
        worker = follower(letter.worker, settings, gateway)
        fields = entries_at(client, keys, [letter.nid])[letter.nid]  # archived or not
        tenant, events = worker.decide_entry(fields)
        if events:
            with contextlib.suppress(IntegrityError):  # done meanwhile
                worker.ledger.save(*events, tenant=tenant)
        client.xdel(keys.dead_letters, entry_id)
        worker.close()
        return letter
    finally:
        client.close()
