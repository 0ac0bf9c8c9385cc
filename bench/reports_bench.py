"""Report benchmark: outcome-mix query latency and projection catch-up over a big log.

``python -m bench.reports_bench [--selections 1000000] [--queries 200] [--json PATH]``

1. A private redis-server (``appendfsync always``) under ``var/bench/reports``.
2. ``bench.report_load``: one tenant, 50 projects, 500 agents in 25 teams; N calls over
   90 days (started, ended, outcome selected; 1% corrected), written through the Ledger's
   save path in saves of 500 calls.
3. Catch-up from position 0 of every view the projection worker runs
   (``workers.projections.ProjectionRunner.views``), one at a time and all together, beside
   two baselines over the same log: ``XRANGE … COUNT 1000`` alone, and XRANGE + decoding
   every event + counting per type in Python (no writes). All together is the worker's
   ``settle`` in a fresh process, as a worker starts on a long log (it takes the replay's
   pipelined pass there, then checks the alerts and quotas: docs/replay.md).
4. The four outcome-mix queries of the issue, each ``--queries`` times with a random
   project / agent / window, through ``projections.outcome_mix.outcome_mix`` (the function
   behind GET /v1/reports/outcome-mix) and through the ASGI app over HTTP
   (``litestar.testing.TestClient``); latency percentiles.

Goals (issue 5): p99 < 50 ms per query; catch-up >= 50,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import redis
from litestar.testing import TestClient

from bench.report_load import Loaded, Shape, configure, load
from events.codec import StructMapper, SubjectKeys
from events.embedded import EmbeddedRedis
from events.keys import ShardKeys
from events.store import xrange
from projections.base import bulk_gc, read_batch
from projections.models import read_models
from projections.outcome_mix import GroupBy, outcome_mix
from services.api.app import create_app
from services.config import Settings
from services.permissions import Role
from services.runtime import Runtime
from workers.projections import ProjectionRunner

TENANT = "bench"
GOAL_P99_MS = 50.0
GOAL_EVENTS_PER_S = 50_000
ALL_VIEWS = "all views (the worker's settle)"


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    mem = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return f"{cpu}, {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, Python {platform.python_version()}"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- catch-up -------------------------------------------------------------------------------------


def raw_read(runtime: Runtime, batch: int = 1000) -> int:
    """Baseline: read the whole log with XRANGE in batches, nothing else."""
    keys = runtime.shard_keys(TENANT)
    n, lo = 0, "-"
    while entries := xrange(runtime.client, keys.log, lo, "+", batch):
        n += len(entries)
        lo = "(" + entries[-1][0].decode()
    return n


def decode_and_count(runtime: Runtime, batch: int = 1000) -> int:
    """Baseline: the trivial projection -- read, decode every event, count per type in memory."""
    keys = runtime.shard_keys(TENANT)
    mapper = StructMapper(keys=SubjectKeys(runtime.client, runtime.settings.key_prefix))
    counts: Counter[str] = Counter()
    lo = "-"
    while entries := xrange(runtime.client, keys.log, lo, "+", batch):
        for _, fields in entries:
            counts[type(mapper.decode(fields[b"t"].decode(), fields[b"s"])).__name__] += 1
        lo = "(" + entries[-1][0].decode()
    return sum(counts.values())


def read_path(client: redis.Redis, keys: ShardKeys, mapper: StructMapper) -> int:
    """The views' read path over the whole log: ``read_batch`` (raw XRANGE reply, decoded)."""
    view = read_models(client, keys, mapper, follow=False)[0]
    position, n = 0, 0
    while (batch := read_batch(view, position, None)) is not None:
        position, n = batch.last, n + len(batch.ids)
    return n


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_settings(url: str) -> Settings:
    """The bench's shard and key prefix on its redis-server (the catch-up step's process too)."""
    return Settings(redis_url=url, shard="s00", key_prefix="ol")


