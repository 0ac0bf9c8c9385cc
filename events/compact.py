"""Compact index entries of wholly archived aggregates (docs/archive.md, "Memory").

Each aggregate has a version index, the sorted set ``a:<id>`` (version -> log position),
and once its newest event is archived an ``archived-heads`` entry (its head hash, which the
append script chains the next event to). For an archived call that was about 350 bytes of
Redis memory, more than a third of what a history archived but for its last day kept.

Once every event of an aggregate is archived, the archiver (``compact_archived``) replaces
both by one entry of a small hash bucket ``ah:<first d hex digits of sha1(id)>``: the head
hash (20 bytes) and the positions as varints (first version, first position, distances),
~30 bytes. Buckets stay listpack-encoded (no per-field allocations): a value fits Redis's
default ``hash-max-listpack-value`` (64 bytes; aggregates whose entry would not keep their
set) and a depth's buckets take ``FILL`` entries each on average before the next depth's,
sixteen times as many, take the new ones (a reader looks at depths 1..``archived.depth``;
far below ``hash-max-listpack-entries``, 128). An aggregate is in one form only: the
archiver deletes the set as it writes the entry, and the append script, given a new event
for a compact aggregate (a correction of an old call), writes its versions back to the set
and deletes the entry. The Lua side is ``lua/compact_index.lua``, prepended to the scripts
that read an index (append, select, ``verify``'s) and to ``aggregate_index``'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import cast

import redis

from events.connect import node_client
from events.keys import ShardKeys
from events.store import register_lua

MAX_VALUE = 64  # Redis's default hash-max-listpack-value
FILL = 48  # mean entries per bucket before the next depth
BATCH = 500

Index = list[tuple[int, int]]  # (version, position), ascending


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def encode(head_hash: str, index: Index) -> bytes | None:
    """An aggregate's compact entry, or None when it has no such form (versions with gaps,
    or too many to fit a listpack value)."""
    versions = [v for v, _ in index]
    if not index or versions != list(range(versions[0], versions[0] + len(index))):
        return None
    positions = [p for _, p in index]
    steps = [positions[0], *(b - a for a, b in itertools.pairwise(positions))]
    value = bytes.fromhex(head_hash) + _varint(versions[0]) + b"".join(_varint(s) for s in steps)
    return value if len(value) <= MAX_VALUE else None


def decode(value: bytes) -> tuple[str, Index]:
    """The head hash and the index of a compact entry."""
    numbers, n, shift = [], 0, 0
    for b in value[20:]:
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            numbers.append(n)
            n, shift = 0, 0
    first, position, index = numbers[0], 0, []
    for i, step in enumerate(numbers[1:]):
        position += step
        index.append((first + i, position))
    return value[:20].hex(), index


def aggregate_indexes(client: redis.Redis, keys: ShardKeys, originators: Sequence[str]) -> list[Index]:
    """Each aggregate's index (stored originator ids), from its sorted set or its compact
    entry: one script call per batch, on the shard's server."""
    server = node_client(client, keys.log)
    script = register_lua(server, "events", "aggregate_index.lua", index=True)
    found: list[Index] = []
    for start in range(0, len(originators), BATCH):
        chunk = list(originators[start : start + BATCH])
        for flat in cast(list[list[bytes]], script(keys=[keys.log], args=[keys.prefix, *chunk])):
            found.append([(int(flat[i + 1]), int(flat[i])) for i in range(0, len(flat), 2)])
    return found


def aggregate_index(client: redis.Redis, keys: ShardKeys, originator: str) -> Index:
    return aggregate_indexes(client, keys, [originator])[0]


def compact_archived(client: redis.Redis, keys: ShardKeys) -> int:
    """Compact every aggregate whose archived head is its newest event (wholly archived);
    the rest stay listed in ``archived-heads`` for a later run. Idempotent: a rerun finds
    what a crash left."""
    server = node_client(client, keys.log)
    script = register_lua(server, "events", "compact.lua")
    heads = [(k.decode(), v.decode()) for k, v in server.hscan_iter(keys.archived_heads, count=1000)]
    done = 0
    for start in range(0, len(heads), BATCH):
        chunk = heads[start : start + BATCH]
        args: list[str | bytes | int] = []
        for (oid, head), index in zip(chunk, aggregate_indexes(server, keys, [o for o, _ in chunk]), strict=True):
            position, hash_ = head.split(" ")
            whole = index and index[-1][1] == int(position) and len(oid.encode()) <= MAX_VALUE
            entry = encode(hash_, index) if whole else None
            if entry is not None:
                args += [oid, position, len(index), entry]
        if args:
            done += int(cast(int, script(keys=[keys.log], args=[keys.prefix, FILL, *args])))
    return done
