"""Redis Streams persistence module for eventsourcing (``PERSISTENCE_MODULE=events.store``).

Layout of a shard (see ``events.keys``): events are stored once, on the shard's log
stream with entry ids ``<notification id>-0``; each aggregate has a small sorted set
mapping versions to notification ids; each tenant a stream of its log positions.
Every write is one Lua script (``lua/append.lua``) that checks all preconditions of a
save -- duplicate versions, expected versions of aggregates it only reads, tracking
position, idempotency key -- before it writes anything, and extends the two hash
chains (per aggregate and along the log).

Concurrent saves from threads of one process are committed together: a thread that
finds a commit lane free sends everything queued in one script call (group commit), so
N concurrent writers cost a few round trips and AOF fsyncs, not N. Two lanes keep one
batch queued at Redis while the other is executed and fsynced (see ``GroupCommitter``).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, cast
from uuid import UUID

import msgspec
import redis
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    Notification,
    PersistenceError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, resolve_topic, strtobool
from redis.commands.core import Script

from events.connect import node_client, redis_client
from events.keys import (
    DEFAULT_PREFIX,
    DEFAULT_SHARD,
    ShardKeys,
    decode_originator_id,
    encode_originator_id,
)

__all__ = [
    "AlreadyRecorded",
    "IdempotencyKeyReused",
    "RedisAggregateRecorder",
    "RedisApplicationRecorder",
    "RedisFactory",
    "RedisProcessRecorder",
    "RedisTrackingRecorder",
    "VersionConflict",
]

IDEMPOTENCY_TTL_SECONDS = 48 * 3600  # PRODUCT.md: at least 24 hours


class VersionConflict(IntegrityError):
    """An aggregate the save relied on moved on meanwhile (optimistic concurrency)."""


class IdempotencyKeyReused(PersistenceError):
    """The idempotency key was already used for a different request body."""


class AlreadyRecorded(PersistenceError):
    """The idempotency key was already used for this very body: nothing was written.

    Carries what the first request recorded so the caller can answer as it did then.
    """

    def __init__(self, receipt: str, first_notification_id: int, count: int) -> None:
        super().__init__("already recorded under this idempotency key")
        self.receipt = receipt
        self.notification_ids = list(range(first_notification_id, first_notification_id + count))


def lua_bytes(data: bytes) -> msgspec.Raw:
    """Encode bytes as a msgpack *str*: Redis' Lua cmsgpack predates the bin type,
    and a Lua string holds any bytes."""
    n = len(data)
    if n < 32:
        header = bytes([0xA0 | n])
    elif n < 0x100:
        header = b"\xd9" + n.to_bytes(1, "big")
    elif n < 0x10000:
        header = b"\xda" + n.to_bytes(2, "big")
    else:
        header = b"\xdb" + n.to_bytes(4, "big")
    return msgspec.Raw(header + data)


def lua_source(package: str, name: str) -> str:
    """A Lua script shipped in the package's ``lua/`` folder."""
    return resources.files(package).joinpath("lua", name).read_text(encoding="utf-8")


def register_lua(client: redis.Redis, package: str, name: str, *, index: bool = False) -> Script:
    """A shipped Lua script registered on ``client`` (run by EVALSHA, loaded on first use);
    ``index``: with the readers of aggregates' compact index entries before it
    (``lua/compact_index.lua``)."""
    source = lua_source(package, name)
    if index:
        source = lua_source("events", "compact_index.lua") + "\n" + source
    return client.register_script(source)


class RedisConnection:
    """A redis-py client plus the registered scripts of one shard."""

    def __init__(self, client: redis.Redis, keys: ShardKeys) -> None:
        self.client = client
        self.keys = keys
        self.append = register_lua(client, "events", "append.lua", index=True)
        self.append_plain = register_lua(client, "events", "append_plain.lua")
        self.select = register_lua(client, "events", "select_events.lua", index=True)
        self.track = register_lua(client, "events", "track.lua")