def own_and_children_cpu() -> float:
    """This process's CPU time and its ended children's (a step run in a fresh process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Clock:
    """Wall time, this process's CPU time and redis-server's: on a shared 2-core machine
    the wall time says how busy the machine was as much as how fast the code is; the CPU
    time per event is steadier (both run one after the other, so events / (Python CPU +
    Redis CPU) approximates the rate on an idle machine)."""

    def __init__(self, redis_pid: int) -> None:
        self.redis_pid = redis_pid

    def run(self, what: Callable[[], int]) -> dict[str, float]:
        wall, cpu, redis_cpu = time.perf_counter(), own_and_children_cpu(), cpu_seconds(self.redis_pid)
        n = what()
        wall = time.perf_counter() - wall
        cpu = own_and_children_cpu() - cpu
        redis_cpu = cpu_seconds(self.redis_pid) - redis_cpu
        return {
            "events": n,
            "seconds": wall,
            "events_per_s": n / wall,
            "python_cpu_s": cpu,
            "redis_cpu_s": redis_cpu,
            "events_per_cpu_s": n / (cpu + redis_cpu),
        }


def catch_up(runtime: Runtime, head: int, clock: Clock, each: bool) -> list[dict[str, Any]]:
    runner = ProjectionRunner(runtime.settings)
    rows: list[dict[str, Any]] = []

    def row(name: str, what: Callable[[], int]) -> None:
        r = {"case": name, **clock.run(what), "load_average": load_average()}
        rows.append(r)
        print(
            f"  {name:<36} {r['events']:>10,} events {r['seconds']:7.1f} s {r['events_per_s']:>9,.0f}/s"
            f"  CPU python {r['python_cpu_s']:6.1f} s redis {r['redis_cpu_s']:6.1f} s"
            f" -> {r['events_per_cpu_s']:>9,.0f} events/CPU-s  load {r['load_average']}",
            flush=True,
        )

    row("baseline: XRANGE only", lambda: raw_read(runtime))
    row("baseline: XRANGE + decode + count", lambda: decode_and_count(runtime))
    keys, mapper = (
        runtime.shard_keys(TENANT),
        StructMapper(keys=SubjectKeys(runtime.client, runtime.settings.key_prefix)),
    )
    row("views' read path (read_batch)", lambda: read_path(runtime.client, keys, mapper))
    for view in runner.views if each else ():
        view.drop()
        row(f"view {view.name}", view.catch_up)
    for view in runner.views:
        view.drop()

    def settle() -> int:
        # in a fresh process, as a worker starts: this one holds the loader's objects
        url = runtime.settings.redis_url
        subprocess.run([sys.executable, "-m", "bench.reports_bench", "--settle", url, str(head)], check=True)
        return head

    row(ALL_VIEWS, settle)
    runner.runtime.close()
    runner.client.close()
    return rows


# -- queries --------------------------------------------------------------------------------------


def query_cases(shape: Shape, rng: random.Random) -> dict[str, Callable[[], dict[str, Any]]]:
    """The issue's four queries, each drawing its project / agent / window."""
    last = shape.first_day + timedelta(days=shape.days - 1)

    def window(days: int) -> dict[str, Any]:
        first = shape.first_day + timedelta(days=rng.randrange(max(1, shape.days - days + 1)))
        return {"date_from": first, "date_to": min(last, first + timedelta(days=days - 1))}

    def project() -> str:
        return shape.project(rng.randrange(shape.projects))

    def agent() -> str:
        return shape.agent(rng.randrange(shape.agents))

    return {
        "project x 30 days by outcome": lambda: {"project": project(), **window(30), "group_by": "outcome"},
        "agent x 7 days by outcome": lambda: {"agent": agent(), **window(7), "group_by": "outcome"},
        "tenant x 90 days by category": lambda: {
            "date_from": shape.first_day,
            "date_to": last,
            "group_by": "category",
        },
        "project x 90 days by week": lambda: {
            "project": project(),
            "date_from": shape.first_day,
            "date_to": last,
            "group_by": "week",
        },
    }


def measure(run: Callable[[dict[str, Any]], object], draw: Callable[[], dict[str, Any]], n: int) -> dict[str, float]:
    run(draw())  # warm
    ms: list[float] = []
    for _ in range(n):
        params = draw()
        began = time.perf_counter()
        run(params)
        ms.append((time.perf_counter() - began) * 1000)
    return {
        "p50_ms": statistics.median(ms),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
    }


def queries(runtime: Runtime, shape: Shape, n: int, http: bool) -> list[dict[str, Any]]:
    keys = runtime.shard_keys(TENANT)
    rng = random.Random(shape.seed + 2)
    rows: list[dict[str, Any]] = []

    def direct(p: dict[str, Any]) -> object:
        group_by: GroupBy = p.pop("group_by")
        return outcome_mix(runtime.client, keys, TENANT, interaction="call", group_by=group_by, **p)

    paths: list[tuple[str, Callable[[dict[str, Any]], object]]] = [("function", direct)]
    client: TestClient[Any] | None = None
    if http:
        _, secret = runtime.registry.issue_key(TENANT, Role.MANAGER)
        client = TestClient(create_app(runtime))
        client.__enter__()
        headers = {"Authorization": f"Bearer {secret}"}

        def over_http(p: dict[str, Any]) -> object:
            params = {k: v.isoformat() if isinstance(v, date) else v for k, v in p.items()}
            response = client.get("/v1/reports/outcome-mix", params=params, headers=headers)  # type: ignore[union-attr]
            assert response.status_code == 200, response.text
            return response.json()

        paths.append(("HTTP (ASGI)", over_http))
    try:
        for name, draw in query_cases(shape, rng).items():
            for path, run in paths:
                found = measure(run, draw, n)
                rows.append({"query": name, "path": path, "n": n, **found})
                print(
                    f"  {name:<30} {path:<12} p50 {found['p50_ms']:7.1f}  p95 {found['p95_ms']:7.1f}"
                    f"  p99 {found['p99_ms']:7.1f}  max {found['max_ms']:7.1f} ms  load {load_average()}"
                )
    finally:
        if client is not None:
            client.__exit__(None, None, None)
    return rows


