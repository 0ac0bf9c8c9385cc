"""The archive tier: sealed segments of a shard's log as Parquet files (docs/archive.md).

A segment is a range of log positions ``first..last``; its file holds every stored field of
each entry. The shard's manifest (``manifest.json`` beside the files) lists the segments,
each file's sha256, its first and last chain hashes and the signed checkpoints inside it.
Redis's ``archived`` hash says up to which position the archive is the truth
(``through``) and where it lives (``url``): readers take positions up to ``through`` from
the archive and the rest from Redis, so what a reader sees never depends on whether the
trim after an archive run has happened yet.

``read_log`` is the one reader of "archive then Redis" by position range: it gives the
same ``(entry id, fields)`` pairs ``XRANGE`` gives.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, cast

import fsspec
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from fsspec.implementations.local import LocalFileSystem

from events.codec import recorded_at
from events.connect import node_client
from events.keys import ShardKeys
from events.store import RawEntries, StreamEntries, raw_reader

MANIFEST = "manifest.json"
ROW_GROUP = 10_000  # positions are sorted: a lookup by position reads one row group

#: one row per log entry; the Redis field each column comes from is in ``FIELDS``
SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("originator", pa.string()),
        ("version", pa.int64()),
        ("topic", pa.string()),
        ("state", pa.binary()),
        ("hash", pa.string()),
        ("chain", pa.string()),
        ("tenant", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]
)
#: column -> field of the log entry (``lua/append.lua`` writes them)
FIELDS = {"originator": b"o", "topic": b"t", "state": b"s", "hash": b"h", "chain": b"c", "tenant": b"n"}


class ArchivedCheckpoint(msgspec.Struct, frozen=True):
    """A signed checkpoint inside a segment, as stored in Redis (services/checkpoints.py)."""

    position: int
    fields: dict[str, str]


class Segment(msgspec.Struct, frozen=True):
    file: str
    first: int
    last: int
    count: int
    sha256: str
    #: the log chain hash before the segment's first entry, and at its last
    previous_chain: str
    last_chain: str
    checkpoints: list[ArchivedCheckpoint] = []


class Manifest(msgspec.Struct):
    shard: str
    segments: list[Segment] = []

    @property
    def through(self) -> int:
        return self.segments[-1].last if self.segments else 0


class ArchiveError(Exception):
    """The archive does not hold what its manifest or Redis say it holds."""


# -- where the files are -----------------------------------------------------------------------------


def absolute(url: str) -> str:
    """A plain path made absolute (Redis keeps the URL for readers in other directories)."""
    return url if "://" in url else os.path.abspath(url)


def shard_url(url: str, keys: ShardKeys) -> str:
    """The shard's directory under the archive URL (one per key prefix and shard)."""
    return url.rstrip("/") + f"/{keys.base_prefix}/{keys.shard}"


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, cast(str, path)


def write_atomically(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write a whole file so that it is either absent or complete and durable: a local file
    is written beside, fsynced and renamed (and its directory fsynced); an object store's
    put is atomic by itself."""
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_manifest(url: str, keys: ShardKeys) -> Manifest:
    fs, root = filesystem(shard_url(url, keys))
    path = f"{root}/{MANIFEST}"
    if not fs.exists(path):
        return Manifest(keys.shard)
    return msgspec.json.decode(cast(bytes, fs.cat_file(path)), type=Manifest)


def write_manifest(url: str, keys: ShardKeys, manifest: Manifest) -> None:
    fs, root = filesystem(shard_url(url, keys))
    write_atomically(fs, f"{root}/{MANIFEST}", msgspec.json.format(msgspec.json.encode(manifest)))


# -- segment files -------------------------------------------------------------------------------------


def segment_table(entries: StreamEntries) -> pa.Table:
    """Log entries (as XRANGE gives them) as one segment's rows."""
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for entry_id, fields in entries:
        columns["position"].append(int(entry_id.split(b"-")[0]))
        columns["version"].append(int(fields[b"v"]))
        columns["state"].append(fields[b"s"])
        columns["recorded_at"].append(recorded_at(fields[b"s"]))
        for column in ("originator", "topic", "hash", "chain", "tenant"):
            value = fields.get(FIELDS[column])
            columns[column].append(value.decode() if value is not None else None)
    return pa.table(columns, schema=SCHEMA)


def parquet_bytes(table: pa.Table, row_group: int = ROW_GROUP) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=row_group, compression="zstd")
    return cast(bytes, sink.getvalue().to_pybytes())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def segment_name(first: int, last: int) -> str:
    return f"log-{first:012d}-{last:012d}.parquet"