def _raise_for(status: str, reason: str) -> None:
    if status == "integrity":
        raise IntegrityError(reason)
    if status == "conflict":
        raise VersionConflict(reason)
    if status == "idem":
        raise IdempotencyKeyReused(reason)
    raise PersistenceError(f"{status}: {reason}")


def _script_error(error: redis.ResponseError) -> Exception:
    message = str(error)
    if "INTEGRITY" in message:
        return IntegrityError(message)
    return PersistenceError(message)


class _Save:
    """One save awaiting the group commit; ``signal`` is released when it is done or
    when a lane is handed to it."""

    __slots__ = ("done", "error", "lane", "payload", "result", "signal")

    def __init__(self, payload: list[Any]) -> None:
        self.payload = payload
        self.signal = threading.Lock()
        self.signal.acquire()
        self.result: list[Any] | None = None
        self.error: BaseException | None = None
        self.lane: _Lane | None = None
        self.done = False


class _Lane:
    """A connection of its own that carries one batch at a time."""

    __slots__ = ("connection",)

    def __init__(self) -> None:
        self.connection: Any = None  # redis.connection.AbstractConnection, taken lazily


class GroupCommitter:
    """Sends queued saves in one script call; callers take turns as the leader.

    No dedicated thread: a save that finds a lane free goes straight out from its own
    thread on that lane's connection (no hand-off latency). Saves that arrive while
    every lane is busy queue up; when a lane's batch completes, the lane passes to the
    oldest queued save, whose thread sends everything queued by then.

    Redis fsyncs the AOF once per event-loop pass, and a pass executes the scripts
    that arrived during the previous one. With two lanes one batch waits at Redis
    while the other is executed and fsynced, so Redis is never idle while Python
    turns results around; a leader that takes a lane while the other is busy first
    yields the GIL once (``time.sleep(0)``) so that threads just woken can queue
    their next saves and ride along. More lanes only make batches smaller.

    Lanes hold their connection (taken from the client's pool once): the pool's
    bookkeeping costs more per call than the rest of the client side. Nothing is
    retried: a connection error reaches every save of the batch (outcome unknown).
    """

    def __init__(self, conn: RedisConnection, max_batch: int = 256, *, enabled: bool = True, lanes: int = 2) -> None:
        if lanes < 1:
            raise ValueError("a group committer needs at least one lane")
        self._conn = conn
        self._max_batch = max_batch
        #: False = one script call per save through the client (the benchmark's naive baseline)
        self.enabled = enabled
        self._lanes = lanes
        self._mutex = threading.Lock()
        self._queue: list[_Save] = []
        self._free: list[_Lane] = [_Lane() for _ in range(lanes)]
        self._pid = os.getpid()
        keys = conn.keys
        self._args = (keys.log, keys.prefix)

    # -- wire ------------------------------------------------------------------------
    def _send_via_client(self, payloads: list[list[Any]]) -> list[Any]:
        packed = msgspec.msgpack.encode(payloads)
        raw = self._conn.append(keys=[self._conn.keys.log], args=[self._conn.keys.prefix, packed])
        return cast(list[Any], msgspec.msgpack.decode(cast(bytes, raw)))

    def _send(self, lane: _Lane, payloads: list[list[Any]]) -> list[Any]:
        packed = msgspec.msgpack.encode(payloads)
        script = self._conn.append
        if lane.connection is None:
            # the server holding the shard (its master, on a cluster: the whole shard is one slot)
            lane.connection = node_client(self._conn.client, self._conn.keys.log).connection_pool.get_connection()
        connection = lane.connection
        log, prefix = self._args
        try:
            connection.send_command("EVALSHA", script.sha, 1, log, prefix, packed, check_health=False)
            try:
                raw = connection.read_response()
            except redis.exceptions.NoScriptError:  # nothing ran: load the script and go again
                connection.send_command("SCRIPT", "LOAD", script.script)
                sha = connection.read_response()
                script.sha = sha.decode() if isinstance(sha, bytes) else str(sha)
                connection.send_command("EVALSHA", script.sha, 1, log, prefix, packed)
                raw = connection.read_response()
        except redis.ResponseError:
            raise  # the connection is in step: a reply was read
        except BaseException:
            connection.disconnect()  # a reply may be pending: reconnect on the next send
            raise
        return cast(list[Any], msgspec.msgpack.decode(cast(bytes, raw)))

    # -- turns -----------------------------------------------------------------------
    def commit(self, payload: list[Any]) -> list[Any]:
        if not self.enabled:
            return cast(list[Any], self._send_via_client([payload])[0])
        if os.getpid() != self._pid:  # forked: the lanes' sockets belong to the parent
            self._after_fork()
        save = _Save(payload)
        with self._mutex:
            if self._free:
                save.lane = self._free.pop()
            else:
                self._queue.append(save)
        if save.lane is None:
            try:
                save.signal.acquire()
            except BaseException:
                self._abandon(save)
                raise
        if not save.done:  # a lane is ours: lead a batch
            self._lead(save)
        if save.error is not None:
            raise save.error
        assert save.result is not None
        return save.result

    def _lead(self, first: _Save) -> None:
        lane = first.lane
        assert lane is not None
        first.lane = None
        batch = [first]
        try:
            if len(self._free) < self._lanes - 1:  # Redis is busy with another batch: let others join
                time.sleep(0)
            with self._mutex:
                batch = [first, *self._queue[: self._max_batch - 1]]
                del self._queue[: self._max_batch - 1]
            results = self._send(lane, [s.payload for s in batch])
            if len(results) != len(batch):
                raise PersistenceError(f"append script answered {len(results)} results for {len(batch)} saves")
            for s, r in zip(batch, results, strict=True):
                s.result = r
        except BaseException as error:  # every save of the batch learns of the failure
            for s in batch:
                s.error = error
        finally:
            self._pass_on(lane)
            for s in batch:
                s.done = True
                if s is not first:
                    s.signal.release()

    def _pass_on(self, lane: _Lane) -> None:
        """Hand the lane to the oldest queued save, or free it."""
        with self._mutex:
            if not self._queue:
                self._free.append(lane)
                return
            successor = self._queue.pop(0)
            successor.lane = lane
        successor.signal.release()

    def _abandon(self, save: _Save) -> None:
        """The waiting thread was interrupted: take its save out of the queue, or pass
        on the lane it was just handed (a batch already under way completes anyway)."""
        lane = None
        with self._mutex:
            if save in self._queue:
                self._queue.remove(save)
            elif save.lane is not None and not save.done:
                lane, save.lane = save.lane, None
        if lane is not None:
            self._pass_on(lane)

    def _after_fork(self) -> None:
        self._pid = os.getpid()
        self._mutex = threading.Lock()
        self._queue = []
        self._free = [_Lane() for _ in range(self._lanes)]


StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


def xrange(client: redis.Redis, key: str, lo: str, hi: str, count: int | None, *, desc: bool = False) -> StreamEntries:
    """XRANGE / XREVRANGE with the reply typed as our clients configure it (bytes)."""
    if desc:
        return cast(StreamEntries, client.xrevrange(key, hi, lo, count=count))
    return cast(StreamEntries, client.xrange(key, lo, hi, count=count))


#: log entries as the server sends them: (entry id, [field, value, field, value, ...])
RawEntries = list[tuple[bytes, list[bytes]]]

#: per client, a client on the same connection pool that leaves XRANGE's reply as hiredis built it
_raw_clients: weakref.WeakKeyDictionary[redis.Redis, redis.Redis] = weakref.WeakKeyDictionary()


def raw_reader(client: redis.Redis, key: str) -> redis.Redis:
    """A client on the connection pool of the server holding ``key`` that leaves XRANGE's
    reply as hiredis built it (``parse_stream_list`` builds a dict per entry, about 3 us
    each: a third of reading and decoding an event). For the bulk readers (catch-up,
    replay), which take a few fields by position."""
    server = node_client(client, key)
    raw = _raw_clients.get(server)
    if raw is None:
        raw = _raw_clients[server] = redis.Redis(connection_pool=server.connection_pool)
        raw.set_response_callback("XRANGE", lambda reply, **_: reply)
    return raw


