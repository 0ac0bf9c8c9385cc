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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import cast

import msgspec
import redis

from events.archive import read_log
from events.codec import DomainEvent, StructMapper
from events.keys import ShardKeys
from events.store import StreamEntries

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
        script = resources.files("projections").joinpath("lua", "apply_view.lua").read_text(encoding="utf-8")
        self._apply = client.register_script(script)

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
            entries: StreamEntries = read_log(self.client, self.keys, position, until, self.batch_size)
            if not entries:
                return applied
            events = [
                self.mapper.decode(fields[b"t"].decode(), fields[b"s"])
                for _, fields in entries
                if self.topics is None or fields[b"t"] in self.topics
            ]
            last = int(entries[-1][0].split(b"-")[0])
            done = self.commit(position, last, events)
            if done == 1:
                applied += len(entries)
                for event in events if observe else ():
                    observe(event)  # type: ignore[misc]
                if on_batch is not None:
                    on_batch(len(entries), last)
            elif done == -1:
                self.resolve()  # switched over by a replay: go on in the new generation
            # else: another runner moved the position first; read it again

    def reads(self, event: DomainEvent) -> bool:
        """Whether the view reads events of this type (``topics``)."""
        return self.topics is None or type(event).type_name.encode() in self.topics

    def commit(self, position: int, last: int, events: Sequence[DomainEvent]) -> int:
        """Apply the events of the log after ``position`` up to ``last`` (those the view reads)
        and move the position to ``last``, if it is still ``position``: 1 when applied, 0 when
        the position moved, -1 when the generation is no longer current (apply_view.lua)."""
        changes = self.changes(events)
        keys = [self.keys.tracking, self.keys.view_generations]
        return int(self._apply(keys=keys, args=self._args(position, last, changes)))

    def _args(self, position: int, last: int, changes: Changes) -> list[str | bytes]:
        args: list[str | bytes] = [
            self.keys.view_position(self.name),
            str(position),
            str(last),
            msgspec.msgpack.encode(changes.increments),
            msgspec.msgpack.encode(changes.assignments),
            msgspec.msgpack.encode(changes.scores),
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
        self.resolve()
        delete_keys(self.client, self.keys.view(self.name))
        self.client.hdel(self.keys.tracking, self.keys.view_position(self.name))


def delete_keys(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix`` (one view generation's keys); returns how many."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            deleted += int(client.unlink(*batch))
            batch = []
    if batch:
        deleted += int(client.unlink(*batch))
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
