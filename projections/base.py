"""What every read model shares: catch up from the log, commit view and position together.

A view reads the shard log from its own tracking position in batches (archive then Redis,
``events.archive.read_log``),
turns events into hash increments with a pure function, and applies them with one
script that also moves the position -- only if the position is still the one it read.
A view that needs state to attribute later events (a stateful view, e.g. the outcome
mix) overrides ``changes``: it reads its state after the position, and writes it back
in the same script, so a runner that lost a race writes neither state nor counters.
Delivery (the FastStream consumer group) just says "there is more"; replaying any
delivery, or losing one, changes nothing.

A view lives in a *generation* (``ShardKeys.view``): ``outcomes replay`` builds a fresh one
beside the current one and switches the shard's pointer (``ShardKeys.view_generations``).
A live view (``follow=True``) writes only while its generation is current -- the script
checks the pointer -- and on a refusal moves to the current one and its tracking position.
Queries resolve the pointer once (``current``) and then read one generation only.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import redis

from events.archive import read_log_raw
from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.store import RawEntries, register_lua

#: (hash key, field, increment)
Increment = tuple[str, str, int]
#: (hash key, field, value): HSET, or HDEL when the value is None
Assignment = tuple[str, str, str | None]
#: (sorted-set key, member, score as an integer string): ZADD, or ZREM when the score is None
Score = tuple[str, str, str | None]
#: A view's pure function: one event -> the increments it causes
ViewFunction = Callable[[ShardKeys, DomainEvent], Iterable[Increment]]


@dataclass
class Changes:
    """What one batch of events does to a view: written with the position, in one script."""

    increments: list[Increment] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    #: writes the view makes once per (key, field) in the batch, grouped per key as the script
    #: takes them (``increment_once``, ``set_once``, ``score_once``): not summed or
    #: deduplicated again, which is most of the cost of the lists above for views writing a
    #: row per interaction. Their keys are not among those of the lists above.
    hincrby: dict[str, list[str | int]] = field(default_factory=dict)
    hset: dict[str, list[str]] = field(default_factory=dict)
    hdel: dict[str, list[str]] = field(default_factory=dict)
    zadd: dict[str, list[str]] = field(default_factory=dict)
    zrem: dict[str, list[str]] = field(default_factory=dict)

    def increment_once(self, key: str, name: str, n: int) -> None:
        """HINCRBY of a field the batch moves no other time (a field reaching 0 is removed)."""
        _group(self.hincrby, key).extend((name, n))

    def set_once(self, key: str, name: str, value: str | None) -> None:
        """HSET (HDEL when ``value`` is None) of a field the batch writes no other time."""
        if value is None:
            _group(self.hdel, key).append(name)
        else:
            _group(self.hset, key).extend((name, value))

    def score_once(self, key: str, member: str, score: str | None) -> None:
        """ZADD (ZREM when ``score`` is None) of a member the batch writes no other time."""
        if score is None:
            _group(self.zrem, key).append(member)
        else:
            _group(self.zadd, key).extend((score, member))


def _group(groups: dict[str, list[Any]], key: str) -> list[Any]:
    """The writes to ``key`` so far, ``[key, ...]`` (what the script takes per key)."""
    found = groups.get(key)
    if found is None:
        found = groups[key] = [key]
    return found


def _increments(increments: list[Increment]) -> list[list[str | int]]:
    """Summed per (key, field) first: a batch moves many interactions through the same
    counters, and one HINCRBY of the sum leaves the same hash (a zero sum is no write: the
    script removes a field that reaches 0 either way); then grouped per key for the script,
    ``[key, field, n, field, n, ...]``."""
    summed: dict[tuple[str, str], int] = defaultdict(int)
    for key, name, n in increments:
        summed[(key, name)] += n
    out: dict[str, list[str | int]] = {}
    for (key, name), n in summed.items():
        if n:
            out.setdefault(key, [key]).extend((name, n))
    return list(out.values())


def _last_writes(writes: list[Assignment] | list[Score], value_first: bool) -> tuple[list[list[str]], list[list[str]]]:
    """Hash or sorted-set writes as the script takes them, grouped per key: the sets
    (``[key, field, value, ...]``, or ``[key, score, member, ...]`` when ``value_first``)
    and the removals (``[key, field, ...]``). Only the last write of each (key, field)
    counts: applied in order, the earlier ones would be overwritten anyway."""
    last: dict[tuple[str, str], str | None] = {}
    for key, name, value in writes:
        last[(key, name)] = value  # each (key, field) once: their order no longer matters
    sets: dict[str, list[str]] = {}
    removals: dict[str, list[str]] = {}
    for (key, name), value in last.items():
        if value is None:
            removals.setdefault(key, [key]).append(name)
        else:
            sets.setdefault(key, [key]).extend((value, name) if value_first else (name, value))
    return list(sets.values()), list(removals.values())


@dataclass
class Batch:
    """Log entries after some position, read once and decoded once (for one view or several)."""

    #: notification id of every entry read
    ids: list[int]
    #: the notification id of each decoded entry (those of the types asked for), in order
    positions: list[int]
    #: the decoded events, in the same order
    events: list[DomainEvent]
    #: the stored type name of each decoded entry (what a view's ``topics`` name), in order
    types: list[bytes]

    @property
    def last(self) -> int:
        return self.ids[-1]

    def after(self, position: int, topics: frozenset[bytes] | None = None) -> list[DomainEvent]:
        """The decoded events after ``position`` (of the ``topics`` only, if given): every
        view of a batch filters it, so by the type name read with the entry, not per event."""
        first = bisect_right(self.positions, position)
        if topics is None:
            return self.events[first:]
        kept = zip(self.types[first:], self.events[first:], strict=True)
        return [event for name, event in kept if name in topics]

    def count_after(self, position: int) -> int:
        """How many entries (decoded or not) lie after ``position``."""
        return len(self.ids) - bisect_right(self.ids, position)


def read_batch(view: View, position: int, until: int | None, topics: frozenset[bytes] | None = None) -> Batch | None:
    """Up to the view's batch size of entries after ``position`` (and up to ``until``),
    decoding only the ``topics`` (None: all); None at the end. Personal fields stay sealed:
    no read model shows them, and no subject key is read."""
    return decode_batch(view, read_log_raw(view.client, view.keys, position, until, view.batch_size), topics)


def decode_batch(view: View, entries: RawEntries, topics: frozenset[bytes] | None) -> Batch | None:
    """``read_batch``'s decoding of entries read (archive then Redis, events/archive.py,
    each entry's fields as the server sent them); None when there are none."""
    if not entries:
        return None
    ids = [int(entry_id.split(b"-", 1)[0]) for entry_id, _ in entries]
    kept = [(n, *_type_and_state(fields)) for n, (_, fields) in zip(ids, entries, strict=True)]
    if topics is not None:
        kept = [entry for entry in kept if entry[1] in topics]
    decode = view.mapper.decode
    events = [decode(name.decode(), state, unseal=False) for _, name, state in kept]
    return Batch(ids, [n for n, _, _ in kept], events, [name for _, name, _ in kept])