def _stored_events(
    client: redis.Redis, keys: ShardKeys, originator_id: UUID | str, flat: list[Any]
) -> list[StoredEvent]:
    """The select script's flat reply (version, topic, state, ...) as stored events; an
    event no longer in the log (topic nil, state = its position) is read from the archive."""
    archived = [i for i in range(0, len(flat), 3) if flat[i + 1] is None]
    if archived:
        from events.archive import entries_at  # here: events.archive builds on this module

        found = entries_at(client, keys, [int(flat[i + 2]) for i in archived])
        for i in archived:
            fields = found.get(int(flat[i + 2]))
            if fields is None:
                raise PersistenceError(f"log entry {int(flat[i + 2])} of {originator_id} is missing")
            flat[i + 1], flat[i + 2] = fields[b"t"], fields[b"s"]
    return [
        StoredEvent(
            originator_id=originator_id,
            originator_version=int(flat[i]),
            topic=flat[i + 1].decode(),
            state=flat[i + 2],
        )
        for i in range(0, len(flat), 3)
    ]


def _bounds(gt: int | None, lte: int | None) -> tuple[str, str]:
    return (f"({gt}" if gt is not None else "-inf", str(lte) if lte is not None else "+inf")


def _check_topic(topic: str) -> None:
    # The hash chain separates fields with newlines (see lua/append.lua).
    if "\n" in topic:
        raise ProgrammingError(f"topic contains a newline: {topic!r}")


class RedisAggregateRecorder(AggregateRecorder):
    """Plain aggregate recorder (no notification log), e.g. for snapshots.

    One stream per aggregate, entry id ``<version>-1``.
    """

    def __init__(self, conn: RedisConnection, purpose: str = "events") -> None:
        self.conn = conn
        self.purpose = purpose

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return None
        for e in stored_events:
            _check_topic(e.topic)
        prefix = self.conn.keys.plain_prefix + self.purpose + ":"
        packed = msgspec.msgpack.encode(
            [
                [encode_originator_id(e.originator_id), e.originator_version, e.topic, lua_bytes(e.state)]
                for e in stored_events
            ]
        )
        try:
            self.conn.append_plain(keys=[self.conn.keys.head], args=[prefix, packed])
        except redis.ResponseError as error:
            raise _script_error(error) from error
        return None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        key = self.conn.keys.plain_stream(self.purpose, originator_id)
        lo = f"{gt + 1}-1" if gt is not None else "-"
        hi = f"{lte}-1" if lte is not None else "+"
        entries = xrange(self.conn.client, key, lo, hi, limit, desc=desc)
        return [
            StoredEvent(
                originator_id=originator_id,
                originator_version=int(entry_id.split(b"-")[0]),
                topic=fields[b"t"].decode(),
                state=fields[b"s"],
            )
            for entry_id, fields in entries
        ]


def notification_from_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Notification:
    """A log stream entry as an eventsourcing Notification."""
    return Notification(
        id=int(entry_id.split(b"-")[0]),
        originator_id=decode_originator_id(fields[b"o"].decode()),
        originator_version=int(fields[b"v"]),
        topic=fields[b"t"].decode(),
        state=fields[b"s"],
    )


