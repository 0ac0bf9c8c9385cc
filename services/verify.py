"""``outcomes verify``: walk a shard's log, its hash chains, indexes and signed checkpoints
and name the first event that was edited, removed, reordered or cut off (docs/audit.md).

The walk streams the log in batches (archive then Redis: ``events.archive.read_log``; the
archive's files are first checked against its manifest's sha256) and keeps, per aggregate, its
newest version and hash, and per tenant a cursor on the tenant's index stream, so memory
grows with the number of aggregates, not of events.

What one entry is checked for, each against what the ledger itself wrote:
- its id is the next notification id (``<n>-0``, no gaps: a gap is a removed event);
- its aggregate hash ``h`` matches its fields and the aggregate's previous event (edited);
- its log hash ``c`` links it to the previous entry (edited, or moved);
- its version follows the aggregate's previous one, and the aggregate's index maps its
  version to this position (reordered / moved, or removed when versions are missing);
- the tenant's index stream lists this position.
After a problem the walk goes on from what is stored (re-synchronises), and the link to a
damaged entry is not judged, so one tampering shows once, where it happened.

The checkpoints prove what the chains alone cannot (someone who edits an event can also
recompute every sha1 after it): at each checkpoint's position the stored chain hash must be
the signed one. Events after the newest good checkpoint are the *unverified tail*: their
chain is consistent but unsigned, so a cut inside the tail that also rewrote the head and
the stream's last id cannot be proven.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import redis

from events.archive import Archive, ArchiveError, read_log, read_segment_bytes, sha256
from events.chain import ZERO, event_hash, link_hash
from events.compact import aggregate_index
from events.connect import node_client
from events.keys import RegistryKeys, ShardKeys
from events.store import StreamEntries, register_lua, xrange
from services.checkpoints import Checkpoint, KeyRing, read_checkpoints

EDITED, REMOVED, REORDERED, TRUNCATED, INDEX, CHECKPOINT, REWRITTEN, ARCHIVE = (
    "edited",
    "removed",
    "reordered",
    "truncated",
    "index",
    "checkpoint",
    "rewritten",
    "archive",
)


class Problem(msgspec.Struct):
    shard: str
    #: the log position (notification id) where it shows: the first removed or cut-off one,
    #: the moved or edited entry, or the checkpoint's position
    position: int
    kind: str
    detail: str
    #: the event concerned, when known (a removed event's comes from the indexes)
    aggregate: str | None = None
    version: int | None = None
    event_type: str | None = None
    tenant: str | None = None
    #: the log entry id of ``position``
    log_id: str = ""

    def __post_init__(self) -> None:
        self.log_id = f"{self.position}-0"

    def describe(self) -> str:
        what = [f"shard {self.shard}", f"log id {self.log_id}", self.kind]
        if self.aggregate is not None:
            what.append(f"aggregate {self.aggregate}" + (f" version {self.version}" if self.version else ""))
        if self.event_type:
            what.append(self.event_type)
        if self.tenant:
            what.append(f"tenant {self.tenant}")
        return ", ".join(what) + f": {self.detail}"


class Tail(msgspec.Struct):
    """Events after the newest good checkpoint: consistent, not yet signed."""

    first: int
    last: int
    count: int


class ShardReport(msgspec.Struct):
    shard: str
    events: int
    last_position: int
    checkpoints: int
    #: position of the newest valid checkpoint the log matches (0: none)
    signed_through: int
    unverified_tail: Tail | None
    problems: list[Problem]
    #: problems found beyond those listed
    more_problems: int
    seconds: float
    events_per_second: float

    @property
    def ok(self) -> bool:
        return not self.problems


class Report(msgspec.Struct):
    ok: bool
    shards: list[ShardReport]
    first_problem: Problem | None


class CannotVerify(Exception):
    """Verification cannot be carried out as asked (e.g. no key to check checkpoints with)."""


@dataclass
class _Aggregate:
    version: int
    hash: str
    count: int
    #: its newest event had a problem: the next one's hash cannot be judged
    doubtful: bool = False


@dataclass(frozen=True)
class _Ends:
    """Where the log should end: its head (position, chain hash) and the stream's last id."""

    head: int | None
    chain: str | None
    generated: int


