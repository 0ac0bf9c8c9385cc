"""``outcomes archive``: move sealed segments of a shard's log from Redis to Parquet files
(docs/archive.md; the file format and the reader are in events/archive.py).

A segment is sealed when a signed checkpoint lies at or after its end, and it is archived
only when it is older than the hot window. One segment at a time:

1. its entries are read from Redis, checked to be contiguous and to chain on, and written
   as one Parquet file (written beside and renamed: absent or complete);
2. the manifest, listing the file with its sha256, is rewritten the same way;
3. Redis learns the new ``through`` together with the archived aggregate heads the append
   script will chain on from (one MULTI);
4. only then the entries leave the log and the tenants' index streams (``XTRIM MINID``).

A crash anywhere leaves a state a rerun completes: before 2 the file is simply rewritten;
after 2 the rerun finds the manifest ahead of Redis and does 3 and 4 again (both
idempotent). Readers take positions up to Redis's ``through`` from the archive, so a
position is never read twice nor missed, whether or not the trim has run.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from events.archive import (
    ArchivedCheckpoint,
    ArchiveError,
    Manifest,
    Segment,
    absolute,
    filesystem,
    parquet_bytes,
    read_manifest,
    read_segment_bytes,
    segment_name,
    segment_table,
    sha256,
    shard_url,
    write_atomically,
    write_manifest,
)
from events.chain import ZERO, link_hash
from events.codec import recorded_at
from events.compact import compact_archived
from events.connect import node_client
from events.keys import ShardKeys
from events.store import StreamEntries, xrange
from projections.cold_index import retire_archived
from services.checkpoints import Checkpoint, read_checkpoints

DEFAULT_URL = "archive"  # a directory beside the working directory unless OUTCOMES_ARCHIVE_URL says
SEGMENT_SIZE = 100_000
READ_BATCH = 10_000


@dataclass
class ArchiveRun:
    shard: str
    #: the archive ends here now (0: nothing archived)
    through: int
    segments: list[Segment] = field(default_factory=list)
    #: why the run stopped where it did
    note: str = ""
    #: read-model rows of fully archived interactions moved out of Redis (projections/cold.py)
    rows_retired: int = 0
    #: wholly archived aggregates whose index and head became one compact entry (events/compact.py)
    compacted: int = 0

    @property
    def events(self) -> int:
        return sum(s.count for s in self.segments)


def segment_ranges(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Positions start..end cut into segments of at most ``size`` positions."""
    return [(lo, min(lo + size - 1, end)) for lo in range(start, end + 1, size)]


def last_before(first: int, last: int, older: Callable[[int], bool]) -> int:
    """The largest position in first..last for which ``older`` holds (first - 1: none),
    ``older`` being true up to some position and false after it (binary search)."""
    positions = range(first, last + 1)
    return first - 1 + bisect.bisect_left(positions, True, key=lambda p: not older(p))


