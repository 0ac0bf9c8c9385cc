"""``outcomes replay``: rebuild read models from the log into a fresh generation, then switch
over atomically (docs/replay.md).

For each view: take the generation being built (``<view>~next`` in the shard's view
generations hash) or number a new one; catch it up from its own tracking position to the
end of the log, committing keys and position together batch by batch (projections.base.View),
so a replay killed at any instant resumes where the fresh keys say it got to; switch the
pointer in one script (``switch_view.lua``); give queries that already resolved the old
generation a grace period; then delete the old generation's keys.

The live projection worker never writes into a generation being built (it follows the
pointer) and, after the switch, continues from the new generation's tracking position.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO, cast

import redis

from events.codec import StructMapper, SubjectKeys
from events.connect import redis_client
from events.keys import ShardKeys
from events.store import register_lua
from projections import cold
from projections.alerts import NAME as ALERTS
from projections.base import View, bulk_gc, catch_up_together, delete_keys_under, generation
from projections.follow_up_sla import NAME as FOLLOW_UP_SLA
from projections.interactions import NAME as INTERACTIONS
from projections.models import names, read_models
from projections.outcome_counts import NAME as OUTCOME_COUNTS
from projections.outcome_mix import NAME as OUTCOME_MIX

BAR_WIDTH = 24
#: seconds between redraws of the line on a terminal
TTY_INTERVAL = 0.1


# -- progress ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    view: str
    #: events applied by this run so far, and to apply in all (grows while the log grows)
    done: int
    total: int
    #: seconds since this run started on the view
    elapsed: float


def duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_line(p: Progress) -> str:
    """``<view> [#####.....] done/total events  N events/s  ETA m:ss`` (pure)."""
    share = p.done / p.total if p.total else 1.0
    filled = min(BAR_WIDTH, int(share * BAR_WIDTH))
    rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
    if p.done >= p.total:
        eta = "done"
    elif rate > 0:
        eta = "ETA " + duration((p.total - p.done) / rate)
    else:
        eta = "ETA ?"
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"{p.view} [{bar}] {p.done:,}/{p.total:,} events  {rate:,.0f} events/s  {eta}"


class ProgressReport:
    """Progress on a stream (stderr): one redrawn line on a terminal; otherwise a plain line
    at most every ``interval`` seconds, and the last one."""

    def __init__(
        self,
        stream: TextIO,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.tty = stream.isatty() if tty is None else tty
        self.view = ""
        self.total = 0
        self.done = 0
        self.started = 0.0
        self.shown = 0.0

    def note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, view: str, total: int) -> None:
        self.view, self.total, self.done = view, total, 0
        self.started = self.shown = self.clock()
        self._show()

    def advance(self, events: int, total: int | Callable[[], int]) -> None:
        self.update(self.done + events, total)

    def update(self, done: int, total: int | Callable[[], int]) -> None:
        """``total`` may be a function (a read of the log's head): called only when the line
        is drawn, not per batch -- a read per batch waits behind the batch's commits."""
        self.done = done
        due = TTY_INTERVAL if self.tty else self.interval
        if self.clock() - self.shown >= due:
            self.total = max(total() if callable(total) else total, self.done)
            self._show()

    def finish(self) -> None:
        self.total = max(self.total, self.done)
        self._show()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _show(self) -> None:
        self.shown = self.clock()
        line = progress_line(Progress(self.view, self.done, self.total, self.shown - self.started))
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()


# -- views in processes -------------------------------------------------------------------------------

#: each view's CPU per event beyond reading and decoding the log, in units of that read
#: (which every build process pays once): bench/replay_bench.py --each at 1M events, 2026-12-04
#: (docs/benchmarks.md "Rebuild at 1M, 2026-12-04"); the light views decode two or three types
COST = {OUTCOME_COUNTS: 0.1, OUTCOME_MIX: 2.9, INTERACTIONS: 2.6, ALERTS: 0.1, FOLLOW_UP_SLA: 0.1}
#: entries a replay build keeps in memory per stateful view (the live worker's views keep
#: fewer): a rebuild is a batch job, and state it must read back from Redis once past the cap
#: costs it ~12% of its CPU at 1M events (docs/benchmarks.md); ~0.5-1 KB each, so up to ~1 GB
#: per view at the default (``outcomes replay --memory-cap``)
REPLAY_MEMORY_CAP = 1_000_000
#: below this many events to read, one process builds every view: starting another costs
#: about a CPU-second (the interpreter and the imports), which a short replay never wins back
PARALLEL_FROM = 200_000


def plan(views: Sequence[str], processes: int, cost: Mapping[str, float] = COST) -> list[list[str]]:
    """The views in at most ``processes`` groups of about equal cost (pure): the heaviest
    first, each into the group costing least so far. Each group is one process that reads
    the log itself, so the wall time is the costliest group's."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(processes, len(views))))]
    totals = [0.0] * len(groups)
    for name in sorted(views, key=lambda n: -cost.get(n, 1.0)):
        lightest = totals.index(min(totals))
        groups[lightest].append(name)
        totals[lightest] += cost.get(name, 1.0)
    return [sorted(g, key=list(views).index) for g in groups if g]


def processes_for(events: int, requested: int | None) -> int:
    """How many processes a replay of ``events`` uses: ``requested``, or (None) one per core
    but one for a long replay, and one for a short one. A build process keeps redis-server
    busy about 60% of its own time (it overlaps with it: ``_catch_up_pipelined``), so with
    Redis on the same machine the last core is Redis's: on 2 cores one process rebuilt 1M
    events in 16-18 s, two in 21 s (docs/benchmarks.md, 2026-12-04)."""
    if requested is not None:
        return max(1, requested)
    return max(1, (os.cpu_count() or 1) - 1) if events >= PARALLEL_FROM else 1


def _die_with_parent(parent: int) -> None:
    """A build process ends with the replay that started it (a SIGKILLed replay must not
    leave builders writing while it is run again): Linux's parent-death signal, and a check."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the check after each batch remains
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    _exit_if_orphaned(parent)


def _exit_if_orphaned(parent: int) -> None:
    if os.getppid() != parent:
        os._exit(1)


def build_in_process(
    url: str,
    shard: str,
    prefix: str,
    batch_size: int,
    memory_cap: int | None,
    builds: list[tuple[str, str]],
    parent: int,
) -> None:
    """A build process: catch the views ``builds`` names, each in its generation, up to the
    end of the log, in one pass (``catch_up_together``). Keys and position are committed
    together batch by batch, as in one process: killed, the next run resumes from them."""
    _die_with_parent(parent)
    bulk_gc()
    client = redis_client(url)  # a redis+cluster:// URL gives a cluster client
    try:
        keys = ShardKeys(shard, prefix)
        mapper = StructMapper(keys=SubjectKeys(client, prefix))
        replayer = Replayer(client, keys, mapper, batch_size=batch_size, memory_cap=memory_cap)
        views = [replayer.build(name, gen) for name, gen in builds]
        catch_up_together(views, None, on_batch=lambda _n, _last: _exit_if_orphaned(parent), pipelined=True)
    finally:
        client.close()


# -- the generations ----------------------------------------------------------------------------------


def _field(name: str, suffix: str) -> str:
    return f"{name}~{suffix}"


def generation_to_build(client: redis.Redis, keys: ShardKeys, name: str) -> tuple[str, bool]:
    """The generation a replay of ``name`` builds, and whether it was already begun (resume)."""
    hash_ = keys.view_generations
    begun = client.hget(hash_, _field(name, "next"))
    if begun is not None:
        return cast(bytes, begun).decode(), True
    number = str(client.hincrby(hash_, _field(name, "seq"), 1))
    # a replay started at the same moment may have set it first: build that one together
    client.hsetnx(hash_, _field(name, "next"), number)
    return cast(bytes, client.hget(hash_, _field(name, "next"))).decode(), False


def remove_old(client: redis.Redis, keys: ShardKeys, views: Sequence[str]) -> dict[str, int]:
    """Delete the keys of the generations a switch replaced (``<name>~old``) and their rows in
    the archive, every view's in one walk of the keyspace; returns how many keys per view."""
    found = cast(list[bytes | None], client.hmget(keys.view_generations, [_field(n, "old") for n in views]))
    olds = {n: old.decode() for n, old in zip(views, found, strict=True) if old is not None}
    replaced = {n: keys.with_generation(n, old) for n, old in olds.items()}
    if not replaced:
        return dict.fromkeys(views, 0)
    prefixes = {n: r.view(n) for n, r in replaced.items()}
    deleted = delete_keys_under(client, keys.prefix + "v:", list(prefixes.values()))
    for name, r in replaced.items():
        cold.remove_generation(client, r, name)  # its archived rows (after the registry naming them)
        client.hdel(keys.view_generations, _field(name, "old"))
    return {n: deleted[prefixes[n]] if n in prefixes else 0 for n in views}


@dataclass(frozen=True)
class _Build:
    view: View
    generation: str
    start: int


@dataclass(frozen=True)
class Replayed:
    view: str
    generation: str
    #: the old generation ("" = the first, unnumbered one)
    replaced: str
    #: the position the new generation started from in this run (> 0: resumed)
    resumed_at: int
    #: events of the log this run applied to the view, and the run's seconds (one pass for all)
    events: int
    seconds: float
    position: int
    old_keys_deleted: int


class Replayer:
    def __init__(
        self,
        client: redis.Redis,
        keys: ShardKeys,
        mapper: StructMapper,
        *,
        batch_size: int = 1000,
        memory_cap: int | None = REPLAY_MEMORY_CAP,
        grace: float = 2.0,
        report: ProgressReport | None = None,
        processes: int | None = 1,
        redis_url: str | None = None,
    ) -> None:
        """``processes``: how many processes build the views (None: ``processes_for``, or one
        without ``redis_url``); more than one needs ``redis_url`` (each connects on its own).
        ``memory_cap``: entries each stateful view keeps in memory (``read_models``)."""
        if processes is not None and processes > 1 and redis_url is None:
            raise ValueError("building views in several processes needs the Redis URL (redis_url)")
        self.client = client
        self.keys = keys
        self.mapper = mapper
        self.batch_size = batch_size
        self.memory_cap = memory_cap
        self.grace = grace
        self.report = report
        self.processes = processes
        self.redis_url = redis_url
        self._switch = register_lua(client, "projections", "switch_view.lua")

    def head(self) -> int:
        return int(cast(bytes | None, self.client.hget(self.keys.head, "n")) or 0)

    def replay(self, views: Sequence[str] = ()) -> list[Replayed]:
        """Rebuild the named views (default: all), one pass over the log per process, then
        switch each (after every one is built)."""
        unknown = sorted(set(views) - set(names()))
        if unknown:
            raise ValueError(f"unknown view(s) {', '.join(unknown)}; the views are {', '.join(names())}")
        chosen = list(dict.fromkeys(views)) or names()
        remove_old(self.client, self.keys, chosen)  # left by a run killed after its switch
        builds = [self._begin(name) for name in chosen]
        started = time.monotonic()
        self._catch_up(builds)
        seconds = time.monotonic() - started
        replaced = {b.view.name: self._switch_over(b) for b in builds}
        time.sleep(self.grace)  # queries that resolved the old generations just before finish
        removed = remove_old(self.client, self.keys, [b.view.name for b in builds])
        done = []
        for b in builds:
            deleted = removed[b.view.name]
            position = b.view.position()
            if self.report:
                self.report.note(
                    f"{b.view.name}: switched to generation {b.generation} at log position {position:,}; "
                    f"{deleted:,} keys of the old generation removed"
                )
            name = b.view.name
            done.append(
                Replayed(name, b.generation, replaced[name], b.start, position - b.start, seconds, position, deleted)
            )
        return done

    def build(self, name: str, generation_: str) -> View:
        """The view ``name`` writing into ``generation_`` only."""
        keys = self.keys.with_generation(name, generation_)
        built = read_models(
            self.client, keys, self.mapper, follow=False, batch_size=self.batch_size, memory_cap=self.memory_cap
        )
        return next(v for v in built if v.name == name)

    def _begin(self, name: str) -> _Build:
        gen, begun = generation_to_build(self.client, self.keys, name)
        view = self.build(name, gen)
        start = view.position()
        if begun and self.report:
            self.report.note(f"{name}: resuming generation {gen} at log position {start:,}")
        return _Build(view, gen, start)

    def _switch_over(self, b: _Build) -> str:
        """Point the view at its new generation (one script); returns the one it replaced."""
        name = b.view.name
        replaced = generation(self.client, self.keys, name)
        old_position = self.keys.with_generation(name, replaced).view_position(name)
        self._switch(
            keys=[self.keys.view_generations, self.keys.tracking], args=[name, b.generation, replaced, old_position]
        )
        return replaced

    def _catch_up(self, builds: Sequence[_Build]) -> None:
        first = min(b.start for b in builds)
        requested = self.processes if self.redis_url is not None else 1
        groups = plan([b.view.name for b in builds], processes_for(self.head() - first, requested))
        report = self.report
        if report is not None:
            if len(groups) > 1:
                report.note(f"{len(groups)} processes: " + " | ".join(", ".join(g) for g in groups))
            report.start(builds[0].view.name if len(builds) == 1 else f"{len(builds)} views", self.head() - first)
        if len(groups) > 1:
            self._catch_up_in_processes(builds, groups, first)
        elif report is None:
            catch_up_together([b.view for b in builds], None, pipelined=True)
        else:
            catch_up_together(
                [b.view for b in builds],
                None,
                on_batch=lambda n, _: report.advance(n, lambda: self.head() - first),
                pipelined=True,
            )
        if report is not None:
            report.finish()

    def _catch_up_in_processes(self, builds: Sequence[_Build], groups: list[list[str]], first: int) -> None:
        """One build process per group (``build_in_process``), each reading the log itself
        from its views' positions; progress from the positions in Redis (the slowest view's);
        a failed process stops the others and the replay (run it again to resume)."""
        generations = {b.view.name: b.generation for b in builds}
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited connections or locks
        running = [
            context.Process(
                target=build_in_process,
                args=(
                    self.redis_url,
                    self.keys.shard,
                    self.keys.base_prefix,
                    self.batch_size,
                    self.memory_cap,
                    [(name, generations[name]) for name in group],
                    os.getpid(),
                ),
                name=f"replay {', '.join(group)}",
                daemon=True,
            )
            for group in groups
        ]
        for process in running:
            process.start()
        fields = [b.view.keys.view_position(b.view.name) for b in builds]
        try:
            while any(p.is_alive() for p in running) and not _failed(running):
                time.sleep(0.2)
                if self.report is not None:
                    self.report.update(self._lowest(fields) - first, self.head() - first)
        finally:
            for process in running:
                if process.is_alive():
                    process.kill()  # another one failed (or this one was interrupted)
                process.join()
        failure = _failed(running)  # every one has ended: None means all succeeded
        if failure is not None:
            raise RuntimeError(
                f"{failure.name} ended with exit code {failure.exitcode}; run the replay again to resume"
            )
        if self.report is not None:
            built = self._lowest(fields) - first  # every view is at least there (the log may have grown since)
            self.report.update(built, built)

    def _lowest(self, fields: list[str]) -> int:
        """The lowest tracking position of these fields (0 for one not written yet)."""
        raw = cast(list[bytes | None], self.client.hmget(self.keys.tracking, fields))
        return min(int(p) if p is not None else 0 for p in raw)


def _failed(processes: Sequence[multiprocessing.process.BaseProcess]) -> multiprocessing.process.BaseProcess | None:
    """The first process that ended with an error."""
    return next((p for p in processes if p.exitcode not in (None, 0)), None)
