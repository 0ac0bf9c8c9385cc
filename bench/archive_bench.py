"""Archive-tier benchmark (docs/archive.md; results: docs/benchmarks.md).

    python -m bench.archive_bench                  # 200,000 events
    python -m bench.archive_bench --events 30000   # a smoke run

A private redis-server (AOF ``appendfsync always``); the log written as in
``bench/replay_bench.py`` (calls of three events through the real recorder), signed, then
archived but for its last tenth. Measured in the same run:

* Redis memory per event: ``used_memory`` (after MEMORY PURGE) over the empty server's, per
  event, before and after archiving; the log stream's own bytes per hot event;
* read rate of the whole log: raw ``XRANGE … COUNT 1000`` from Redis before archiving (the
  baseline), then ``read_log`` over archive + Redis after it (files read cold, sha256 checked);
* ``Replayer.replay`` of every view from 0, before and after archiving;
* what each key family costs (``ah``: the compact index entries of wholly archived
  aggregates, events/compact.py) (``MEMORY USAGE`` of every key, grouped by its name with the
  tenant, aggregate or day left out), before and after archiving, and how many read-model
  rows the run moved to the archive (projections/cold.py);
* that every reader gives what it gave before archiving: every view's keys after a replay
  over archive + Redis (a digest), the tenant's export, ``verify`` (no problem, every event
  checked), the reports (rates, history, outcome mix) reading archived rows and after the
  replay; exit 1 if any differs (``used_memory`` against the 20% goal is printed);
* the reports reading those rows: the project's rates over the 30 days ending today (every
  row of the period: all the calls) and the history's first page (100 rows, the oldest), before and after
  archiving, in CPU-seconds (Python + redis-server).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import re
import shutil
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import redis

from bench.replay_bench import PROJECT, T0, TENANT, load, walk
from bench.reports_bench import Clock, load_average
from events import archive
from events.archive import log_entries
from events.codec import StructMapper, SubjectKeys
from events.embedded import EmbeddedRedis
from events.keys import ShardKeys
from projections.base import current
from projections.history import HistoryFilter, history
from projections.models import names
from projections.outcome_mix import outcome_mix
from projections.rates import rates
from projections.replay import ProgressReport, Replayer
from services.archive import Archiver
from services.checkpoints import Checkpointer, KeyRing, Signer, generate_key
from services.config import Settings
from services.export import Exporter, ndjson
from services.runtime import Runtime
from services.verify import ShardVerifier

ROOT = Path(__file__).resolve().parent.parent / "var" / "bench-archive"
TARGET = 100_000  # archive read rate goal, events/s


def used_memory(client: redis.Redis) -> int:
    client.execute_command("MEMORY PURGE")
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def family(key: str) -> str:
    """A key's family: its name up to the part that names a tenant, aggregate or day."""
    parts = re.sub(r"\{[^}]*\}", "{s}", key).split(":")
    return ":".join(parts[:5] if len(parts) > 3 and parts[2] == "v" else parts[:3])


def families(client: redis.Redis) -> tuple[Counter[str], Counter[str]]:
    """Bytes and keys per family (MEMORY USAGE, every element counted: SAMPLES 0)."""
    size: Counter[str] = Counter()
    count: Counter[str] = Counter()
    batch: list[bytes] = []

    def measure() -> None:  # one round trip per thousand keys (millions of keys at 5M events)
        pipe = client.pipeline(transaction=False)
        for raw in batch:
            pipe.memory_usage(raw, samples=0)
        for raw, used in zip(batch, pipe.execute(), strict=True):
            name = family(raw.decode())
            size[name] += int(used or 0)
            count[name] += 1
        batch.clear()

    for raw in client.scan_iter(count=1000):
        batch.append(raw)
        if len(batch) == 1000:
            measure()
    measure()
    return size, count


def queries(client: redis.Redis, keys: ShardKeys, clock: Clock) -> dict[str, dict[str, float]]:
    """CPU cost of two reports that read every row they show (their ``events``: rows)."""
    keys = current(client, keys)
    last = (T0 + timedelta(days=29)).date()  # the loaded calls start over 30 days from T0

    def rates_30_days() -> int:
        return rates(client, keys, TENANT, project=PROJECT, rolling_30_days_ending=last).calls

    def history_page() -> int:
        return len(history(client, keys, TENANT, f=HistoryFilter(), limit=100).rows)

    return {"rates, 30 days": clock.run(rates_30_days), "history, first page": clock.run(history_page)}


