"""What every read model shares: catch up from the log, commit view and position together.

A view reads the shard log from its own tracking position (``XRANGE`` in batches),
turns events into hash increments with a pure function, and applies them with one
script that also moves the position -- only if the position is still the one it read.
A view that needs state to attribute later events (a stateful view, e.g. the outcome
mix) overrides ``changes``: it reads its state after the position, and writes it back
in the same script, so a runner that lost a race writes neither state nor counters.
Delivery (the FastStream consumer group) just says "there is more"; replaying any
delivery, or losing one, changes nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import cast

import msgspec
import redis

from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.store import StreamEntries, xrange

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


def _increments(increments: list[Increment]) -> bytes:
    """Summed per (key, field) first: a batch moves many interactions through the same
    counters, and one HINCRBY of the sum leaves the same hash (a zero sum is no write: the
    script removes a field that reaches 0 either way)."""
    summed: dict[tuple[str, str], int] = defaultdict(int)
    for key, name, n in increments:
        summed[(key, name)] += n
    return msgspec.msgpack.encode([(key, name, n) for (key, name), n in summed.items() if n])


@dataclass
class Batch:
    """Log entries after some position, read and decoded once (for one view or several)."""

    #: notification id of each event
    ids: list[int]
    events: list[DomainEvent]

    @property
    def last(self) -> int:
        return self.ids[-1]

    def after(self, position: int) -> list[DomainEvent]:
        return self.events[bisect_right(self.ids, position) :]


def read_batch(
    client: redis.Redis, keys: ShardKeys, mapper: StructMapper, position: int, until: int | None, count: int
) -> Batch | None:
    """Up to ``count`` events after ``position`` (and up to ``until``); None at the end.
    Personal fields stay sealed: no read model shows them."""
    hi = f"{until}-0" if until is not None else "+"
    entries: StreamEntries = xrange(client, keys.log, f"{position + 1}-0", hi, count)
    if not entries:
        return None
    return Batch(
        ids=[int(entry_id.split(b"-")[0]) for entry_id, _ in entries],
        events=[mapper.decode(fields[b"t"].decode(), fields[b"s"], unseal=False) for _, fields in entries],
    )


def catch_up_together(
    views: Sequence[View], until: int, observe: Mapping[str, Callable[[DomainEvent], None]] | None = None
) -> int:
    """Catch the views of one shard up to ``until``, reading and decoding each batch of the
    log once for all of them (each applies the part after its own position); returns how
    many events were read. ``observe`` maps a view's name to what sees its applied events."""
    if not views:
        return 0
    first = views[0]
    read = 0
    while True:
        raw = first.client.hmget(first.keys.tracking, [v.name for v in views])
        positions = [int(p) if p is not None else 0 for p in cast(list[bytes | None], raw)]
        lowest = min(positions)
        if lowest >= until:
            return read
        batch = read_batch(first.client, first.keys, first.mapper, lowest, until, first.batch_size)
        if batch is None:
            return read
        read += len(batch.events)
        for view, position in zip(views, positions, strict=True):
            if position < batch.last:
                view.commit(position, batch, (observe or {}).get(view.name))
        # a view whose commit lost a race is behind: the next round reads from its position


class View:
    def __init__(
        self,
        name: str,
        function: ViewFunction | None,
        client: redis.Redis,
        keys: ShardKeys,
        mapper: StructMapper,
        batch_size: int = 1000,
    ) -> None:
        self.name = name
        self.function = function
        self.client = client
        self.keys = keys
        self.mapper = mapper
        self.batch_size = batch_size
        script = resources.files("projections").joinpath("lua", "apply_view.lua").read_text(encoding="utf-8")
        self._apply = client.register_script(script)

    def position(self) -> int:
        value = self.client.hget(self.keys.tracking, self.name)
        return int(cast(bytes, value)) if value is not None else 0

    def catch_up(self, until: int | None = None, observe: Callable[[DomainEvent], None] | None = None) -> int:
        """Apply every event after the view's position (up to ``until``); returns how many.

        ``observe`` sees each event of a batch this call applied (after its commit).
        """
        applied = 0
        while True:
            position = self.position()
            if until is not None and position >= until:
                return applied
            batch = read_batch(self.client, self.keys, self.mapper, position, until, self.batch_size)
            if batch is None:
                return applied
            applied += self.commit(position, batch, observe)
            # 0: another runner moved the position first; read it again

    def commit(self, position: int, batch: Batch, observe: Callable[[DomainEvent], None] | None = None) -> int:
        """Apply the batch's events after ``position`` and move the position to the batch's
        end, in one script, if the position is still ``position``; returns how many."""
        events = batch.after(position)
        changes = self.changes(events)
        args: list[str | bytes] = [self.name, str(position), str(batch.last), _increments(changes.increments)]
        if changes.assignments or changes.scores:
            args.append(msgspec.msgpack.encode(changes.assignments))
        if changes.scores:
            args.append(msgspec.msgpack.encode(changes.scores))
        if not self._apply(keys=[self.keys.tracking], args=args):
            return 0
        for event in events if observe else ():
            observe(event)  # type: ignore[misc]
        return len(events)

    def changes(self, events: Sequence[DomainEvent]) -> Changes:
        """The batch's changes; called after the position was read (a stateful view reads
        its state here, and the script's position check makes that read consistent)."""
        if self.function is None:
            raise NotImplementedError(f"view {self.name!r} has no function and no changes()")
        return Changes(increments=[i for event in events for i in self.function(self.keys, event)])

    def drop(self) -> None:
        """Delete the view's keys and its position (a rebuild starts from 0)."""
        for key in self.client.scan_iter(match=self.keys.view(self.name) + "*", count=1000):
            self.client.delete(key)
        self.client.hdel(self.keys.tracking, self.name)