def _type_and_state(fields: list[bytes]) -> tuple[bytes, bytes]:
    """An entry's stored type name and state: fields 3 and 4 as the append script writes
    them (``o v t s h c [n]``), else looked up by name."""
    if fields[4] == b"t" and fields[6] == b"s":
        return fields[5], fields[7]
    named = dict(zip(fields[::2], fields[1::2], strict=True))
    return named[b"t"], named[b"s"]


def catch_up_together(
    views: Sequence[View],
    until: int | None,
    observe: Mapping[str, Callable[[DomainEvent], None]] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    *,
    pipelined: bool = False,
) -> int:
    """Catch the views of one shard up to ``until`` (None: the end of the log), reading and
    decoding each batch once for all of them (each applies the part after its own
    position); returns how many entries were read. ``observe`` maps a view's name to what
    sees its applied events; ``on_batch`` gets (entries read, last position) per batch.
    ``pipelined`` (without ``observe``, not on a cluster client): ``_catch_up_pipelined``."""
    if not views:
        return 0
    first = views[0]
    each = [v.topics for v in views]
    wanted = None if any(t is None for t in each) else frozenset().union(*(t for t in each if t is not None))
    for view in views:
        view.resolve()
    if pipelined and observe is None and isinstance(first.client, redis.Redis):
        return _catch_up_pipelined(views, until, wanted, on_batch)
    read = 0
    while True:
        positions = tracking_positions(views)
        lowest = min(positions)
        if until is not None and lowest >= until:
            return read
        batch = read_batch(first, lowest, until, wanted)
        if batch is None:
            return read
        read += len(batch.ids)
        for view, position in zip(views, positions, strict=True):
            if position < batch.last:
                view.apply(position, batch, (observe or {}).get(view.name))
        if on_batch is not None:
            on_batch(len(batch.ids), batch.last)
        # a view whose commit lost a race is behind: the next round reads from its position


