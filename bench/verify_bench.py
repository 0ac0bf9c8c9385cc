"""Verify benchmark: ``outcomes verify``'s walk against a raw XRANGE read of the same log.

Run from the repository root (results in docs/benchmarks.md)::

    python -m bench.verify_bench                 # 200,000 events, 3 rounds
    python -m bench.verify_bench --events 20000  # a smoke run

Workload: one shard, one tenant; each save writes ten new aggregates of three events (the
store benchmark's 300-byte states), so the log holds events/3 aggregates. The log is
written once through our recorder into a private redis-server under ``var/bench/verify``;
then, in rounds: the baseline reads the whole log with ``XRANGE … COUNT <batch>`` and does
nothing with it; the checkpointer walks it from the start and signs every 1,000 events;
``verify`` walks it with every check (both chains, both indexes, every signature).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from eventsourcing.utils import Environment

from bench.store_bench import cpu_model, load_average, make_events, memory_total
from events.embedded import EmbeddedRedis
from events.keys import ShardKeys
from events.store import RedisApplicationRecorder, RedisFactory, xrange
from services.checkpoints import Checkpointer, KeyRing, Signer, generate_key
from services.verify import ShardVerifier

ROOT = Path(__file__).resolve().parent.parent / "var" / "bench" / "verify"
AGGREGATES_PER_SAVE = 10


def load(url: str, keys: ShardKeys, events: int) -> None:
    env = Environment(env={"REDIS_URL": url, "REDIS_SHARD": keys.shard, "REDIS_KEY_PREFIX": keys.base_prefix})
    recorder = RedisFactory(env).application_recorder()
    assert isinstance(recorder, RedisApplicationRecorder)
    per_save = AGGREGATES_PER_SAVE * 3
    for _ in range(events // per_save):
        recorder.insert_events(
            [e for _ in range(AGGREGATES_PER_SAVE) for e in make_events(uuid.uuid4())], tenant="bench"
        )


def raw_read(client: redis.Redis, keys: ShardKeys, batch: int) -> int:
    count, after = 0, "-"
    while entries := xrange(client, keys.log, after, "+", batch):
        count += len(entries)
        after = "(" + entries[-1][0].decode()
    return count


def timed(what: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    n = what()
    return time.perf_counter() - started, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="XRANGE COUNT of all three")
    args = parser.parse_args()

    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    binary = shutil.which("redis-server", path="/usr/bin:/usr/local/bin") or None
    server = EmbeddedRedis(ROOT / "redis", appendfsync="always", binary=binary).start()
    try:
        client = redis.Redis.from_url(server.url)
        keys = ShardKeys("bench")
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {memory_total()}, load {load_average()}")
        print(f"python {sys.version.split()[0]}, redis-server {'.'.join(map(str, server.version))}")
        started = time.perf_counter()
        load(server.url, keys, args.events)
        total = int(client.hget(keys.head, "n") or 0)
        print(f"loaded {total:,} events in {time.perf_counter() - started:.1f}s")
        key = ROOT / "checkpoint.key"
        generate_key(key)
        signer = Signer.from_file(key)
        ring = KeyRing([signer.public])

        def sign() -> int:
            client.delete(keys.checkpoints)
            checkpointer = Checkpointer(client, keys, signer, every_events=1000, batch=args.batch)
            return len(checkpointer.run_once(force=True))

        def check() -> int:
            report = ShardVerifier(client, keys, ring, batch=args.batch).run()
            assert report.ok and report.unverified_tail is None, report.problems[:3]
            return report.events

        cases = {
            "raw XRANGE read (baseline)": lambda: raw_read(client, keys, args.batch),
            "checkpointer (signs every 1,000)": sign,
            "outcomes verify": check,
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, case in cases.items():
                seconds, _n = timed(case)
                results[name].append(total / seconds)
        baseline = statistics.median(results["raw XRANGE read (baseline)"])
        print(f"\n{'case':36} {'events/s (median)':>18} {'rounds':>30} {'vs baseline':>12}")
        for name, rates in results.items():
            median = statistics.median(rates)
            spread = ", ".join(f"{r:,.0f}" for r in rates)
            print(f"{name:36} {median:18,.0f} {spread:>30} {median / baseline:11.2f}x")
        print(f"\nload average after: {load_average()}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
