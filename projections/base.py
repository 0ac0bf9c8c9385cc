"""What every read model shares: catch up from the log, commit view and position together.

A view reads the shard log from its own tracking position (``XRANGE`` in batches),
turns events into hash increments with a pure function, and applies them with one
script that also moves the position -- only if the position is still the one it read.
Delivery (the FastStream consumer group) just says "there is more"; replaying any
delivery, or losing one, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import resources
from typing import cast

import msgspec
import redis

from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.store import StreamEntries, xrange

#: (hash key, field, increment)
Increment = tuple[str, str, int]
#: A view's pure function: one event -> the increments it causes
ViewFunction = Callable[[ShardKeys, DomainEvent], Iterable[Increment]]


class View:
    def __init__(
        self,
        name: str,
        function: ViewFunction,
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
            increments: list[Increment] = []
            events = [self.mapper.decode(fields[b"t"].decode(), fields[b"s"]) for _, fields in entries]
            for event in events:
                increments.extend(self.function(self.keys, event))
            last = int(entries[-1][0].split(b"-")[0])
            done = self._apply(
                keys=[self.keys.tracking],
                args=[self.name, str(position), str(last), msgspec.msgpack.encode(increments)],
            )
            if done:
                applied += len(entries)
                for event in events if observe else ():
                    observe(event)  # type: ignore[misc]
            # else: another runner moved the position first; read it again

    def drop(self) -> None:
        """Delete the view's keys and its position (a rebuild starts from 0)."""
        for key in self.client.scan_iter(match=self.keys.view(self.name) + "*", count=1000):
            self.client.delete(key)
        self.client.hdel(self.keys.tracking, self.name)