def _catch_up_pipelined(
    views: Sequence[View],
    until: int | None,
    wanted: frozenset[bytes] | None,
    on_batch: Callable[[int, int], None] | None,
) -> int:
    """``catch_up_together`` with Redis working while Python does: each view's commit script
    is sent without waiting for its reply (``View.pipelined``), and its reply is read only
    before that view sends the next one or reads its stored state (``View.settle``); the
    next batch is read by a thread while the views compute this one. A refused commit (the
    position moved) raises ``Refused`` there: the batch computed on the state the refused
    one assumed is dropped with it, and the round starts again from the positions in
    Redis, as after a refusal in the plain loop."""
    first = views[0]
    read = 0
    for view in views:
        view.pipelined = True
    # The read of the next batch waits in the server behind this batch's commits; in a thread
    # it waits there while the views compute (it takes the GIL only to parse the reply).
    ahead = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
    # It reads the reply 64 KB at a time, and after each read waits for the GIL: at the
    # default 5 ms switch interval a batch's reply could take longer than the views' work.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, READ_AHEAD_SWITCH))
    # No collector during the pass: it found 382 objects in cycles after 1M events, and cost
    # 6-8% of the pass (1.1 s at 1M events, 4.8 s at 3M: each young collection walks the
    # batch's containers; measured with gc.callbacks, 2026-12-04)
    collecting = gc.isenabled()
    gc.disable()

    def read_after(position: int) -> Future[RawEntries]:
        return ahead.submit(read_log_raw, first.client, first.keys, position, until, first.batch_size)

    try:
        while True:  # from the stored positions: at the start, and after a refusal
            positions = tracking_positions(views)
            lowest = min(positions)
            if until is not None and lowest >= until:
                return read
            raw = read_log_raw(first.client, first.keys, lowest, until, first.batch_size)
            try:
                while (batch := decode_batch(first, raw, wanted)) is not None:
                    read += len(batch.ids)
                    more = read_after(batch.last) if until is None or batch.last < until else None
                    if on_batch is not None:
                        on_batch(len(batch.ids), batch.last)  # before the commits: a sync point would stall them
                    for i, view in enumerate(views):
                        if positions[i] < batch.last:
                            view.apply(positions[i], batch)
                            positions[i] = batch.last
                    raw = more.result() if more is not None else []
                for view in views:
                    view.settle()
                return read
            except Refused:
                for view in views:
                    with contextlib.suppress(Refused):
                        view.settle()
    finally:
        ahead.shutdown(wait=True)  # a read still running ends on its own (it writes nothing)
        sys.setswitchinterval(interval)
        if collecting:
            # what the pass allocated and kept (the views' memory) out of the collector's
            # walks: the first collection after it would walk them all (2.7 s after 3M events);
            # freed by reference counting when dropped, as before
            gc.freeze()
            gc.enable()
        for view in views:
            view.pipelined = False
            view.abandon()


def tracking_positions(views: Sequence[View]) -> list[int]:
    """Each view's tracking position (0 for one never committed), in one round trip."""
    first = views[0]
    fields = [v.keys.view_position(v.name) for v in views]
    raw = cast(list[bytes | None], first.client.hmget(first.keys.tracking, fields))
    return [int(p) if p is not None else 0 for p in raw]


#: seconds a thread holds the GIL while another waits for it, during a pipelined catch-up
READ_AHEAD_SWITCH = 0.0005


class Refused(Exception):
    """A pipelined commit was refused (the position moved, or the generation is no longer
    current): the state later batches were computed from is not the view's."""