def read_segment_bytes(url: str, keys: ShardKeys, segment: Segment) -> bytes:
    fs, root = filesystem(shard_url(url, keys))
    return cast(bytes, fs.cat_file(f"{root}/{segment.file}"))


def entries_of(table: pa.Table) -> StreamEntries:
    """Rows back as the log entries they were (field for field what XRANGE gave)."""
    cols = {name: table.column(name).to_pylist() for name in ("position", "version", *FIELDS)}
    entries: StreamEntries = []
    for i, position in enumerate(cols["position"]):
        fields = {
            b"o": cols["originator"][i].encode(),
            b"v": str(cols["version"][i]).encode(),
            b"t": cols["topic"][i].encode(),
            b"s": cols["state"][i],
            b"h": cols["hash"][i].encode(),
            b"c": cols["chain"][i].encode(),
        }
        tenant = cols["tenant"][i]
        if tenant is not None:
            fields[b"n"] = tenant.encode()
        entries.append((f"{position}-0".encode(), fields))
    return entries


@lru_cache(maxsize=2)
def _segment_entries(root: str, file: str, digest: str) -> StreamEntries:
    """A segment's entries, kept for the next batches of the same reader (a replay reads a
    segment a batch at a time); the file is checked against the manifest's sha256."""
    fs, path = filesystem(root)
    data = cast(bytes, fs.cat_file(f"{path}/{file}"))
    if sha256(data) != digest:
        raise ArchiveError(f"archive file {file} does not match its sha256 in the manifest")
    return entries_of(pq.read_table(pa.BufferReader(data)))


@lru_cache(maxsize=8)
def _manifest(url: str, prefix: str, shard: str, through: int) -> Manifest:
    """The manifest as it was when Redis's ``through`` was set: segments are only ever
    appended, so one read serves every batch of a walk (callers do not change it)."""
    return read_manifest(url, ShardKeys(shard, prefix))


# -- reading archive then Redis ----------------------------------------------------------------------------


class Archive:
    """The archived part of one shard's log, as Redis's ``archived`` hash names it."""

    def __init__(self, keys: ShardKeys, url: str, through: int) -> None:
        self.keys = keys
        self.url = url
        self.through = through
        self._manifest: Manifest | None = None

    @staticmethod
    def of(client: redis.Redis, keys: ShardKeys) -> Archive | None:
        return Archive.marked(keys, cast(list[bytes | None], client.hmget(keys.archived, ["through", "url"])))

    @staticmethod
    def marked(keys: ShardKeys, marks: list[bytes | None]) -> Archive | None:
        """The archive as Redis's ``archived`` hash names it (``through``, ``url``), if any."""
        through, url = marks
        if through is None or url is None or int(through) == 0:
            return None
        return Archive(keys, url.decode(), int(through))

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = _manifest(self.url, self.keys.base_prefix, self.keys.shard, self.through)
            if self._manifest.through < self.through:
                raise ArchiveError(
                    f"Redis says the log is archived through {self.through}, "
                    f"the manifest at {self.url} only through {self._manifest.through}"
                )
        return self._manifest

    def segments(self, after: int, until: int | None = None) -> Iterator[Segment]:
        """The segments holding positions after ``after`` (up to ``until``) within ``through``."""
        for segment in self.manifest.segments:
            if segment.last > after and segment.first <= self.through and (until is None or segment.first <= until):
                yield segment

    def entries(self, segment: Segment) -> StreamEntries:
        return _segment_entries(shard_url(self.url, self.keys), segment.file, segment.sha256)

    def read(self, after: int, until: int | None, count: int) -> StreamEntries:
        """Up to ``count`` archived entries after position ``after`` (up to ``until``)."""
        found: StreamEntries = []
        hi = min(self.through, until) if until is not None else self.through
        for segment in self.segments(after, hi):
            # a segment's rows are its positions first..last in order (the archiver writes them so)
            lo = max(after + 1, segment.first) - segment.first
            stop = min(hi, segment.last) - segment.first + 1
            found.extend(self.entries(segment)[lo : min(stop, lo + count - len(found))])
            if len(found) >= count:
                break
        return found

    def at(self, positions: Iterable[int]) -> dict[int, dict[bytes, bytes]]:
        """The archived entries at these positions (those not archived are left out)."""
        wanted = sorted(p for p in set(positions) if p <= self.through)
        found: dict[int, dict[bytes, bytes]] = {}
        for segment in self.manifest.segments:
            inside = [p for p in wanted if segment.first <= p <= segment.last]
            if inside:
                rows = self.entries(segment)
                found.update((p, rows[p - segment.first][1]) for p in inside)
        return found

    def tenant_entries(self, tenant: str, after: int) -> Iterator[tuple[int, dict[bytes, bytes]]]:
        """The tenant's archived entries after position ``after``, in log order."""
        name = tenant.encode()
        for segment in self.segments(after):
            for entry_id, fields in self.entries(segment):
                position = int(entry_id.split(b"-")[0])
                if position > after and fields.get(b"n") == name:
                    yield position, fields


