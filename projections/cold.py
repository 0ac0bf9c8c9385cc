"""Read-model rows of archived interactions, moved from Redis to the archive tier
(docs/archive.md, "Read-model rows").

The interactions view and the outcome mix keep one row per interaction in a hash per tenant
(``i:<tenant>``: "<kind>:<id>" -> its record). Once every event of an interaction's
aggregate is archived, its rows are written to a Parquet file under the archive URL and
deleted from Redis. Readers ask Redis first and the archive for the rows Redis lacks
(``fill``); a row rewritten later (a correction of an old call) is in Redis again and
Redis's value wins. The indexes (history order, outcome filter, period days) stay in Redis.

A retirement, per view and tenant: (1) the file is written (absent or complete), (2) it is
listed in the view's registry hash ``<view prefix>cold`` (file -> rows), (3) each row is
deleted only if it still holds the value written (retire_rows.lua). A crash leaves a file
that lists rows Redis still has (harmless: Redis wins) or an unlisted file (ignored); a
rerun retires what is left under a new file name. Registries and files belong to the view's
generation: a replay builds a new generation in Redis, whose rows are retired again by the
next archive run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import cast

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import redis

from events.archive import Archive, filesystem, parquet_bytes, shard_url, write_atomically
from events.codec import DomainEvent
from events.keys import ShardKeys
from events.store import register_lua
from events.types import CallStarted, ConversationStarted
from projections.base import current

#: the views whose per-interaction rows are retired (both key them "<kind>:<id>" per tenant)
VIEWS = ("interactions", "outcome-mix")
SCHEMA = pa.schema([("tenant", pa.string()), ("member", pa.string()), ("value", pa.binary())])
DELETE_BATCH = 500
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
    files = cast(dict[bytes, bytes], client.hgetall(registry_key(keys, view)))
    archive = Archive.of(client, keys) if files else None
    if archive is None:
        return out
    fs, root = filesystem(directory(archive.url, keys, view))
    for name in sorted((f.decode() for f in files), reverse=True):
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


def retire(client: redis.Redis, keys: ShardKeys, url: str, view: str, rows: dict[str, dict[str, bytes]]) -> int:
    """Move these rows (tenant -> member -> value as read from Redis) to one new file of the
    view's; returns the number deleted from Redis."""
    rows = {t: r for t, r in rows.items() if r}
    if not rows:
        return 0
    ordered = sorted((t, m, v) for t, found in rows.items() for m, v in found.items())
    table = pa.table(
        {name: [row[n] for row in ordered] for n, name in enumerate(SCHEMA.names)},
        schema=SCHEMA,
    )
    # a new name each time: a rerun never overwrites rows an earlier run already deleted
    name = f"rows-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    fs, root = filesystem(directory(url, keys, view))
    write_atomically(fs, f"{root}/{name}", parquet_bytes(table, ROW_GROUP))
    client.hset(registry_key(keys, view), name, str(len(ordered)))
    script = register_lua(client, "projections", "retire_rows.lua")
    deleted = 0
    for tenant, found in rows.items():
        pairs = [x for m, v in found.items() for x in (m, v)]
        for start in range(0, len(pairs), 2 * DELETE_BATCH):
            deleted += int(script(keys=[rows_key(keys, view, tenant)], args=pairs[start : start + 2 * DELETE_BATCH]))
    return deleted


def archived_members(client: redis.Redis, keys: ShardKeys, tenant: str, through: int) -> dict[str, bytes]:
    """The interactions view's rows of the tenant whose aggregate has no event after
    ``through`` (member -> value as read)."""
    rows = {m.decode(): v for m, v in client.hscan_iter(rows_key(keys, "interactions", tenant), count=1000)}
    out: dict[str, bytes] = {}
    items = list(rows.items())
    for start in range(0, len(items), 1000):
        chunk = items[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for _, value in chunk:
            originator = msgspec.json.decode(value, type=_Originator).originator
            pipe.zrange(keys.prefix + "a:" + _stored(originator), -1, -1)
        for (member, value), top in zip(chunk, cast(list[list[bytes]], pipe.execute()), strict=True):
            if top and int(top[0]) <= through:
                out[member] = value
    return out


class _Originator(msgspec.Struct):
    originator: str


def _stored(originator: str) -> str:
    """The stored form of a record's ``str(originator_id)`` (a UUID, else a plain id)."""
    try:
        return str(uuid.UUID(originator))
    except ValueError:
        return "~" + originator


def retire_archived(client: redis.Redis, keys: ShardKeys) -> int:
    """Move the rows of every interaction whose events are all archived out of Redis, in
    both views' current generations; returns the rows deleted."""
    archive = Archive.of(client, keys)
    if archive is None:
        return 0
    keys = current(client, keys)
    prefix = rows_key(keys, "interactions", "")
    tenants = sorted(k.decode()[len(prefix) :] for k in client.scan_iter(match=prefix + "*", count=1000))
    deleted = 0
    for tenant in tenants:
        rows = archived_members(client, keys, tenant, archive.through)
        deleted += retire(client, keys, archive.url, "interactions", {tenant: rows})
        members = sorted(rows)
        mix: dict[str, bytes] = {}
        for start in range(0, len(members), 1000):
            chunk = members[start : start + 1000]
            found = cast(list[bytes | None], client.hmget(rows_key(keys, "outcome-mix", tenant), chunk))
            mix.update((m, v) for m, v in zip(chunk, found, strict=True) if v is not None)
        deleted += retire(client, keys, archive.url, "outcome-mix", {tenant: mix})
    return deleted