class View:
    def __init__(
        self,
        name: str,
        function: ViewFunction | None,
        client: redis.Redis,
        keys: ShardKeys,
        mapper: StructMapper,
        batch_size: int = 1000,
        *,
        follow: bool = True,
        topics: frozenset[str] | None = None,
    ) -> None:
        self.name = name
        #: the event type names the view reads (None: all); others are not even decoded
        self.topics = frozenset(t.encode() for t in topics) if topics is not None else None
        #: a live view follows the current generation; a replay's builds its own
        self.follow = follow
        self.function = function
        self.client = client
        self.keys = keys
        self.mapper = mapper
        self.batch_size = batch_size
        self._apply = register_lua(client, "projections", "apply_view.lua")
        #: (generation's key prefix, position) this process's last commit of the view left
        self._committed: tuple[str, int] | None = None
        #: commits are sent without waiting for the reply (``_catch_up_pipelined``)
        self.pipelined = False
        #: the commit sent and not yet answered: its connection, keys and arguments
        self._pending: tuple[redis.connection.Connection, list[str], list[str | bytes]] | None = None

    def position(self) -> int:
        value = self.client.hget(self.keys.tracking, self.keys.view_position(self.name))
        return int(cast(bytes, value)) if value is not None else 0

    def resolve(self) -> None:
        """A live view moves to its current generation (a replay may have switched it)."""
        if self.follow:
            self.keys = self.keys.with_generation(self.name, generation(self.client, self.keys, self.name))

    def catch_up(
        self,
        until: int | None = None,
        observe: Callable[[DomainEvent], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> int:
        """Apply every event after the view's position (up to ``until``); returns how many.

        ``observe`` sees each event of a batch this call applied (after its commit);
        ``on_batch`` gets (events applied, new position) after each committed batch.
        """
        applied = 0
        self.resolve()
        while True:
            position = self.position()
            if until is not None and position >= until:
                return applied
            batch = read_batch(self, position, until, self.topics)
            if batch is None:
                return applied
            if self.apply(position, batch, observe):
                applied += batch.count_after(position)
                if on_batch is not None:
                    on_batch(batch.count_after(position), batch.last)
            # else: another runner moved the position first, or a replay switched the
            # generation (apply moved to it): read the position again

    def apply(self, position: int, batch: Batch, observe: Callable[[DomainEvent], None] | None = None) -> bool:
        """Commit the batch's events after ``position`` (those the view reads); whether it was
        applied. ``observe`` sees each applied event (after the commit)."""
        events = batch.after(position, self.topics)
        done = self.commit(position, batch.last, events)
        if done == -1:
            self.resolve()  # switched over by a replay: go on in the new generation
        if done != 1:
            return False
        for event in events if observe else ():
            observe(event)  # type: ignore[misc]
        return True

    def commit(self, position: int, last: int, events: Sequence[DomainEvent]) -> int:
        """Apply the events of the log after ``position`` up to ``last`` (those the view reads)
        and move the position to ``last``, if it is still ``position``: 1 when applied, 0 when
        the position moved, -1 when the generation is no longer current (apply_view.lua)."""
        prefix = self.keys.view(self.name)
        self._committed = None  # until this one is applied: changes() may fold into kept state
        changes = self.changes(events)
        keys = [self.keys.tracking, self.keys.view_generations]
        args = self._args(position, last, changes)
        if self.pipelined:
            self._send(keys, args)
            done = 1  # assumed: ``settle`` raises Refused and forgets the kept state if it was not
        else:
            done = int(self._apply(keys=keys, args=args))
        if done == 1:
            self._committed = (prefix, last)
        return done

    def _send(self, keys: list[str], args: list[str | bytes]) -> None:
        """Send the commit script on a connection of its own, not reading the reply (the
        previous commit's reply is read first: a batch is sent only on an applied one)."""
        self.settle()
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_command("EVALSHA", self._apply.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
        except BaseException:
            pool.release(connection)
            raise
        self._pending = (connection, keys, args)

    def settle(self) -> None:
        """Wait for the reply of the commit sent last, if any: called before the view sends
        the next one or reads its stored state (which that commit may write). Raises
        ``Refused`` if it was not applied, forgetting the state this process kept."""
        if self._pending is None:
            return
        connection, keys, args = self._pending
        self._pending = None
        try:
            done = int(connection.read_response())
        except redis.exceptions.NoScriptError:  # a server restarted since: nothing was run, run it now
            done = int(self._apply(keys=keys, args=args))
        except BaseException:
            connection.disconnect()  # type: ignore[no-untyped-call]  # its reply may still come: never reuse it
            raise
        finally:
            self.client.connection_pool.release(connection)
        if done != 1:
            self._committed = None
            if done == -1:
                self.resolve()  # switched over by a replay: go on in the new generation
            raise Refused(f"{self.name}: commit refused ({done})")

    def abandon(self) -> None:
        """Drop a commit left unanswered (after an error): its connection is closed, not reused,
        and nothing kept is trusted (it may not have been applied)."""
        if self._pending is not None:
            connection = self._pending[0]
            self._pending = None
            self._committed = None
            connection.disconnect()  # type: ignore[no-untyped-call]
            self.client.connection_pool.release(connection)

    def own_state_at(self, position: int) -> bool:
        """Whether this process's last commit left the view at ``position`` in its current
        generation: then no other runner wrote it since, and state a view keeps in memory
        from that commit (projections/outcome_mix.py, interactions.py) is still the view's."""
        return self._committed == (self.keys.view(self.name), position)

    def _args(self, position: int, last: int, changes: Changes) -> list[str | bytes]:
        encode = msgspec.msgpack.encode
        hset, hdel = _last_writes(changes.assignments, value_first=False)
        zadd, zrem = _last_writes(changes.scores, value_first=True)
        hset += changes.hset.values()
        hdel += changes.hdel.values()
        zadd += changes.zadd.values()
        zrem += changes.zrem.values()
        args: list[str | bytes] = [
            self.keys.view_position(self.name),
            str(position),
            str(last),
            encode(_increments(changes.increments) + list(changes.hincrby.values())),
            *(encode(writes) for writes in (hset, hdel, zadd, zrem)),
        ]
        if self.follow:
            args += [self.name, self.keys.generations.get(self.name, "")]
        return args

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        """The batch's changes; called after the position was read (a stateful view reads
        its state here, and the script's position check makes that read consistent)."""
        if self.function is None:
            raise NotImplementedError(f"view {self.name!r} has no function and no changes()")
        return Changes(increments=[i for event in events for i in self.function(self.keys, event)])

    def drop(self) -> None:
        """Delete the view's keys and its position (a rebuild starts from 0)."""
        self._committed = None
        self.resolve()
        delete_keys(self.client, self.keys.view(self.name))
        self.client.hdel(self.keys.tracking, self.keys.view_position(self.name))


def bulk_gc() -> None:
    """Tune the garbage collector for a process that catches views up in bulk (replay,
    rebuild, the projection worker). Each batch allocates thousands of short-lived objects;
    with the default thresholds the collector runs every 700 of them and now and then walks
    every object the process holds -- about 40% of reading and decoding a batch (measured,
    docs/benchmarks.md "Rebuild at 1M (readpath)"). The objects of start-up are frozen out
    of its walks and it runs about 100x less often; cycles are still collected."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def delete_keys(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix`` (one view generation's keys); returns how many."""
    return delete_keys_under(client, prefix, [prefix])[prefix]


def delete_keys_under(client: redis.Redis, common: str, prefixes: Sequence[str]) -> dict[str, int]:
    """Delete every key under each of ``prefixes`` (each one view generation's keys, all under
    ``common``) in one walk of the keyspace: a SCAN visits every key of the shard, the log's
    aggregates too, whatever it matches; returns how many per prefix."""
    deleted = dict.fromkeys(prefixes, 0)
    chosen = tuple(p.encode() for p in prefixes)
    found: list[bytes] = []

    def unlink() -> None:
        # UNLINKs of 1,000 keys each (none holds the server long), sent together: one round trip
        pipe = client.pipeline(transaction=False)
        for i in range(0, len(found), 1000):
            pipe.unlink(*found[i : i + 1000])
        pipe.execute()
        found.clear()

    for key in client.scan_iter(match=common + "*", count=10_000):
        if key.startswith(chosen):
            deleted[next(p for p, b in zip(prefixes, chosen, strict=True) if key.startswith(b))] += 1
            found.append(key)
            if len(found) == 100_000:
                unlink()
    if found:
        unlink()
    return deleted


def generation(client: redis.Redis, keys: ShardKeys, name: str) -> str:
    """The view's current generation ("" = the first, unnumbered one)."""
    value = client.hget(keys.view_generations, name)
    return cast(bytes, value).decode() if value is not None else ""


def current(client: redis.Redis, keys: ShardKeys) -> ShardKeys:
    """The shard's names with every view in its current generation: what a query reads
    (resolved once per query, so it never mixes generations)."""
    raw = cast(dict[bytes, bytes], client.hgetall(keys.view_generations))
    return ShardKeys(keys.shard, keys.base_prefix, {k.decode(): v.decode() for k, v in raw.items() if b"~" not in k})