class Archiver:
    def __init__(
        self,
        client: redis.Redis,
        keys: ShardKeys,
        url: str = DEFAULT_URL,
        segment_size: int = SEGMENT_SIZE,
        *,
        stop_after: str | None = None,
    ) -> None:
        if segment_size < 1:
            raise ValueError("a segment holds at least one event")
        self.client = client
        self.keys = keys
        self.url = absolute(url)
        self.segment_size = segment_size
        #: the crash tests stop a run after the first segment's "manifest" (Redis untouched)
        #: or "publish" (Redis knows, the log is not trimmed yet)
        self.stop_after = stop_after

    # -- where to stop ------------------------------------------------------------------------------
    def redis_through(self) -> int:
        through, url = cast(list[bytes | None], self.client.hmget(self.keys.archived, ["through", "url"]))
        if url is not None and url.decode() != self.url:
            raise ArchiveError(f"shard {self.keys.shard} is archived at {url.decode()}, not at {self.url}")
        return int(through) if through is not None else 0

    def head(self) -> int:
        value = self.client.hget(self.keys.head, "n")
        return int(cast(bytes, value)) if value is not None else 0

    def before_hot_window(self, days: float, now: datetime | None = None) -> int:
        """The last position recorded before ``now - days`` (positions are recorded in
        time order: the log is appended as events are recorded)."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)

        def older(position: int) -> bool:
            entries = xrange(self.client, self.keys.log, f"{position}-0", f"{position}-0", 1)
            return bool(entries) and recorded_at(entries[0][1][b"s"]) < cutoff

        first = self.redis_through() + 1
        return last_before(first, self.head(), older)

    def checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint.from_fields(fields) for _, fields in read_checkpoints(self.client, self.keys)]

    # -- the run ----------------------------------------------------------------------------------------
    def run(self, before_position: int | None = None, hot_days: float | None = None) -> ArchiveRun:
        """Archive every whole segment that ends before ``before_position`` (or before the hot
        window of ``hot_days``) and at or before the newest signed checkpoint, then compact the
        indexes of the aggregates now wholly archived and move the read-model rows of those
        interactions (a rerun finishes all three)."""
        run = self._segments(before_position, hot_days)
        if self.stop_after is None:
            run.compacted = compact_archived(self.client, self.keys)
            run.rows_retired = retire_archived(self.client, self.keys)
        return run

    def _segments(self, before_position: int | None, hot_days: float | None) -> ArchiveRun:
        manifest = read_manifest(self.url, self.keys)
        redis_through = self.redis_through()
        if manifest.through < redis_through:
            raise ArchiveError(
                f"the manifest ends at {manifest.through} but Redis says {redis_through} is archived: "
                "the archive at this URL is not this shard's"
            )
        run = ArchiveRun(self.keys.shard, manifest.through)
        if manifest.through > redis_through:  # an earlier run stopped after its manifest: finish it
            self._publish(manifest, redis_through)
        self._trim(manifest.through)
        checkpoints = self.checkpoints()
        limits = [self.head()]
        if before_position is not None:
            limits.append(before_position - 1)
        if hot_days is not None:
            limits.append(self.before_hot_window(hot_days))
        sealed = checkpoints[-1].position if checkpoints else 0
        end = min(sealed, *limits)
        if end <= manifest.through:
            run.note = (
                "nothing to archive: no signed checkpoint yet"
                if not checkpoints
                else f"nothing to archive before position {end + 1} (signed through {sealed})"
            )
            return run
        for first, last in segment_ranges(manifest.through + 1, end, self.segment_size):
            segment = self._archive(manifest, first, last, checkpoints)
            run.segments.append(segment)
            run.through = segment.last
            if self.stop_after == "manifest":
                return run
            self._publish(manifest, segment.first - 1)
            if self.stop_after == "publish":
                return run
            self._trim(segment.last)
        run.note = f"archived through {run.through} (signed through {sealed})"
        return run

    def _archive(self, manifest: Manifest, first: int, last: int, checkpoints: list[Checkpoint]) -> Segment:
        """Write positions first..last as a file and list it in the manifest."""
        entries = self._read(first, last)
        previous = manifest.segments[-1].last_chain if manifest.segments else ZERO
        chain = previous
        for entry_id, fields in entries:
            position = int(entry_id.split(b"-")[0])
            if link_hash(chain, position, fields[b"h"].decode()) != fields[b"c"].decode():
                raise ArchiveError(f"log entry {position} does not chain on: not archiving (run `outcomes verify`)")
            chain = fields[b"c"].decode()
        inside = [c for c in checkpoints if first <= c.position <= last]
        by_position = {int(entry_id.split(b"-")[0]): fields for entry_id, fields in entries}
        for c in inside:
            if by_position[c.position][b"c"].decode() != c.chain:
                raise ArchiveError(f"the log at checkpoint {c.position} is not what was signed (run `outcomes verify`)")
        data = parquet_bytes(segment_table(entries))
        segment = Segment(
            file=segment_name(first, last),
            first=first,
            last=last,
            count=len(entries),
            sha256=sha256(data),
            previous_chain=previous,
            last_chain=chain,
            checkpoints=[ArchivedCheckpoint(c.position, c.fields()) for c in inside],
        )
        fs, root = filesystem(shard_url(self.url, self.keys))
        write_atomically(fs, f"{root}/{segment.file}", data)
        manifest.segments.append(segment)
        write_manifest(self.url, self.keys, manifest)
        return segment

    def _read(self, first: int, last: int) -> StreamEntries:
        """Positions first..last from Redis, all of them (a gap is refused, never archived)."""
        entries: StreamEntries = []
        after = first - 1
        while after < last:
            batch = xrange(self.client, self.keys.log, f"({after}-0", f"{last}-0", READ_BATCH)
            if not batch:
                break
            entries.extend(batch)
            after = int(batch[-1][0].split(b"-")[0])
        positions = [int(entry_id.split(b"-")[0]) for entry_id, _ in entries]
        if positions != list(range(first, last + 1)):
            raise ArchiveError(f"the log lacks positions of {first}..{last}: not archiving (run `outcomes verify`)")
        return entries

    def _publish(self, manifest: Manifest, after: int) -> None:
        """Tell Redis the archive holds the manifest's segments after ``after``, with the head
        hash of every aggregate whose newest event moves out of the log (one MULTI)."""
        heads: dict[str, str] = {}
        for segment in manifest.segments:
            if segment.last <= after:
                continue
            data = read_segment_bytes(self.url, self.keys, segment)
            if sha256(data) != segment.sha256:
                raise ArchiveError(f"archive file {segment.file} does not match its sha256 in the manifest")
            table = pq.read_table(pa.BufferReader(data), columns=["position", "originator", "hash"])
            columns = [table.column(c).to_pylist() for c in ("position", "originator", "hash")]
            for position, originator, hash_ in zip(*columns, strict=True):
                heads[originator] = f"{position} {hash_}"
        newest = self._newest_positions(list(heads))
        pipe = node_client(self.client, self.keys.log).pipeline(transaction=True)  # the shard's server
        archived = {oid: value for oid, value in heads.items() if newest.get(oid) == value.split(" ")[0]}
        if archived:
            pipe.hset(self.keys.archived_heads, mapping=archived)  # type: ignore[arg-type]
        pipe.hset(self.keys.archived, mapping={"through": manifest.through, "url": self.url})
        pipe.execute()

    def _newest_positions(self, originators: list[str]) -> dict[str, str]:
        """Each aggregate's newest log position, from its index."""
        found: dict[str, str] = {}
        for start in range(0, len(originators), 1000):
            chunk = originators[start : start + 1000]
            pipe = self.client.pipeline(transaction=False)
            for oid in chunk:
                pipe.zrange(self.keys.prefix + "a:" + oid, -1, -1)
            for oid, top in zip(chunk, cast(list[list[bytes]], pipe.execute()), strict=True):
                if top:
                    found[oid] = top[0].decode()
        return found

    def _trim(self, through: int) -> None:
        """Remove positions up to ``through`` from the log and the tenants' index streams."""
        if through <= 0:
            return
        minid = f"{through + 1}-0"
        self.client.xtrim(self.keys.log, minid=minid, approximate=False)
        for key in self.client.scan_iter(match=self.keys.prefix + "t:*", count=1000, _type="STREAM"):
            self.client.xtrim(key, minid=minid, approximate=False)


def describe(run: ArchiveRun) -> str:
    lines = [
        f"shard {run.shard}: {run.note}; {run.compacted} aggregates' indexes compacted,"
        f" {run.rows_retired} read-model rows moved to the archive"
    ]
    lines += [f"  {s.file}: positions {s.first}..{s.last}, {s.count} events, sha256 {s.sha256}" for s in run.segments]
    return "\n".join(lines)
