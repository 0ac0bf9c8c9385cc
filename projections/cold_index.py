"""The interactions view's index entries of archived interactions (docs/archive.md,
"Read-model rows"): when an interaction's rows move to the archive (projections/cold.py),
its entries in the history order (``z``), the outcome filters (``s``) and the project's day
(``p``) move with them, to an index file beside the rows file, sorted by tenant and start.

The history walk and sampling merge Redis's sorted set with the files' entries in (start,
member) order, reading a file's row groups lazily from the cursor on; the period reports
add the files' members of the period's days. The entries' start, project and day never
change; an archived row rewritten later (a correction) is in Redis again with its new
codes, and Redis's outcome filter holds its codes the archived entry did not: sampling
checks each candidate's codes in its row as it stands, the history filters every row it
shows anyway.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterator, Sequence
from typing import cast

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from fsspec import AbstractFileSystem

from events.archive import Archive, filesystem
from events.compact import aggregate_indexes
from events.keys import ShardKeys
from projections import cold
from projections.base import current
from projections.interactions import NAME, Record, key, micros

INDEX = pa.schema(
    [
        ("tenant", pa.string()),
        ("start", pa.int64()),
        ("member", pa.string()),
        ("project", pa.string()),
        ("day", pa.string()),
        ("codes", pa.list_(pa.string())),
    ]
)

Entry = tuple[int, str]  # (start score, member), the history order

_record = msgspec.json.Decoder(Record)


# -- moving -------------------------------------------------------------------------------------------------


def archived_rows(client: redis.Redis, keys: ShardKeys, tenant: str, through: int) -> dict[str, bytes]:
    """The interactions view's rows of the tenant whose aggregate has no event after
    ``through`` (member -> value as read)."""
    rows = {m.decode(): v for m, v in client.hscan_iter(cold.rows_key(keys, NAME, tenant), count=1000)}
    out: dict[str, bytes] = {}
    items = list(rows.items())
    indexes = aggregate_indexes(client, keys, [_stored(_record.decode(value).originator) for _, value in items])
    for (member, value), index in zip(items, indexes, strict=True):
        if index and index[-1][1] <= through:
            out[member] = value
    return out


def _stored(originator: str) -> str:
    """The stored form of a record's ``str(originator_id)`` (a UUID, else a plain id)."""
    try:
        return str(uuid.UUID(originator))
    except ValueError:
        return "~" + originator


def index_of(keys: ShardKeys, tenant: str, rows: dict[str, bytes]) -> tuple[pa.Table, dict[str, list[str]]]:
    """The rows' index entries as a file's table (sorted by start), and each row's index keys."""
    records = sorted(((m, _record.decode(v)) for m, v in rows.items()), key=lambda x: (micros(x[1].started_at), x[0]))
    table = pa.table(
        {
            "tenant": [tenant] * len(records),
            "start": [micros(r.started_at) for _, r in records],
            "member": [m for m, _ in records],
            "project": [r.project for _, r in records],
            "day": [r.day for _, r in records],
            "codes": [sorted(r.codes) for _, r in records],
        },
        schema=INDEX,
    )
    also = {
        m: [key(keys, "z", tenant), key(keys, "p", tenant, r.project, r.day)]
        + [key(keys, "s", tenant, code) for code in sorted(r.codes)]
        for m, r in records
    }
    return table, also


def retire_archived(client: redis.Redis, keys: ShardKeys) -> int:
    """Move the rows of every interaction whose events are all archived out of Redis (and
    their index entries), in both views' current generations; returns the rows deleted."""
    archive = Archive.of(client, keys)
    if archive is None:
        return 0
    keys = current(client, keys)
    prefix = cold.rows_key(keys, NAME, "")
    tenants = sorted(k.decode()[len(prefix) :] for k in client.scan_iter(match=prefix + "*", count=1000))
    deleted = 0
    for tenant in tenants:
        rows = archived_rows(client, keys, tenant, archive.through)
        table, also = index_of(keys, tenant, rows)
        deleted += cold.retire(client, keys, archive.url, NAME, tenant, rows, indexes=also, index=table)
        members = sorted(rows)
        mix: dict[str, bytes] = {}
        for start in range(0, len(members), 1000):
            chunk = members[start : start + 1000]
            found = cast(list[bytes | None], client.hmget(cold.rows_key(keys, "outcome-mix", tenant), chunk))
            mix.update((m, v) for m, v in zip(chunk, found, strict=True) if v is not None)
        deleted += cold.retire(client, keys, archive.url, "outcome-mix", tenant, mix)
    return deleted