def views_digest(client: redis.Redis, keys: ShardKeys) -> str:
    """A digest of every view's keys in its current generation (names relative to it, so two
    generations holding the same compare equal) and of each view's position. Per key the sum
    of its fields' hashes: independent of the order HSCAN walks a hash in."""
    keys = current(client, keys)
    parts: list[str] = []
    for name in names():
        prefix = keys.view(name)
        parts.append(f"{name} @ {client.hget(keys.tracking, keys.view_position(name))!r}")
        for raw in client.scan_iter(match=prefix + "*", count=1000):
            kind = client.type(raw)
            pairs = client.hscan_iter(raw, count=1000) if kind == b"hash" else client.zscan_iter(raw, count=1000)
            total = 0
            for member, value in pairs:
                total += int.from_bytes(hashlib.blake2b(member + b"\0" + str(value).encode(), digest_size=16).digest())
            parts.append(f"{name} {raw.decode()[len(prefix) :]} {total % 2**128:x}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


def export_digest(client: redis.Redis, keys: ShardKeys) -> str:
    """sha256 of the tenant's whole log as ``outcomes export`` gives it (JSON lines)."""
    digest = hashlib.sha256()
    for line in ndjson(Exporter(client, keys, TENANT).log()):
        digest.update(line)
    return digest.hexdigest()


def reports(client: redis.Redis, keys: ShardKeys) -> tuple[Any, ...]:
    """What the reports show: the project's 30-day rates, the history's first and last pages
    (newest and oldest calls), the outcome mix by outcome."""
    keys = current(client, keys)
    last = (T0 + timedelta(days=29)).date()
    return (
        rates(client, keys, TENANT, project=PROJECT, rolling_30_days_ending=last),
        history(client, keys, TENANT, f=HistoryFilter(), limit=100).rows,
        outcome_mix(client, keys, TENANT, interaction="call"),
    )


def verified(client: redis.Redis, keys: ShardKeys) -> int:
    """``outcomes verify`` over the shard (archive then Redis): the events it checked; fails loudly."""
    report = ShardVerifier(client, keys, KeyRing.from_files([str(ROOT / "checkpoint.key.pub")])).run()
    assert report.ok, [p.describe() for p in report.problems[:5]]
    return report.events


def replay(runtime: Runtime) -> float:
    keys = runtime.shard_keys_for(runtime.settings.shard)
    mapper = StructMapper(keys=SubjectKeys(runtime.client, runtime.settings.key_prefix))
    started = time.monotonic()
    Replayer(runtime.client, keys, mapper, grace=0, report=ProgressReport(io.StringIO())).replay()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args(argv)
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    python = platform.python_version()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    # without per-command latency histograms (~27 kB per command name: the server's, not the history's)
    server = EmbeddedRedis(ROOT / "redis", appendfsync="always", extra_args=["--latency-tracking", "no"]).start()
    runtime = Runtime(Settings(redis_url=server.url))
    client = runtime.client
    keys = runtime.shard_keys_for(runtime.settings.shard)
    try:
        began = time.monotonic()

        def step(what: str) -> None:  # on stderr: the 5M run takes most of an hour
            print(f"[{time.monotonic() - began:6.0f} s] {what}", file=sys.stderr, flush=True)

        empty = used_memory(client)
        load(runtime, args.events, ProgressReport(io.StringIO()))
        step("loaded")
        events = int(cast(bytes, client.hget(keys.head, "n")))
        generate_key(ROOT / "checkpoint.key")
        Checkpointer(client, keys, Signer.from_file(ROOT / "checkpoint.key"), every_events=10_000).run_once(force=True)
        started = time.monotonic()
        raw = walk(client, keys, lambda _: None)
        xrange_seconds = time.monotonic() - started
        replay_before = replay(runtime)  # the read models are built before memory is measured
        step("replayed every view")
        assert server.process is not None
        clock = Clock(server.process.pid)
        queries_before = queries(client, keys, clock)
        readers_before = views_digest(client, keys), export_digest(client, keys), verified(client, keys)
        reports_before = reports(client, keys)
        before = used_memory(client)
        log_before = int(client.memory_usage(keys.log) or 0)
        families_before = families(client)
        step("readers and memory measured")

        started = time.monotonic()
        run = Archiver(client, keys, str(ROOT / "archive")).run(before_position=events - events // 10 + 1)
        archive_seconds = time.monotonic() - started
        step("archived")
        after = used_memory(client)
        families_after = families(client)
        queries_after = queries(client, keys, clock)  # the rows of archived calls read from the archive
        hot = client.xlen(keys.log)
        log_after = int(client.memory_usage(keys.log) or 0)

        archive._segment_entries.cache_clear()  # read the files cold
        archive._manifest.cache_clear()
        walked = clock.run(lambda: sum(1 for _ in log_entries(client, keys)))
        read, read_seconds = int(walked["events"]), walked["seconds"]
        reports_archived = reports(client, keys)  # rows of archived calls from the archive
        replay_after = replay(runtime)
        step("replayed every view over the archive")
        assert raw == read == events, (raw, read, events)
        readers_after = views_digest(client, keys), export_digest(client, keys), verified(client, keys)
        same = {
            "replay (every view's keys)": readers_after[0] == readers_before[0],
            "export (the tenant's log)": readers_after[1] == readers_before[1],
            "verify (events checked, no problem)": readers_after[2] == readers_before[2] == events,
            "reports, archived rows read from the archive": reports_archived == reports_before,
            "reports after the replay": reports(client, keys) == reports_before,
        }

        files = len(run.segments)
        print(f"load average: {load_average()}")
        print(f"log: {events:,} events; archived {run.through:,} in {files} files in {archive_seconds:.1f} s")
        print(f"  and {run.rows_retired:,} read-model rows of wholly archived interactions;")
        print(f"  {run.compacted:,} wholly archived aggregates' indexes compacted")
        print(f"used_memory over the empty server: {(before - empty) / events:,.0f} B/event before archiving, ")
        print(f"  {(after - empty) / hot:,.0f} B per hot event after ({before:,} -> {after:,} B, {after / before:.0%};")
        print(f"  the history's own, over the empty server's {empty:,} B: {(after - empty) / (before - empty):.0%})")
        print("key family: bytes (keys) before -> after")
        (size_before, count_before), (size_after, count_after) = families_before, families_after
        for name, _ in (size_before + size_after).most_common(12):
            print(
                f"  {name:34s} {size_before[name]:>13,} ({count_before[name]:,})"
                f" -> {size_after[name]:>13,} ({count_after[name]:,})"
            )
        print(f"log stream: {log_before / events:,.0f} B/event before, {log_after / hot:,.0f} B per hot event after")
        print(f"baseline XRANGE walk (Redis): {raw / xrange_seconds:,.0f} events/s")
        rate = read / read_seconds
        print(f"read_log walk (archive cold + Redis): {rate:,.0f} events/s (goal {TARGET:,}),")
        print(f"  {walked['events_per_cpu_s']:,.0f} events per CPU-second (Python + redis-server)")
        for name, cost in queries_before.items():
            after_cost = queries_after[name]
            print(
                f"{name}: {int(cost['events']):,} rows, {cost['python_cpu_s'] + cost['redis_cpu_s']:.3f} CPU-s before,"
                f" {after_cost['python_cpu_s'] + after_cost['redis_cpu_s']:.3f} CPU-s after archiving"
                f" ({int(after_cost['events']):,} rows)"
            )
        print(f"replay of every view from 0: {events / replay_before:,.0f} events/s before, ")
        print(f"  {events / replay_after:,.0f} events/s after archiving")
        for what, equal in same.items():
            print(f"same as before archiving: {what}: {'yes' if equal else 'NO'}")
        share = (after - empty) / (before - empty)
        print(f"used_memory after / before: {share:.1%} (goal at most 20%): {'met' if share <= 0.2 else 'NOT met'}")
        if not all(same.values()):
            return 1
    finally:
        runtime.close()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
