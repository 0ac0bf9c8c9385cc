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
* ``Replayer.replay`` of every view from 0, before and after archiving.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, cast

import redis

from bench.replay_bench import load, walk
from events import archive
from events.archive import log_entries
from events.codec import StructMapper, SubjectKeys
from events.embedded import EmbeddedRedis
from projections.replay import ProgressReport, Replayer
from services.archive import Archiver
from services.checkpoints import Checkpointer, Signer, generate_key
from services.config import Settings
from services.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent / "var" / "bench-archive"
TARGET = 100_000  # archive read rate goal, events/s


def used_memory(client: redis.Redis) -> int:
    client.execute_command("MEMORY PURGE")
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


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
    server = EmbeddedRedis(ROOT / "redis", appendfsync="always").start()
    runtime = Runtime(Settings(redis_url=server.url))
    client = runtime.client
    keys = runtime.shard_keys_for(runtime.settings.shard)
    try:
        empty = used_memory(client)
        load(runtime, args.events, ProgressReport(io.StringIO()))
        events = int(cast(bytes, client.hget(keys.head, "n")))
        generate_key(ROOT / "checkpoint.key")
        Checkpointer(client, keys, Signer.from_file(ROOT / "checkpoint.key"), every_events=10_000).run_once(force=True)
        started = time.monotonic()
        raw = walk(client, keys, lambda _: None)
        xrange_seconds = time.monotonic() - started
        replay_before = replay(runtime)  # the read models are built before memory is measured
        before = used_memory(client)
        log_before = int(client.memory_usage(keys.log) or 0)

        started = time.monotonic()
        run = Archiver(client, keys, str(ROOT / "archive")).run(before_position=events - events // 10 + 1)
        archive_seconds = time.monotonic() - started
        after = used_memory(client)
        hot = client.xlen(keys.log)
        log_after = int(client.memory_usage(keys.log) or 0)

        archive._segment_entries.cache_clear()  # read the files cold
        archive._manifest.cache_clear()
        started = time.monotonic()
        read = sum(1 for _ in log_entries(client, keys))
        read_seconds = time.monotonic() - started
        replay_after = replay(runtime)
        assert raw == read == events, (raw, read, events)

        files = len(run.segments)
        print(f"log: {events:,} events; archived {run.through:,} in {files} files in {archive_seconds:.1f} s")
        print(f"used_memory over the empty server: {(before - empty) / events:,.0f} B/event before archiving, ")
        print(f"  {(after - empty) / hot:,.0f} B per hot event after ({before:,} -> {after:,} B, {after / before:.0%})")
        print(f"log stream: {log_before / events:,.0f} B/event before, {log_after / hot:,.0f} B per hot event after")
        print(f"baseline XRANGE walk (Redis): {raw / xrange_seconds:,.0f} events/s")
        rate = read / read_seconds
        print(f"read_log walk (archive cold + Redis): {rate:,.0f} events/s (goal {TARGET:,})")
        print(f"replay of every view from 0: {events / replay_before:,.0f} events/s before, ")
        print(f"  {events / replay_after:,.0f} events/s after archiving")
    finally:
        runtime.close()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