# -- reading ------------------------------------------------------------------------------------------------


def _index_files(client: redis.Redis, keys: ShardKeys) -> list[tuple[AbstractFileSystem, str]]:
    found = cold.files(client, keys, NAME)
    if found is None:
        return []
    fs, root = filesystem(found[0])
    return [(fs, f"{root}/{cold.INDEX_PREFIX}{name}") for name in found[1]]


def _file_entries(
    fs: AbstractFileSystem, path: str, tenant: str, code: str | None, after: Entry | None, hi: int | None
) -> Iterator[Entry]:
    """One index file's entries of the tenant after ``after`` up to ``hi`` (showing ``code``),
    in order, reading only the row groups that can hold them."""
    f = pq.ParquetFile(path, filesystem=fs)  # type: ignore[arg-type]
    names = f.schema_arrow.names
    t_col, s_col = names.index("tenant"), names.index("start")
    low = after[0] if after is not None else None
    for g in range(f.metadata.num_row_groups):
        group = f.metadata.row_group(g)
        tenants, starts = group.column(t_col).statistics, group.column(s_col).statistics
        if tenants is not None and not (tenants.min <= tenant <= tenants.max):
            continue
        if starts is not None and ((low is not None and starts.max < low) or (hi is not None and starts.min > hi)):
            continue
        rows = f.read_row_group(g, columns=["tenant", "start", "member", "codes"]).to_pylist()
        for r in rows:
            entry = (r["start"], r["member"])
            if r["tenant"] != tenant or (after is not None and entry <= after) or (hi is not None and entry[0] > hi):
                continue
            if code is None or code in r["codes"]:
                yield entry


def merged(redis_walk: Iterator[Entry], archived: list[Iterator[Entry]]) -> Iterator[Entry]:
    """Redis's entries and the files', in (start, member) order, each member once."""
    last: Entry | None = None
    for entry in heapq.merge(redis_walk, *archived):
        if entry != last:
            yield entry
        last = entry


def archived_entries(
    client: redis.Redis, keys: ShardKeys, tenant: str, code: str | None, after: Entry | None, hi: int | None
) -> list[Iterator[Entry]]:
    """Per index file, its entries of the tenant (showing ``code``) after ``after`` up to ``hi``."""
    return [_file_entries(fs, path, tenant, code, after, hi) for fs, path in _index_files(client, keys)]


def period_members(client: redis.Redis, keys: ShardKeys, tenant: str, project: str, days: Sequence[str]) -> set[str]:
    """The archived interactions of a project started on these tenant-local days."""
    out: set[str] = set()
    for fs, path in _index_files(client, keys):
        table = pq.read_table(
            path,
            filesystem=fs,  # type: ignore[arg-type]
            columns=["member"],
            filters=[("tenant", "=", tenant), ("project", "=", project), ("day", "in", list(days))],
        )
        out.update(table.column("member").to_pylist())
    return out


def showing(client: redis.Redis, keys: ShardKeys, tenant: str, code: str, members: Sequence[str]) -> list[str]:
    """The members whose row shows ``code`` now (Redis's row, else the newest archived one):
    an archived entry's codes are those of the row it was archived with, and a row rewritten
    since (a correction) may show others."""
    if not members:
        return []
    found = cast(list[bytes | None], client.hmget(cold.rows_key(keys, NAME, tenant), list(members)))
    found = cold.fill(client, keys, NAME, tenant, members, found)
    return [m for m, raw in zip(members, found, strict=True) if raw is not None and code in _record.decode(raw).codes]
