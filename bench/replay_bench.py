"""Replay benchmark: ``outcomes replay`` over a log of N events, beside raw reads of that log.

Run from the repository root (results: docs/benchmarks.md)::

    python -m bench.replay_bench                      # 1,000,000 events (333,334 selections)
    python -m bench.replay_bench --events 100000 --each   # a smoke run, each view alone too
    python -m bench.replay_bench --check              # exit 1 below 50,000 events/s
    python -m bench.replay_bench --data var/rb --reuse    # again, on the log an earlier run loaded

The log (``--log reports``, the default): ``bench.report_load``'s tenant (50 projects, 500
agents in 25 teams, 90 days across a DST change), N/3 calls each started, ended and given an
outcome (1% corrected), written through the Ledger's save path. ``--log calls``: the simpler
log of ``load`` below (calls of three events through ``insert_events``, five agents).

Measured in the same run, against the same private redis-server (AOF ``appendfsync always``),
each as wall time and CPU time (this process and its build processes, and redis-server's):

* baselines: a raw ``XRANGE … COUNT 1000`` walk of the whole log (redis-py's reply parsing,
  no decoding); the same walk decoding every event (``StructMapper.decode``); the views'
  read path (``projections.base.read_batch``: the reply as the server sends it, decoded);
* with ``--each``: ``outcomes replay --view`` of each view alone, in one process (the cost
  per view that ``projections.replay.COST`` records);
* every view in one process, then every view in ``--processes`` processes (default: what
  ``outcomes replay`` does, ``processes_for``: one per core but one -- and when that is one,
  two for comparison), with the progress output on stderr: the rebuild into a fresh
  generation, the switch-over and the removal of the old keys (grace 0). ``--check`` judges
  the default.

Each replay runs as ``outcomes replay`` in a fresh process (``run_replay``), as users run it:
replayed in this process, it paid for the collector walking the loader's objects.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench.report_load import Loaded, Shape
from bench.report_load import configure as report_configure
from bench.report_load import load as report_load
from bench.reports_bench import cpu_seconds, read_path
from events.codec import DomainEvent, StructMapper, SubjectKeys
from events.embedded import EmbeddedRedis, free_port
from events.keys import ShardKeys
from events.store import RedisApplicationRecorder, xrange
from events.types import CallEnded, CallStarted, OutcomeDefinition, OutcomeFlags, OutcomeSelected, ProjectSettings
from projections.base import bulk_gc
from projections.models import names
from projections.replay import ProgressReport, processes_for
from services.config import Settings
from services.interactions import aggregate_id
from services.rules import Context
from services.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent / "var" / "bench-replay"
TENANT = "acme"
PROJECT = "winter"
CODES = ("SALE", "NO_SALE", "CALLBACK", "NO_ANSWER_LATER")
AGENTS = tuple(f"agent-{n}" for n in range(5))
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
CALLS_PER_INSERT = 1000
TARGET = 50_000


def configure(runtime: Runtime) -> dict[str, tuple[OutcomeDefinition, int]]:
    """The tenant, its outcomes and project, through the Ledger; returns code -> (definition,
    the project's outcome-set version)."""
    runtime.create_tenant(TENANT, "Acme")
    ledger = runtime.ledger(TENANT)
    ctx = Context(TENANT, "admin:bench", datetime.now(UTC))
    for code in CODES:
        ledger.define_outcome(
            ctx, OutcomeDefinition(code=code, name=code.title(), flags=OutcomeFlags(success=code == "SALE"))
        )
    ledger.create_project(ctx, PROJECT, ProjectSettings(name="Winter", direction="outbound"))
    outcome_set = ledger.outcome_set(TENANT, PROJECT)
    return {o.definition.code: (o.definition, outcome_set.version) for o in outcome_set.outcomes}


def call_events(n: int, outcomes: dict[str, tuple[OutcomeDefinition, int]], now: datetime) -> list[DomainEvent]:
    call_id = f"c-{n}"
    oid = aggregate_id(TENANT, "call", call_id)
    agent = AGENTS[n % len(AGENTS)]
    started = T0 + timedelta(days=n % 30, seconds=n % 36_000)
    definition, version = outcomes[CODES[n % len(CODES)]]
    common = {"originator_id": oid, "recorded_at": now, "tenant_id": TENANT, "actor": f"agent:{agent}"}
    return [
        CallStarted(
            **common,  # type: ignore[arg-type]
            originator_version=1,
            occurred_at=started,
            call_id=call_id,
            project_id=PROJECT,
            direction="outbound",
            agent_id=agent,
        ),
        CallEnded(**common, originator_version=2, occurred_at=started + timedelta(minutes=3), call_id=call_id),  # type: ignore[arg-type]
        OutcomeSelected(
            **common,  # type: ignore[arg-type]
            originator_version=3,
            occurred_at=started + timedelta(minutes=3, seconds=10),
            interaction="call",
            interaction_id=call_id,
            project_id=PROJECT,
            outcome_code=definition.code,
            outcome_set_version=version,
            definition=definition,
            agent_id=agent,
        ),
    ]


def load(runtime: Runtime, events: int, progress: ProgressReport) -> float:
    """Write ``events`` (rounded up to whole calls) through the recorder; returns seconds."""
    outcomes = configure(runtime)
    ledger = runtime.ledger(TENANT)
    recorder = ledger.recorder
    assert isinstance(recorder, RedisApplicationRecorder)
    mapper: StructMapper = ledger.mapper  # type: ignore[assignment]
    calls = -(-events // 3)
    progress.start("load", calls * 3)
    started = time.monotonic()
    now = datetime.now(UTC)
    for first in range(0, calls, CALLS_PER_INSERT):
        batch = [e for n in range(first, min(first + CALLS_PER_INSERT, calls)) for e in call_events(n, outcomes, now)]
        recorder.insert_events([mapper.to_stored_event(e) for e in batch], tenant=TENANT)
        progress.advance(len(batch), calls * 3)
    progress.finish()
    return time.monotonic() - started


def walk(
    client: redis.Redis, keys: ShardKeys, on_batch: Callable[[list[tuple[bytes, dict[bytes, bytes]]]], object]
) -> int:
    """XRANGE the whole log 1,000 at a time; returns the entries read."""
    after, count = "-", 0
    while entries := xrange(client, keys.log, after, "+", 1000):
        on_batch(entries)
        count += len(entries)
        after = "(" + entries[-1][0].decode()
    return count


def own_cpu() -> float:
    """This process's CPU time and that of its ended children (the build processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Measure:
    """Wall and CPU time of each step (Python, build processes included, and redis-server):
    on a shared machine the wall time says how busy it was as much as how fast the code is."""

    def __init__(self, redis_pid: int) -> None:
        self.redis_pid = redis_pid

    def run(self, what: str, step: Callable[[], int]) -> float:
        wall, cpu, redis_cpu = time.perf_counter(), own_cpu(), cpu_seconds(self.redis_pid)
        events = step()
        wall = time.perf_counter() - wall
        cpu, redis_cpu = own_cpu() - cpu, cpu_seconds(self.redis_pid) - redis_cpu
        print(
            f"{what:<44} {events:>10,} events {wall:7.1f} s {events / wall:>9,.0f}/s wall  "
            f"CPU python {cpu:6.1f} s redis {redis_cpu:5.1f} s -> {events / (cpu + redis_cpu):>9,.0f} events/CPU-s  "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        return events / wall


def load_reports_log(runtime: Runtime, events: int) -> None:
    """``bench.report_load``'s tenant and events / 3 selections (3 events each, about)."""
    shape = Shape(selections=-(-events // 3))
    report_configure(runtime, TENANT, shape)
    began = time.perf_counter()

    def progress(done: Loaded) -> None:
        rate = done.events / (time.perf_counter() - began)
        print(f"  loaded {done.events:,} events ({rate:,.0f}/s)  load {os.getloadavg()[0]:.1f}", file=sys.stderr)

    report_load(runtime, TENANT, shape, 500, progress)


def run_replay(url: str, views: list[str], processes: int) -> None:
    """``outcomes replay`` as users run it: a fresh process (not this one, which may hold the
    loader's objects for the collector to walk), its progress on this one's stderr."""
    env = {**os.environ, "REDIS_URL": url, "REDIS_SHARD": "s00", "REDIS_KEY_PREFIX": "rb"}
    command = [sys.executable, "-m", "services.cli", "replay", "--grace", "0", "--processes", str(processes)]
    command += [f"--view={name}" for name in views]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--log", choices=("reports", "calls"), default="reports")
    parser.add_argument("--each", action="store_true", help="also replay each view alone (one process)")
    parser.add_argument(
        "--processes", type=int, default=None, help="build processes (default: processes_for, one per core but one)"
    )
    parser.add_argument("--data", type=Path, default=ROOT, help="redis-server's directory")
    parser.add_argument("--reuse", action="store_true", help="keep the log loaded in --data by an earlier run")
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if replaying every view is below {TARGET:,} events/s of log"
    )
    args = parser.parse_args(argv)

    bulk_gc()  # as ``outcomes replay`` does
    if not args.reuse:
        shutil.rmtree(args.data, ignore_errors=True)
    server = EmbeddedRedis(args.data, port=free_port(), extra_args=["--auto-aof-rewrite-percentage", "0"])
    server.start(timeout=900 if args.reuse else 15)
    try:
        settings = Settings(redis_url=server.url, shard="s00", key_prefix="rb", allow_weak_durability=False)
        runtime = Runtime(settings)
        client, keys = runtime.client, ShardKeys("s00", "rb")
        assert server.process is not None
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.2f}; redis-server {'.'.join(map(str, server.version))} "
            f"(AOF appendfsync {client.config_get('appendfsync')['appendfsync']}); Python {platform.python_version()}"
        )
        report = ProgressReport(sys.stderr)
        if not args.reuse:
            began = time.monotonic()
            load_reports_log(runtime, args.events) if args.log == "reports" else load(runtime, args.events, report)
            head = int(client.hget(keys.head, "n") or 0)  # type: ignore[arg-type]
            print(f"load through the recorder: {head:,} events in {time.monotonic() - began:.1f} s")
            gc.freeze()  # the loader's objects: out of the collector's walks during the read baselines
        head = int(client.hget(keys.head, "n") or 0)  # type: ignore[arg-type]
        measure = Measure(server.process.pid)
        mapper = StructMapper(keys=SubjectKeys(client, "rb"))
        measure.run("baseline: raw XRANGE walk", lambda: walk(client, keys, lambda entries: None))
        measure.run(
            "XRANGE walk + decode (redis-py reply)",
            lambda: walk(
                client, keys, lambda es: [mapper.decode(f[b"t"].decode(), f[b"s"], unseal=False) for _, f in es]
            ),
        )
        measure.run("views' read path (read_batch: raw reply + decode)", lambda: read_path(client, keys, mapper))

        def replay(views: list[str], processes: int) -> int:
            run_replay(server.url, views, processes)
            return head

        for name in names() if args.each else ():
            measure.run(f"replay {name} alone (1 process)", lambda name=name: replay([name], 1))  # type: ignore[misc]
        every = measure.run("replay of every view, 1 process", lambda: replay([], 1))
        processes = processes_for(head, args.processes)
        if processes > 1:
            every = measure.run(f"replay of every view, {processes} processes", lambda: replay([], processes))
        elif (os.cpu_count() or 1) > 1:
            measure.run("replay of every view, 2 processes (not the default here)", lambda: replay([], 2))
        runtime.close()
        return 1 if args.check and every < TARGET else 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