class RedisApplicationRecorder(ApplicationRecorder):
    """Application recorder on a shard's log stream."""

    def __init__(self, conn: RedisConnection, *, group_commit: bool = True) -> None:
        self.conn = conn
        self.keys = conn.keys
        self.committer = GroupCommitter(conn, enabled=group_commit)
        #: per thread: events read ahead by ``reading``, keyed by (originator id, gt)
        self._ahead = threading.local()

    # -- writing -----------------------------------------------------------------
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Write events atomically.

        Keyword arguments (all optional; ``Application.save(**kwargs)`` passes them on):
        ``tracking`` (Tracking), ``tenant`` (str), ``idempotency_key`` (str, scoped to
        the tenant), ``idempotency_digest`` (str: digest of the request body),
        ``receipt`` (str: what to answer a repeat with, e.g. JSON), ``expect`` (iterable of
        ``(originator_id, version)`` that must still be the head versions of aggregates
        read but not written, e.g. a project's outcome set), ``timers`` (iterable of
        ``(timer, due ms)`` for the shard's scheduler, see ``events.scheduler``), ``publish``
        (iterable of ``(stream, tenant, index of the event in this save, fields)``: an entry
        of a published stream, id = the event's log position, written by the same script).
        """
        tracking: Tracking | None = kwargs.get("tracking")
        if not stored_events and tracking is None:
            return []
        opts: dict[str, Any] = {}
        tenant: str | None = kwargs.get("tenant")
        if tenant is not None:
            opts["t"] = tenant
        idempotency_key: str | None = kwargs.get("idempotency_key")
        if idempotency_key is not None:
            if tenant is None:
                raise ProgrammingError("an idempotency key needs a tenant")
            opts["k"] = self.keys.idempotency(tenant, idempotency_key)
            opts["b"] = str(kwargs.get("idempotency_digest", ""))
            opts["r"] = str(kwargs.get("receipt", ""))
            opts["ttl"] = int(kwargs.get("idempotency_ttl", IDEMPOTENCY_TTL_SECONDS))
        expect: Iterable[tuple[UUID | str, int]] | None = kwargs.get("expect")
        if expect:
            opts["x"] = [[encode_originator_id(oid), version] for oid, version in expect]
        if tracking is not None:
            opts["tr"] = [tracking.application_name, tracking.notification_id]
        timers: Iterable[tuple[str, int]] | None = kwargs.get("timers")
        if timers:
            opts["z"] = [[member, due_ms] for member, due_ms in timers]
        publish: Iterable[tuple[str, str, int, dict[str, str]]] | None = kwargs.get("publish")
        if publish:
            # entries of published streams, each with the log position of the event it tells of
            opts["pub"] = [
                [self.keys.published(stream, pub_tenant), index + 1, *(x for kv in fields.items() for x in kv)]
                for stream, pub_tenant, index, fields in publish
            ]
        for e in stored_events:
            _check_topic(e.topic)
        events = [
            [encode_originator_id(e.originator_id), e.originator_version, e.topic, lua_bytes(e.state)]
            for e in stored_events
        ]
        result = self.committer.commit([events, opts])
        status = result[0]
        if status == "ok":
            return list(range(result[1], result[1] + result[2]))
        if status == "dup":
            raise AlreadyRecorded(result[1], result[2], result[3])
        _raise_for(status, result[1])
        return None  # unreachable

    def recorded_result(self, tenant: str, idempotency_key: str, digest: str) -> AlreadyRecorded | None:
        """What a previous save under this idempotency key recorded, if any.

        A read-only fast path that lets a repeat be answered before its command is
        decided again; the append script remains the atomic guard.
        """
        stored = self.conn.client.get(self.keys.idempotency(tenant, idempotency_key))
        if stored is None:
            return None
        first_digest, receipt, first, count = msgspec.msgpack.decode(cast(bytes, stored))
        if first_digest != digest:
            raise IdempotencyKeyReused("idempotency key reused with a different body")
        return AlreadyRecorded(receipt, first, count)

    # -- reading -------------------------------------------------------------------
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        ahead: dict[tuple[UUID | str, int | None], list[Any]] | None = getattr(self._ahead, "events", None)
        if ahead and lte is None and not desc and not limit and (originator_id, gt) in ahead:
            return _stored_events(self.conn.client, self.keys, originator_id, ahead.pop((originator_id, gt)))
        lo, hi = _bounds(gt, lte)
        try:
            flat = self.conn.select(
                keys=[self.keys.log, self.keys.aggregate_index(originator_id)],
                args=[
                    lo,
                    hi,
                    "desc" if desc else "asc",
                    limit or 0,
                    self.keys.prefix,
                    encode_originator_id(originator_id),
                ],
            )
        except redis.ResponseError as error:
            raise _script_error(error) from error
        return _stored_events(self.conn.client, self.keys, originator_id, flat)

    @contextmanager
    def reading(
        self, wanted: Sequence[tuple[UUID, int | None]], keys: Sequence[str | tuple[str, str]] = ()
    ) -> Iterator[list[Any]]:
        """Read several aggregates' events after the given versions in one round trip,
        ahead of the ``select_events(id, gt=version)`` calls that loading them will make
        in this thread. A call this did not foresee (another thread moved a cached
        aggregate meanwhile) reads from Redis as usual; what is not asked for is dropped.
        Yields the values of ``keys`` (plain GETs in the same round trip: a data subject's key;
        a (hash, field) pair is an HGET)."""
        try:
            results = self._select_many(wanted, keys)
        except redis.exceptions.NoScriptError:  # nothing ran: load the script and go again
            node_client(self.conn.client, self.keys.log).script_load(self.conn.select.script)
            results = self._select_many(wanted, keys)
        except redis.ResponseError as error:
            raise _script_error(error) from error
        self._ahead.events = dict(zip(wanted, results[: len(wanted)], strict=True))
        try:
            yield results[len(wanted) :]
        finally:
            self._ahead.events = None

    def _select_many(
        self, wanted: Sequence[tuple[UUID, int | None]], keys: Sequence[str | tuple[str, str]] = ()
    ) -> list[Any]:
        # EVALSHA by hand: a pipeline running a Script object first asks SCRIPT EXISTS,
        # a round trip of its own. On the shard's server: a cluster pipeline refuses EVALSHA.
        server = node_client(self.conn.client, self.keys.log)
        pipe = server.pipeline(transaction=False)
        for originator_id, gt in wanted:
            lo, hi = _bounds(gt, None)
            index = self.keys.aggregate_index(originator_id)
            oid = encode_originator_id(originator_id)
            pipe.evalsha(self.conn.select.sha, 2, self.keys.log, index, lo, hi, "asc", 0, self.keys.prefix, oid)
        # plain values read along (a data subject's key, a tenant's secret: a (hash, field)
        # pair is an HGET); on a cluster they live in slots of their own, read apart
        together = server is self.conn.client
        for key in keys if together else ():
            _read_value(pipe, key)
        results = pipe.execute()
        return results if together else [*results, *(_read_value(self.conn.client, key) for key in keys)]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        # archive then Redis (docs/archive.md): positions already archived are read from the files
        from events.archive import read_log  # here: events.archive builds on this module

        after = (start or 1) - 1 if inclusive_of_start else (start or 0)
        wanted = set(topics)
        found: list[Notification] = []
        while len(found) < limit:
            want = limit - len(found)
            count = want if not wanted else max(want, 500)
            entries = read_log(self.conn.client, self.keys, after, stop, count)
            for entry_id, fields in entries:
                if wanted and fields[b"t"].decode() not in wanted:
                    continue
                found.append(notification_from_entry(entry_id, fields))
                if len(found) == limit:
                    break
            if len(entries) < count:
                break
            after = int(entries[-1][0].split(b"-")[0])
        return found

    def max_notification_id(self) -> int | None:
        value = self.conn.client.hget(self.keys.head, "n")
        return int(value) if value is not None else None

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        return RedisSubscription(self, gt=gt, topics=topics)


def _read_value(client: Any, key: str | tuple[str, str]) -> Any:
    """GET a key, or HGET a (hash, field) pair (on a client or a pipeline)."""
    return client.hget(*key) if isinstance(key, tuple) else client.get(key)


class RedisSubscription(Subscription[RedisApplicationRecorder]):
    """Iterates over the log, blocking on XREAD for new entries."""

    BLOCK_MS = 100  # how often a blocked read looks whether stop() was called

    def __init__(self, recorder: RedisApplicationRecorder, gt: int | None = None, topics: Sequence[str] = ()) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._buffer: list[Notification] = []
        self._wanted = set(topics)
        # A connection of its own: a blocking read must not hold a pooled one hostage.
        self._client = redis.Redis(connection_pool=node_client(recorder.conn.client, recorder.keys.log).connection_pool)

    def __next__(self) -> Notification:
        while not self._has_been_stopped:
            if self._buffer:
                return self._buffer.pop(0)
            last = f"{self._last_notification_id or 0}-0"
            reply = cast(
                list[tuple[bytes, StreamEntries]],
                self._client.xread({self._recorder.keys.log: last}, count=500, block=self.BLOCK_MS),
            )
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    notification = notification_from_entry(entry_id, fields)
                    self._last_notification_id = notification.id
                    if not self._wanted or notification.topic in self._wanted:
                        self._buffer.append(notification)
        raise StopIteration


class RedisTrackingRecorder(TrackingRecorder):
    """Tracking positions in the shard's tracking hash; positions only move forward."""

    def __init__(self, conn: RedisConnection) -> None:
        self.conn = conn

    def insert_tracking(self, tracking: Tracking) -> None:
        try:
            self.conn.track(
                keys=[self.conn.keys.tracking],
                args=[tracking.application_name, tracking.notification_id],
            )
        except redis.ResponseError as error:
            raise _script_error(error) from error

    def max_tracking_id(self, application_name: str) -> int | None:
        value = self.conn.client.hget(self.conn.keys.tracking, application_name)
        return int(value) if value is not None else None


class RedisProcessRecorder(RedisApplicationRecorder, RedisTrackingRecorder, ProcessRecorder):
    """Events and the tracking position of what caused them, in one atomic write."""

    def __init__(self, conn: RedisConnection, *, group_commit: bool = True) -> None:
        RedisApplicationRecorder.__init__(self, conn, group_commit=group_commit)


class RedisFactory(InfrastructureFactory[RedisTrackingRecorder]):
    """Constructs recorders on one shard of a Redis server (or cluster).

    Environment: ``REDIS_URL`` (default ``redis://localhost:6379/0``), ``REDIS_SHARD``
    (default ``s00``), ``REDIS_KEY_PREFIX`` (default ``ol``), ``REDIS_GROUP_COMMIT``
    (default yes; "no" sends one script call per save).
    """

    REDIS_URL = "REDIS_URL"
    REDIS_GROUP_COMMIT = "REDIS_GROUP_COMMIT"
    REDIS_SHARD = "REDIS_SHARD"
    REDIS_KEY_PREFIX = "REDIS_KEY_PREFIX"

    def __init__(self, env: Environment | Any | None) -> None:
        super().__init__(env)
        url = self.env.get(self.REDIS_URL) or "redis://localhost:6379/0"
        keys = ShardKeys(
            self.env.get(self.REDIS_SHARD) or DEFAULT_SHARD,
            self.env.get(self.REDIS_KEY_PREFIX) or DEFAULT_PREFIX,
        )
        self.client = redis_client(url)
        self.connection = RedisConnection(self.client, keys)
        self.group_commit = strtobool(self.env.get(self.REDIS_GROUP_COMMIT) or "yes")

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return RedisAggregateRecorder(self.connection, purpose)

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls: type[RedisApplicationRecorder] = resolve_topic(topic) if topic else RedisApplicationRecorder
        return cls(self.connection, group_commit=self.group_commit)

    def tracking_recorder(
        self, tracking_recorder_class: type[RedisTrackingRecorder] | None = None
    ) -> RedisTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = resolve_topic(topic) if topic else RedisTrackingRecorder
        assert tracking_recorder_class is not None
        return tracking_recorder_class(self.connection)

    def process_recorder(self) -> ProcessRecorder:
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls: type[RedisProcessRecorder] = resolve_topic(topic) if topic else RedisProcessRecorder
        return cls(self.connection, group_commit=self.group_commit)

    def close(self) -> None:
        self.client.close()


def wait_for_redis(client: redis.Redis, timeout: float = 10.0) -> None:
    """Block until the server answers PING (used at start-up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