@dataclass
class _TenantCursor:
    """Reads a tenant's index stream alongside the log."""

    key: str
    buffer: list[int] = field(default_factory=list)
    after: str = "-"
    done: bool = False

    def peek(self, client: redis.Redis, batch: int) -> int | None:
        if not self.buffer and not self.done:
            entries = xrange(client, self.key, self.after, "+", batch)
            self.buffer = [int(eid.split(b"-")[0]) for eid, _ in reversed(entries)]
            if entries:
                self.after = "(" + entries[-1][0].decode()
            self.done = len(entries) < batch
        return self.buffer[-1] if self.buffer else None

    def rest(self, client: redis.Redis, batch: int) -> Iterator[int]:
        while self.peek(client, batch) is not None:
            yield self.buffer.pop()


def shards_of(client: redis.Redis, prefix: str, default: str) -> list[str]:
    """Every shard a tenant is assigned to, and the default shard."""
    assigned = {s.decode() for s in cast(list[bytes], client.hvals(RegistryKeys(prefix).tenant_shards))}
    return sorted(assigned | {default})


class ShardVerifier:
    def __init__(
        self, client: redis.Redis, keys: ShardKeys, ring: KeyRing, batch: int = 1000, max_problems: int = 100
    ) -> None:
        self.client = client
        self.keys = keys
        self.ring = ring
        self.batch = batch
        self.max_problems = max_problems
        self._indexes = register_lua(client, "services", "verify_index.lua", index=True)
        self.problems: list[Problem] = []
        self.more = 0
        self.aggregates: dict[bytes, _Aggregate] = {}
        self.tenants: dict[bytes, _TenantCursor] = {}
        #: removed single positions, to name their event once an index tells it
        self.removed: dict[int, Problem] = {}
        self.removed_ranges: list[tuple[int, int]] = []
        self.missing = 0  # positions removed so far
        #: no entry problem since the previous checkpoint: a mismatch there is a consistent rewrite
        self.segment_clean = True
        self.rewritten = False  # a consistent rewrite was reported
        self.previous_anchor = 0  # position of the checkpoint before the next one
        self.signed_through = 0  # position of the newest checkpoint the log matches
        self.archived_through = 0  # positions up to here are read from the archive tier

    # -- problems ------------------------------------------------------------------------
    def _report(self, problem: Problem) -> Problem:
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)
        else:
            self.more += 1
        return problem

    def _problem(self, position: int, kind: str, detail: str, **event: Any) -> Problem:
        if kind != CHECKPOINT:
            self.segment_clean = False
        return self._report(Problem(self.keys.shard, position, kind, detail, **event))

    def _was_removed(self, position: int) -> bool:
        return any(lo <= position <= hi for lo, hi in self.removed_ranges)

    def _name_removed(self, position: int, **event: Any) -> bool:
        """Fill in what a removed position held, from an index; False if it was not removed."""
        problem = self.removed.get(position)
        if problem is not None:
            for name, value in event.items():
                if getattr(problem, name) is None:
                    setattr(problem, name, value)
        return problem is not None or self._was_removed(position)

    # -- checkpoints -----------------------------------------------------------------------
    def _anchors(self) -> tuple[int, list[Checkpoint]]:
        """How many checkpoints are stored, and the good ones by position (bad ones reported)."""
        stored = read_checkpoints(self.client, self.keys, self.batch)
        if stored and not self.ring.keys:
            raise CannotVerify(
                f"shard {self.keys.shard} has {len(stored)} signed checkpoints but no public key is configured "
                "(OUTCOMES_CHECKPOINT_PUBLIC_KEYS or --public-key)"
            )
        good: list[Checkpoint] = []
        for entry_id, fields in stored:
            position = int(entry_id.split("-")[0])
            try:
                checkpoint = Checkpoint.from_fields(fields)
            except ValueError as error:
                self._problem(position, CHECKPOINT, f"checkpoint {entry_id}: {error}")
                continue
            why = self.ring.problem(checkpoint)
            if why is None and (checkpoint.shard != self.keys.shard or entry_id != f"{checkpoint.position}-0"):
                why = f"signed for shard {checkpoint.shard!r} position {checkpoint.position}, stored as {entry_id}"
            if why is not None:
                self._problem(position, CHECKPOINT, f"forged checkpoint {entry_id}: {why}")
            else:
                good.append(checkpoint)
        return len(stored), good

    # -- the walk ------------------------------------------------------------------------
    def run(self) -> ShardReport:
        started = time.monotonic()
        stored_checkpoints, anchors = self._anchors()
        ends = self._snapshot()  # after the checkpoints: none of them lies beyond it
        until = max(ends.head or 0, ends.generated)
        pending = list(reversed(anchors))  # next one last
        expected = 1  # the next notification id
        last_good = True  # the previous entry had no problem: the link to it can be judged
        last_chain = ZERO
        events = 0
        after = 0
        archive_sound = self._archive()
        while archive_sound:
            entries = read_log(self.client, self.keys, after, until, self.batch)
            if not entries:
                break
            after = int(entries[-1][0].split(b"-")[0])
            scores = self._index_scores(entries)
            for (entry_id, fields), score in zip(entries, scores, strict=True):
                position, _, seq = entry_id.decode().partition("-")
                nid = int(position)
                if seq != "0":
                    self._problem(nid, EDITED, f"entry id {entry_id.decode()} is not one the ledger writes")
                    last_good = False
                    continue
                if nid > expected:
                    self._gap(expected, nid - 1)
                    last_good = False
                expected = nid + 1
                events += 1
                good = self._entry(nid, fields, score, last_chain, last_good)
                last_chain = fields.get(b"c", b"").decode()
                last_good = good
                self._checkpoints_at(nid, last_chain, events, pending)
            if len(entries) < self.batch:
                break
        last = expected - 1
        if archive_sound:  # else the walk did not start: the archive problem is the finding
            self._ends(ends, last, last_chain, [a.position for a in pending])
            self._indexes_complete(last)
        self.problems.sort(key=lambda p: p.position)
        seconds = time.monotonic() - started
        signed_through = self.signed_through
        tail = Tail(signed_through + 1, last, last - signed_through) if last > signed_through else None
        return ShardReport(
            shard=self.keys.shard,
            events=events,
            last_position=last,
            checkpoints=stored_checkpoints,
            signed_through=signed_through,
            unverified_tail=tail,
            problems=self.problems,
            more_problems=self.more,
            seconds=round(seconds, 3),
            events_per_second=round(events / seconds, 1) if seconds > 0 else 0.0,
        )

    def _archive(self) -> bool:
        """Check the archive tier: its segments run from position 1 to Redis's ``through``
        without a gap, and each file is the one its manifest hashed. The walk then chains
        across archive and Redis as if the log were one; False when it cannot be read."""
        archive = Archive.of(self.client, self.keys)
        if archive is None:
            return True
        self.archived_through = archive.through
        try:
            segments = list(archive.segments(0))
        except (ArchiveError, OSError, msgspec.DecodeError) as error:
            self._problem(1, ARCHIVE, f"the archive's manifest at {archive.url} cannot be read: {error}")
            return False
        sound = True
        expected = 1
        for segment in segments:
            if segment.first != expected:
                self._problem(expected, ARCHIVE, f"the archive lacks positions {expected}..{segment.first - 1}")
                sound = False
            expected = segment.last + 1
            try:
                digest = sha256(read_segment_bytes(archive.url, self.keys, segment))
            except OSError as error:
                digest = f"unreadable ({error})"
            if digest != segment.sha256:
                self._problem(
                    segment.first, ARCHIVE, f"archive file {segment.file} is not the one its manifest hashed: {digest}"
                )
                sound = False
        if expected <= archive.through:
            self._problem(expected, ARCHIVE, f"the archive ends at {expected - 1}, Redis says {archive.through}")
            sound = False
        return sound

    def _checkpoints_at(self, nid: int, chain: str, events: int, pending: list[Checkpoint]) -> None:
        """Compare the log with the checkpoints signed at or before this position."""
        while pending and pending[-1].position <= nid:
            anchor = pending.pop()
            if anchor.position < nid:
                continue  # its position is missing: reported as removed
            if anchor.chain == chain and anchor.count == events + self.missing:
                self.signed_through = nid
            elif self.segment_clean and not self.rewritten:  # else what was reported explains it
                self.rewritten = True  # every later chain hash differs too: named once
                self._problem(
                    nid,
                    REWRITTEN,
                    f"the log at checkpoint {nid} (chain {chain[:12]}…, {events} events) is not what was signed "
                    f"(chain {anchor.chain[:12]}…, {anchor.count} events): events {self.previous_anchor + 1}..{nid} "
                    "were changed and their hashes recomputed",
                )
            self.previous_anchor = nid
            self.segment_clean = True

    def _index_scores(self, entries: StreamEntries) -> list[Any]:
        """Each entry's version as its aggregate's index has it, in one script call."""
        pairs = [x for entry_id, fields in entries for x in (fields.get(b"o", b""), entry_id.split(b"-")[0])]
        return cast(list[Any], self._indexes(keys=[self.keys.log], args=[self.keys.prefix, "score", *pairs]))

    def _gap(self, first: int, last: int) -> None:
        span = f"event {first} is" if first == last else f"events {first}..{last} are"
        problem = self._problem(first, REMOVED, f"{span} missing from the log")
        self.removed_ranges.append((first, last))
        self.missing += last - first + 1
        if first == last:
            self.removed[first] = problem

    def _entry(self, nid: int, fields: dict[bytes, bytes], score: Any, last_chain: str, last_good: bool) -> bool:
        """Check one entry; re-synchronise on what is stored. True when it is sound."""
        try:
            oid, raw_version, topic, state = fields[b"o"], fields[b"v"], fields[b"t"], fields[b"s"]
            stored_hash, chain = fields[b"h"].decode(), fields[b"c"].decode()
            version = int(raw_version)
        except (KeyError, ValueError):
            self._problem(nid, EDITED, f"entry lacks a field of an event: {sorted(k.decode() for k in fields)}")
            return False
        tenant = fields.get(b"n")
        event = {"aggregate": oid.decode(), "version": version, "event_type": topic.decode()}
        if tenant is not None:
            event["tenant"] = tenant.decode()
        aggregate = self.aggregates.get(oid)
        top = aggregate.version if aggregate else 0
        wrong: list[str] = []
        kind = EDITED
        indexed = int(score) if score is not None else None
        in_order = version == top + 1
        if indexed != version or not in_order:
            missing_explained = (
                indexed == version and version > top + 1 and self._versions_removed(oid, top + 1, version - 1)
            )
            if not missing_explained:
                kind = REORDERED
                where = "not indexed here" if indexed is None else f"the index has version {indexed} here"
                wrong.append(f"version {version} follows version {top} of its aggregate ({where})")
        elif aggregate is None or not aggregate.doubtful:
            previous = aggregate.hash if aggregate else ZERO
            if event_hash(previous, oid, raw_version, topic, state) != stored_hash:
                wrong.append("its content does not match its hash (edited)")
        if not wrong and last_good and link_hash(last_chain, nid, stored_hash) != chain:
            wrong.append("it does not link to the entry before it (hashes recomputed after an edit, or moved)")
        if tenant is not None:
            wrong.extend(self._tenant_index(tenant, nid))
        if aggregate is None:
            aggregate = self.aggregates[oid] = _Aggregate(0, ZERO, 0)
        aggregate.count += 1
        aggregate.doubtful = bool(wrong)
        if version > aggregate.version:
            aggregate.version, aggregate.hash = version, stored_hash
        if wrong:
            if len(wrong) == 1 and wrong[0].startswith("tenant"):
                kind = INDEX
            self._problem(nid, kind, "; ".join(wrong), **event)
        return not wrong

    def _versions_removed(self, oid: bytes, lo: int, hi: int) -> bool:
        """Whether the aggregate's versions lo..hi sit at removed positions (then name them)."""
        found = [(v, n) for v, n in aggregate_index(self.client, self.keys, oid.decode()) if lo <= v <= hi]
        named = [self._name_removed(position, aggregate=oid.decode(), version=version) for version, position in found]
        return len(found) == hi - lo + 1 and all(named)

    def _tenant_index(self, tenant: bytes, nid: int) -> list[str]:
        if nid <= self.archived_through:
            return []  # archived: the tenant is a column of the file its manifest hashed
        cursor = self.tenants.get(tenant)
        if cursor is None:
            after = f"({self.archived_through}-0" if self.archived_through else "-"
            cursor = self.tenants[tenant] = _TenantCursor(self.keys.tenant_index(tenant.decode()), after=after)
        wrong = []
        while (listed := cursor.peek(self.client, self.batch)) is not None and listed < nid:
            cursor.buffer.pop()
            if not self._name_removed(listed, tenant=tenant.decode()):
                wrong.append(f"tenant index lists position {listed}, which holds another tenant's event")
        if listed == nid:
            cursor.buffer.pop()
        else:
            wrong.append(f"tenant index of {tenant.decode()!r} lacks this position")
        return wrong

    def _snapshot(self) -> _Ends:
        """The head and the stream's last generated id, read together before the walk: the
        walk stops there, so events appended meanwhile are neither walked nor missed."""
        # MULTI on the shard's server (on a cluster, its master: the shard is one slot)
        pipe = node_client(self.client, self.keys.log).pipeline(transaction=True)
        pipe.hmget(self.keys.head, ["n", "c"])
        pipe.xinfo_stream(self.keys.log)
        (head_n, head_c), info = pipe.execute(raise_on_error=False)
        generated = 0 if isinstance(info, Exception) else int(info["last-generated-id"].split(b"-")[0])
        return _Ends(int(head_n) if head_n is not None else None, head_c.decode() if head_c else None, generated)

    def _ends(self, ends: _Ends, last: int, last_chain: str, beyond: list[int]) -> None:
        """Whether the log was cut: its head, its stream's last id and the checkpoints
        signed beyond its last entry."""
        evidence = []
        if ends.head is not None and ends.head > last:
            evidence.append(f"its head says {ends.head}")
        elif ends.head is not None and ends.head < last:
            self._problem(ends.head + 1, EDITED, f"the log goes on beyond its head ({ends.head})")
        elif ends.head == last and ends.chain != last_chain:
            self._problem(last, EDITED, "the head's chain hash differs from the last entry's")
        if beyond:
            evidence.append(f"checkpoint(s) were signed at {', '.join(map(str, sorted(beyond)))}")
        if ends.generated > last:
            evidence.append(f"the stream has handed out ids up to {ends.generated}")
        if evidence:
            self._problem(last + 1, TRUNCATED, f"the log ends at {last} but " + " and ".join(evidence))

    def _indexes_complete(self, last: int) -> None:
        """Index entries left over after the walk: the events they point at were removed
        (name them) or are unaccounted for."""
        items = list(self.aggregates.items())
        for start in range(0, len(items), self.batch):
            chunk = items[start : start + self.batch]
            sizes = cast(
                list[int], self._indexes(keys=[self.keys.log], args=[self.keys.prefix, "card", *(o for o, _ in chunk)])
            )
            for (oid, aggregate), size in zip(chunk, sizes, strict=True):
                if int(size) > aggregate.count:
                    self._leftover_versions(oid, last)
        for tenant, cursor in self.tenants.items():
            for listed in cursor.rest(self.client, self.batch):
                if not self._name_removed(listed, tenant=tenant.decode()) and listed <= last:
                    self._problem(listed, INDEX, f"tenant index of {tenant.decode()!r} lists a position it lacks")

    def _leftover_versions(self, oid: bytes, last: int) -> None:
        for version, position in aggregate_index(self.client, self.keys, oid.decode()):
            if position > last:
                continue  # cut off: reported as the truncation
            if not self._name_removed(position, aggregate=oid.decode(), version=version):
                aggregate = self.aggregates[oid]
                if version > aggregate.version:
                    self._problem(
                        position,
                        INDEX,
                        f"the index lists version {version} at {position}, which the log does not hold",
                        aggregate=oid.decode(),
                        version=version,
                    )


