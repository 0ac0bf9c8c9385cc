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

from collections.abc import Callable, Iterable, Sequence
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
            hi = f"{until}-0" if until is not None else "+"
            entries: StreamEntries = xrange(self.client, self.keys.log, f"{position + 1}-0", hi, self.batch_size)
            if not entries:
                return applied
            events = [self.mapper.decode(fields[b"t"].decode(), fields[b"s"]) for _, fields in entries]
            changes = self.changes(events)
            last = int(entries[-1][0].split(b"-")[0])
            args: list[str | bytes] = [self.name, str(position), str(last), msgspec.msgpack.encode(changes.increments)]
            if changes.assignments or changes.scores:
                args.append(msgspec.msgpack.encode(changes.assignments))
            if changes.scores:
                args.append(msgspec.msgpack.encode(changes.scores))
            done = self._apply(keys=[self.keys.tracking], args=args)
            if done:
                applied += len(entries)
                for event in events if observe else ():
                    observe(event)  # type: ignore[misc]
            # else: another runner moved the position first; read it again

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
