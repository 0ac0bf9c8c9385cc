"""Read-model rows of archived interactions, moved from Redis to the archive tier
(docs/archive.md, "Read-model rows").

The interactions view and the outcome mix keep one row per interaction in a hash per tenant
(``i:<tenant>``: "<kind>:<id>" -> its record). Once every event of an interaction's
aggregate is archived, its rows are written to a Parquet file under the archive URL and
deleted from Redis. Readers ask Redis first and the archive for the rows Redis lacks
(``fill``); a row rewritten later (a correction of an old call) is in Redis again and
Redis's value wins. The interactions' index entries move with their rows, beside them
(projections/cold_index.py, which also picks the rows to move).

A retirement, per view and tenant: (1) the file is written (absent or complete), (2) it is
listed in the view's registry hash ``<view prefix>cold`` (file -> rows), (3) each row is
deleted only if it still holds the value written (retire_rows.lua). A crash leaves a file
that lists rows Redis still has (harmless: Redis wins) or an unlisted file (ignored); a
rerun retires what is left under a new file name. Registries and files belong to the view's
generation: a replay builds a new generation in Redis, whose rows are retired again by the
next archive run, and the old generation's files go with its keys (``remove_generation``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from events.archive import Archive, filesystem, parquet_bytes, shard_url, write_atomically
from events.codec import DomainEvent
from events.keys import ShardKeys
from events.store import register_lua
from events.types import CallStarted, ConversationStarted

SCHEMA = pa.schema([("tenant", pa.string()), ("member", pa.string()), ("value", pa.binary())])
DELETE_BATCH = 500
#: a rows file's index entries are in the file of this prefix and the same name beside it
INDEX_PREFIX = "index-"
#: rows are sorted by tenant and member: a lookup reads only the row groups whose member
#: range holds one it wants (small groups: a history page's rows are scattered over the file)
ROW_GROUP = 1000


def rows_key(keys: ShardKeys, view: str, tenant: str) -> str:
    return keys.view(view) + "i:" + tenant


def registry_key(keys: ShardKeys, view: str) -> str:
    return keys.view(view) + "cold"


def directory(url: str, keys: ShardKeys, view: str) -> str:
    return shard_url(url, keys) + "/views/" + keys.view_position(view)


def opened(events: Iterable[DomainEvent], about: Callable[[DomainEvent], Iterable[tuple[str, str]]]) -> set[str]:
    """ "<tenant> <kind>:<id>" of the interactions whose first event in the batch starts them:
    a start makes a row afresh, so these never need a look in the archive (the catch-up of
    new interactions stays off the archive)."""
    seen: set[str] = set()
    out: set[str] = set()
    for e in events:
        for kind, ident in about(e):
            member = f"{e.tenant_id} {kind}:{ident}"
            if member not in seen and isinstance(e, CallStarted | ConversationStarted):
                out.add(member)
            seen.add(member)
    return out


def fill(
    client: redis.Redis,
    keys: ShardKeys,
    view: str,
    tenant: str,
    members: Sequence[str],
    found: Sequence[bytes | None],
    fresh: AbstractSet[str] = frozenset(),
) -> list[bytes | None]:
    """``found`` (Redis's values of ``members``) with the rows Redis lacks taken from the
    archive, the newest file first (``fresh``: "<tenant> <member>" not to look for)."""
    out = list(found)
    if not members:  # the caller asked Redis for a placeholder
        return out
    missing = {
        m: n for n, (m, v) in enumerate(zip(members, found, strict=True)) if v is None and f"{tenant} {m}" not in fresh
    }
    if not missing:
        return out
    found_files = files(client, keys, view)
    if found_files is None:
        return out
    fs, root = filesystem(found_files[0])
    for name in found_files[1]:
        table = pq.read_table(
            f"{root}/{name}",
            filesystem=fs,
            columns=["member", "value"],
            filters=[("tenant", "=", tenant), ("member", "in", sorted(missing))],
        )
        for member, value in zip(table.column("member").to_pylist(), table.column("value").to_pylist(), strict=True):
            if member in missing:
                out[missing.pop(member)] = value
        if not missing:
            break
    return out


def retire(
    client: redis.Redis,
    keys: ShardKeys,
    url: str,
    view: str,
    tenant: str,
    rows: dict[str, bytes],
    *,
    indexes: Mapping[str, Sequence[str]] | None = None,
    index: pa.Table | None = None,
) -> int:
    """Move these rows of a tenant (member -> value as read from Redis) to one new file of
    the view's, with ``index`` (the rows' index entries, projections/cold_index.py) beside it;
    each row's entries in ``indexes[member]`` (index keys) leave Redis with it. Returns the
    number of rows deleted from Redis."""
    if not rows:
        return 0
    ordered = sorted(rows.items())
    table = pa.table(
        {"tenant": [tenant] * len(ordered), "member": [m for m, _ in ordered], "value": [v for _, v in ordered]},
        schema=SCHEMA,
    )
    # a new name each time: a rerun never overwrites rows an earlier run already deleted
    name = f"rows-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    fs, root = filesystem(directory(url, keys, view))
    if index is not None:
        write_atomically(fs, f"{root}/{INDEX_PREFIX}{name}", parquet_bytes(index, ROW_GROUP))
    write_atomically(fs, f"{root}/{name}", parquet_bytes(table, ROW_GROUP))
    client.hset(registry_key(keys, view), name, str(len(ordered)))
    script = register_lua(client, "projections", "retire_rows.lua")
    deleted, args = 0, cast(list[bytes | str | int], [])
    for n, (member, value) in enumerate(ordered, 1):
        also = (indexes or {}).get(member, ())
        args += [member, value, len(also), *also]
        if n % DELETE_BATCH == 0 or n == len(ordered):
            deleted += int(script(keys=[rows_key(keys, view, tenant)], args=args))
            args = []
    return deleted


def files(client: redis.Redis, keys: ShardKeys, view: str) -> tuple[str, list[str]] | None:
    """The directory of a view's archived rows and their files, newest first (None: none)."""
    names = cast(dict[bytes, bytes], client.hgetall(registry_key(keys, view)))
    archive = Archive.of(client, keys) if names else None
    if archive is None:
        return None
    return directory(archive.url, keys, view), sorted((n.decode() for n in names), reverse=True)


def remove_generation(client: redis.Redis, keys: ShardKeys, view: str) -> int:
    """Delete the rows files of the view's generation ``keys`` names (one a replay replaced:
    its keys, registry included, are deleted beside this); returns how many files."""
    archive = Archive.of(client, keys)
    if archive is None:
        return 0
    fs, root = filesystem(directory(archive.url, keys, view))
    if not fs.exists(root):
        return 0
    count = len(fs.ls(root))
    fs.rm(root, recursive=True)
    return count