def read_log(
    client: redis.Redis, keys: ShardKeys, after: int, until: int | None = None, count: int = 1000
) -> StreamEntries:
    """Up to ``count`` log entries after position ``after`` (up to ``until``): from the
    archive while positions are archived, then from Redis -- what ``XRANGE`` gave before
    the archive run."""
    return _read_log(node_client(client, keys.log), keys, after, until, count, lambda entries: entries)


def read_log_raw(
    client: redis.Redis, keys: ShardKeys, after: int, until: int | None = None, count: int = 1000
) -> RawEntries:
    """``read_log`` with each entry's fields as the server sends them, a flat list (field,
    value, ...): the bulk readers' form (``events.store.raw_reader``)."""
    return _read_log(raw_reader(client, keys.log), keys, after, until, count, _flat)


def _flat(entries: StreamEntries) -> RawEntries:
    return [(entry_id, [x for pair in fields.items() for x in pair]) for entry_id, fields in entries]


Entries = TypeVar("Entries", StreamEntries, RawEntries)


def _read_log(
    reader: redis.Redis,
    keys: ShardKeys,
    after: int,
    until: int | None,
    count: int,
    archived: Callable[[StreamEntries], Entries],
) -> Entries:
    """``reader`` is the shard's server, its XRANGE replies parsed or raw (``Entries``); the
    archive's entries are made alike by ``archived``. An archive run that trims meanwhile is
    noticed (Redis no longer starts where the archive ended) and the read is done again."""
    hi = f"{until}-0" if until is not None else "+"
    while True:
        # one round trip: where the archive ends, and Redis's entries after ``after`` (the
        # answer unless the archive holds ``after + 1``, the rare case: then read again)
        pipe = reader.pipeline(transaction=False)
        pipe.hmget(keys.archived, ["through", "url"])
        pipe.execute_command("XRANGE", keys.log, f"({after}-0", hi, "COUNT", count)  # type: ignore[no-untyped-call]
        marks, entries = cast(tuple[list[bytes | None], Entries], pipe.execute())
        archive = Archive.marked(keys, marks)
        through = archive.through if archive else 0
        found = archived(archive.read(after, until, count)) if archive is not None and after < through else []
        if len(found) == count or (until is not None and until <= through):
            return found
        start = max(after, through)
        if start != after:
            entries = reader.execute_command("XRANGE", keys.log, f"({start}-0", hi, "COUNT", count - len(found))  # type: ignore[no-untyped-call]
        if not entries or int(entries[0][0].split(b"-")[0]) == start + 1:
            return found + entries
        moved = Archive.of(reader, keys)
        if (moved.through if moved else 0) == through:
            return found + entries  # a gap Redis holds (verify names it), not an archive run


def log_entries(
    client: redis.Redis, keys: ShardKeys, after: int = 0, until: int | None = None, count: int = 1000
) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    """Every log entry after ``after`` (up to ``until``), archive then Redis, a batch at a time."""
    while True:
        entries = read_log(client, keys, after, until, count)
        yield from entries
        if not entries:
            return
        after = int(entries[-1][0].split(b"-")[0])


def entries_at(client: redis.Redis, keys: ShardKeys, positions: Sequence[int]) -> dict[int, dict[bytes, bytes]]:
    """The log entries at these positions, wherever they are (one round trip for Redis's)."""
    archive = Archive.of(client, keys)
    found = archive.at(positions) if archive else {}
    rest = [n for n in positions if n not in found]
    pipe = client.pipeline(transaction=False)
    for n in rest:
        pipe.xrange(keys.log, f"{n}-0", f"{n}-0")
    for n, entries in zip(rest, cast(list[StreamEntries], pipe.execute()) if rest else [], strict=True):
        if entries:
            found[n] = entries[0][1]
    return found
