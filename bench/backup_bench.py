"""Backup and restore cost (docs/backups.md; results: docs/benchmarks.md).

    python -m bench.backup_bench                  # 100,000 events
    python -m bench.backup_bench --events 30000   # a smoke run

A private redis-server (AOF ``appendfsync always``); the log written as in
``bench/replay_bench.py``, signed, archived but for its last tenth. Measured in the same run,
each as wall seconds and CPU seconds (this process + the redis-server processes it started and
reaped + the source server's, its BGSAVE fork included):

* baseline backup: ``BGSAVE``, waited for, and a plain copy of the RDB;
* ``outcomes backup``: the same plus the snapshot loaded once to read its heads, the archive
  files copied and every file hashed;
* baseline restore: a redis-server started on the RDB (the load alone);
* ``outcomes restore``: hashes checked, archive put back, the RDB loaded, the AOF rewritten,
  SAVE.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from bench.replay_bench import load
from bench.reports_bench import load_average
from events.embedded import EmbeddedRedis
from projections.replay import ProgressReport
from services.archive import Archiver
from services.backup import RDB, bgsave, rdb_path, restore, take_backup
from services.checkpoints import Checkpointer, Signer, generate_key
from services.config import Settings
from services.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent / "var" / "bench-backup"


def total_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of a process (its reaped children: a BGSAVE fork)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def measured(source_pid: int, what: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of ``what``: this process, its reaped children, the source."""
    before = os.times()
    source = total_cpu(source_pid)
    wall = time.perf_counter()
    what()
    wall = time.perf_counter() - wall
    after = os.times()
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("user", "system", "children_user", "children_system"))
    return wall, cpu + total_cpu(source_pid) - source


Row = tuple[str, tuple[float, float]]


def run(server: EmbeddedRedis, events_wanted: int) -> tuple[int, list[Row]]:
    """Write and archive the log, then time the four steps; returns the events and the rows."""
    assert server.process is not None
    settings = Settings(redis_url=server.url, archive_url=str(ROOT / "archive"))
    runtime = Runtime(settings)
    client = runtime.client
    keys = runtime.shard_keys_for(settings.shard)
    try:
        load(runtime, events_wanted, ProgressReport(io.StringIO()))
        events = int(cast(bytes, client.hget(keys.head, "n")))
        generate_key(ROOT / "checkpoint.key")
        Checkpointer(client, keys, Signer.from_file(ROOT / "checkpoint.key"), every_events=10_000).run_once(force=True)
        Archiver(client, keys, settings.archive_url).run(before_position=events - events // 10 + 1)
        pid = server.process.pid

        def plain_backup() -> None:
            bgsave(client)
            shutil.copyfile(rdb_path(client, None), ROOT / "plain.rdb")

        def plain_restore() -> None:
            (ROOT / "plain").mkdir()
            shutil.copyfile(ROOT / "plain.rdb", ROOT / "plain" / "dump.rdb")
            EmbeddedRedis(ROOT / "plain", appendonly=False).start().stop()

        rows = [("baseline backup (BGSAVE + copy)", measured(pid, plain_backup))]
        rows.append(
            ("outcomes backup", measured(pid, lambda: take_backup(client, ROOT / "backup", keys.base_prefix, "s00")))
        )
        rows.append(("baseline restore (load the RDB)", measured(pid, plain_restore)))
        restored = measured(pid, lambda: restore(ROOT / "backup", ROOT / "restored", archive_url=str(ROOT / "a2")))
        return events, [*rows, ("outcomes restore", restored)]
    finally:
        runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, load {load_average()}")
    server = EmbeddedRedis(ROOT / "redis", appendfsync="always").start()
    try:
        events, rows = run(server, args.events)
    finally:
        server.stop()
    archive_mb = sum(f.stat().st_size for f in (ROOT / "backup" / "archive").rglob("*")) / 1e6
    rdb_mb = (ROOT / "backup" / RDB).stat().st_size / 1e6
    print(
        f"log: {events:,} events, {events - events // 10:,} archived; RDB {rdb_mb:.1f} MB, archive {archive_mb:.1f} MB"
    )
    for name, (wall, cpu) in rows:
        print(f"{name:34} {wall:6.2f} s wall  {cpu:6.2f} CPU-s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