def verify(client: redis.Redis, shards: list[ShardKeys], ring: KeyRing, batch: int = 1000) -> Report:
    reports = [ShardVerifier(client, keys, ring, batch).run() for keys in shards]
    problems = [r.problems[0] for r in reports if r.problems]
    return Report(ok=not problems, shards=reports, first_problem=problems[0] if problems else None)


def render(report: Report) -> str:
    """The human-readable report."""
    lines = []
    for r in report.shards:
        lines.append(
            f"shard {r.shard}: {r.events} events (last position {r.last_position}), {r.checkpoints} checkpoints, "
            f"walked in {r.seconds:.2f}s ({r.events_per_second:,.0f} events/s)"
        )
        if r.signed_through:
            lines.append(f"  signed through position {r.signed_through}")
        if r.unverified_tail:
            t = r.unverified_tail
            lines.append(
                f"  unverified tail: {t.count} events after the last checkpoint (positions {t.first}..{t.last}): "
                "their chain is consistent but not signed yet, so a truncation inside the tail cannot be proven"
            )
        for i, problem in enumerate(r.problems):
            lines.append(("  FIRST PROBLEM: " if i == 0 else "  also: ") + problem.describe())
        if r.more_problems:
            lines.append(f"  … and {r.more_problems} more problems")
    if report.first_problem is None:
        lines.append("INTACT: every chain, index and checkpoint checks out")
    else:
        lines.append("TAMPERED: " + report.first_problem.describe())
    return "\n".join(lines)