# -- the run --------------------------------------------------------------------------------------


def load_log(runtime: Runtime, shape: Shape, calls_per_save: int) -> dict[str, Any]:
    configure(runtime, TENANT, shape)
    began = time.perf_counter()

    def progress(done: Loaded) -> None:
        rate = done.selections / (time.perf_counter() - began)
        print(f"  loaded {done.selections:,} selections ({rate:,.0f}/s)  load {load_average()}", flush=True)

    print(f"loading {shape.selections:,} selections ...", flush=True)
    loaded = load(runtime, TENANT, shape, calls_per_save, progress)
    head = runtime.ledger(TENANT).recorder.max_notification_id() or 0
    memory = int(runtime.client.info("memory")["used_memory"])
    print(
        f"loaded {loaded.selections:,} selections = {loaded.events:,} events in {loaded.seconds:.0f} s "
        f"({loaded.selections / loaded.seconds:,.0f} selections/s, {loaded.events / loaded.seconds:,.0f} "
        f"events/s); log head {head:,}; redis used_memory {memory / 2**20:,.0f} MiB"
    )
    return {
        **asdict(loaded),
        "selections_per_s": loaded.selections / loaded.seconds,
        "events_per_s": loaded.events / loaded.seconds,
        "log_head": head,
        "used_memory_bytes": memory,
        "load_average": load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--settle", nargs=2, metavar=("URL", "HEAD"), help="(the catch-up step) settle the worker's views to HEAD, only"
    )
    parser.add_argument("--selections", type=int, default=Shape.selections)
    parser.add_argument("--days", type=int, default=Shape.days)
    parser.add_argument("--projects", type=int, default=Shape.projects)
    parser.add_argument("--agents", type=int, default=Shape.agents)
    parser.add_argument("--calls-per-save", type=int, default=500)
    parser.add_argument("--queries", type=int, default=200, help="repetitions of each query (default 200)")
    parser.add_argument("--no-http", action="store_true", help="skip the queries through the ASGI app")
    parser.add_argument("--skip-catch-up", action="store_true", help="build the views once, unmeasured")
    parser.add_argument("--all-only", action="store_true", help="catch-up: all views together, not each alone")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--data", type=Path, default=Path("var/bench/reports"), help="redis-server's directory")
    parser.add_argument("--reuse", action="store_true", help="keep the log loaded in --data by an earlier run")
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    bulk_gc()  # as the worker process does (workers/app.py)
    if args.settle:
        url, up_to = args.settle
        runner = ProjectionRunner(bench_settings(url))
        runner.settle(int(up_to))
        runner.runtime.close()
        return 0
    shape = Shape(selections=args.selections, days=args.days, projects=args.projects, agents=args.agents)

    work = args.data
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    server = EmbeddedRedis(work / "redis", appendfsync="always", extra_args=["--auto-aof-rewrite-percentage", "0"])
    server.start(timeout=900 if args.reuse else 15)  # a reused log is replayed from the AOF first
    results: dict[str, Any] = {
        "machine": machine(),
        "redis": ".".join(map(str, server.version)),
        "shape": asdict(shape),
    }
    print(f"machine: {results['machine']}; redis-server {results['redis']} (appendfsync always); load {load_average()}")
    runtime = Runtime(bench_settings(server.url))
    try:
        if args.reuse:
            print(f"reusing the log in {work} (the --selections etc. given must be those it was loaded with)")
        else:
            results["load"] = load_log(runtime, shape, args.calls_per_save)
        head = runtime.ledger(TENANT).recorder.max_notification_id() or 0
        if args.skip_catch_up:
            ProjectionRunner(runtime.settings).settle(head)
        else:
            print("catch-up from position 0:")
            assert server.process is not None
            results["catch_up"] = catch_up(runtime, head, Clock(server.process.pid), not args.all_only)
        results["used_memory_with_views_bytes"] = int(runtime.client.info("memory")["used_memory"])
        print("outcome-mix queries (ms):")
        results["queries"] = queries(runtime, shape, args.queries, not args.no_http)
        results["load_average_end"] = load_average()
    finally:
        runtime.close()
        server.stop()
    worst = max(r["p99_ms"] for r in results["queries"])
    print(f"worst p99 {worst:.1f} ms (goal < {GOAL_P99_MS:.0f})")
    for r in results.get("catch_up", []):
        if r["case"] == ALL_VIEWS:
            print(
                f"catch-up, all views: {r['events_per_s']:,.0f} events/s wall, {r['events_per_cpu_s']:,.0f} "
                f"events per CPU-second (goal >= {GOAL_EVENTS_PER_S:,}/s)"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
