"""Replay benchmark: ``outcomes replay`` over a log of N events, beside a raw read of that log.

Run from the repository root (results: docs/benchmarks.md)::

    python -m bench.replay_bench                      # 1,000,000 events (about 3 minutes here)
    python -m bench.replay_bench --events 100000      # a smoke run
    python -m bench.replay_bench --check              # exit 1 below 50,000 events/s

The log: a tenant configured through the Ledger (outcomes, a project), then calls written
through the real recorder (``insert_events``, the append script with its hash chains and
indexes) in batches of 1,000 calls: each call ``CallStarted``, ``CallEnded`` and
``OutcomeSelected`` (one of four outcomes, five agents, starts spread over 30 days).

Measured in the same run, against the same private redis-server (AOF ``appendfsync always``):

* baseline: a raw ``XRANGE … COUNT 1000`` walk of the whole log (no decoding);
* the same walk decoding every event (msgspec), what any replay must at least do;
* ``Replayer.replay`` of each view alone, then of every view in one pass over the log (what
  ``outcomes replay`` runs), with its progress output shown on stderr: the rebuild into a
  fresh generation, the switch-over and the removal of the old keys (grace 0).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from events.codec import DomainEvent, StructMapper
from events.embedded import EmbeddedRedis, free_port
from events.keys import ShardKeys
from events.store import RedisApplicationRecorder, xrange
from events.types import CallEnded, CallStarted, OutcomeDefinition, OutcomeFlags, OutcomeSelected, ProjectSettings
from projections.models import names
from projections.replay import ProgressReport, Replayer
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
    client: redis.Redis, keys: ShardKeys, on_batch: Callable[[list[tuple[bytes, dict[bytes, bytes]]]], None]
) -> int:
    """XRANGE the whole log 1,000 at a time; returns the entries read."""
    after, count = "-", 0
    while entries := xrange(client, keys.log, after, "+", 1000):
        on_batch(entries)
        count += len(entries)
        after = "(" + entries[-1][0].decode()
    return count


def rate(events: int, seconds: float) -> str:
    return f"{events:,} events in {seconds:.2f} s = {events / seconds:,.0f} events/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if replaying every view is below {TARGET:,} events/s of log"
    )
    args = parser.parse_args(argv)

    shutil.rmtree(ROOT, ignore_errors=True)
    server = EmbeddedRedis(ROOT, port=free_port()).start()
    try:
        settings = Settings(redis_url=server.url, shard="s00", key_prefix="rb", allow_weak_durability=False)
        runtime = Runtime(settings)
        client, keys = runtime.client, ShardKeys("s00", "rb")
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.2f}; redis-server {'.'.join(map(str, server.version))} "
            f"(AOF appendfsync {client.config_get('appendfsync')['appendfsync']}); Python {platform.python_version()}"
        )
        report = ProgressReport(sys.stderr)
        seconds = load(runtime, args.events, report)
        head = int(client.hget(keys.head, "n") or 0)  # type: ignore[arg-type]
        print(f"load through the recorder: {rate(head, seconds)}")

        started = time.monotonic()
        read = walk(client, keys, lambda entries: None)
        print(f"baseline, raw XRANGE walk: {rate(read, time.monotonic() - started)}")
        mapper = StructMapper()
        started = time.monotonic()
        walk(client, keys, lambda entries: [mapper.decode(f[b"t"].decode(), f[b"s"]) for _, f in entries])
        print(f"XRANGE walk + decode:      {rate(read, time.monotonic() - started)}")

        replayer = Replayer(client, keys, mapper, grace=0, report=report)
        each = 0.0
        for name in names():
            (done,) = replayer.replay([name])
            each += done.seconds
            print(f"replay {name:<15} {rate(done.events, done.seconds)}")
        print(f"the three, one after another: {rate(head, each)} of log")
        # what `outcomes replay` does: every view in one pass over the log
        every = replayer.replay()
        print(f"replay of every view, one pass (outcomes replay): {rate(head, every[0].seconds)} of log")
        runtime.close()
        return 1 if args.check and head / every[0].seconds < TARGET else 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
