"""Follow-up actions: SMS sent per second and selection-to-effect latency, beside a minimal
forwarder, in one run (issue "Follow-up action workers": p99 under 100 ms at 500
selections/s).

    python -m bench.actions_bench [--rate 500] [--seconds 20] [--backlog 5000] [--split [--action-processes N]]
                                  [--partitions P] [--profile F]

Everything real: a private redis-server with ``appendfsync always``, ``outcomes worker`` as
its own process (all its followers running: SMS planner and sender, follow-ups, contact
lists, flows, webhooks; with ``--split`` the action followers in one process -- or N
sharing them, ``--action-processes`` -- and the projections, timers and ingest in
another), and a local HTTP receiver process standing in for the SMS gateway
(``bench/receiver.py``) that logs when each SMS arrives.

1. Paced: selections of an auto-send SMS outcome at ``--rate`` per second for
   ``--seconds`` (through the Ledger, in-process, 8 threads); latency = the receiver's
   arrival time - the moment the selection's write returned.
2. Backlog: the worker stopped, ``--backlog`` selections written, the worker started;
   actions per second = SMS delivered / (last arrival - first arrival). CPU time per SMS
   over the same span (from the first arrival on, so no process start-up): the action
   worker processes' (all of them, children included) and redis-server's, from /proc --
   steadier than wall time on a shared machine; the projections process's apart.
3. Baseline, the same pacing: the load writes one stream entry per "selection" and a
   minimal forwarder process (``bench/minimal_forwarder.py``) XREADs and POSTs each to the
   same receiver, recording nothing.

Not part of the test suite; results in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from bench.http_bench import machine
from bench.reports_bench import cpu_seconds
from events.embedded import EmbeddedRedis, free_port
from events.types import OutcomeDefinition, ProjectSettings
from services.config import Settings
from services.interactions import aggregate_id
from services.ledger import Ledger
from services.rules import Context
from services.rules import config as config_rules
from services.rules.interactions import Choice
from services.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
TENANT = "bench"
T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)


def seed(runtime: Runtime) -> Ledger:
    runtime.create_tenant(TENANT, "Bench")
    ledger = runtime.ledger(TENANT)
    admin = Context(TENANT, "admin:bench", datetime.now(UTC))
    ledger.configure(admin, "sms-template", "t", lambda c: config_rules.save_template(c, admin, "t", "Thank you"))
    ledger.define_outcome(admin, OutcomeDefinition(code="THANKS", name="Thanks", sms_template="t", auto_send=True))
    ledger.create_project(admin, "p", ProjectSettings(name="P", direction="outbound"))
    return ledger


def start_calls(ledger: Ledger, prefix: str, n: int) -> list[str]:
    ctx = Context(TENANT, "agent:anna", datetime.now(UTC))
    ids = [f"{prefix}{i}" for i in range(n)]

    def start(call_id: str) -> None:
        number = f"+35840{abs(hash(call_id)) % 10_000_000:07d}"
        ledger.start_call(
            ctx, call_id=call_id, project_id="p", direction="outbound", occurred_at=T0, contact_number=number
        )
        ledger.end_call(ctx, call_id=call_id, occurred_at=T0 + timedelta(minutes=1))

    run_threads(8, [lambda c=c: start(c) for c in ids])  # type: ignore[misc]
    return ids


def select(ledger: Ledger, call_id: str) -> None:
    ctx = Context(TENANT, "agent:anna", datetime.now(UTC))
    ledger.select_call_outcome(ctx, call_id=call_id, choice=Choice("THANKS", T0 + timedelta(minutes=1)))


def sms_key(call_id: str) -> str:
    """The SMS id (its Idempotency-Key): named after the selection, the call's third event."""
    return str(aggregate_id(TENANT, "sms", f"{aggregate_id(TENANT, 'call', call_id)}/3"))


def run_threads(threads: int, jobs: list[Callable[[], None]]) -> None:
    it = iter(jobs)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                job = next(it, None)
            if job is None:
                return
            job()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def paced(rate: float, keys: list[str], do: Callable[[str], None], threads: int = 8) -> dict[str, float]:
    """do(key) for every key at ``rate`` per second; returns when each write returned."""
    start = time.time() + 0.5
    counter = itertools.count()
    done: dict[str, float] = {}

    def work() -> None:
        while (i := next(counter)) < len(keys):
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            do(keys[i])
            done[keys[i]] = time.time()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return done


def arrivals(log: Path) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            key, _, at = line.partition(" ")
            found.setdefault(key, []).append(float(at))
    return found


def wait_for(log: Path, keys: list[str], timeout: float) -> dict[str, list[float]]:
    deadline = time.monotonic() + timeout
    while True:
        got = arrivals(log)
        if all(k in got for k in keys) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def latency(sent: dict[str, float], got: dict[str, list[float]]) -> dict[str, float]:
    ms = sorted((got[k][0] - t) * 1000 for k, t in sent.items() if k in got)
    span = max(sent.values()) - min(sent.values())
    return {
        "delivered": len(ms),
        "of": len(sent),
        "achieved_rate": len(sent) / span if span else 0.0,
        "p50_ms": statistics.median(ms) if ms else float("nan"),
        "p99_ms": ms[int(len(ms) * 0.99) - 1] if ms else float("nan"),
        "max_ms": ms[-1] if ms else float("nan"),
    }


def caught_up(runtime: Runtime) -> bool:
    keys = runtime.shard_keys(TENANT)
    head = int(cast(bytes, runtime.client.hget(keys.head, "n")) or 0)
    positions = cast(dict[bytes, bytes], runtime.client.hgetall(keys.tracking))
    followers = [int(v) for k, v in positions.items() if k.startswith(b"actions.")]
    return len(followers) >= 4 and min(followers) >= head


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants (``worker --processes N``'s children)."""
    total, todo = 0.0, [pid]
    while todo:
        at = todo.pop()
        try:
            total += cpu_seconds(at)
            for task in Path(f"/proc/{at}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):  # gone meanwhile
            continue
    return total


def cpu_snapshot(workers: list[subprocess.Popen[bytes]], redis_pid: int) -> dict[str, float]:
    """CPU seconds so far: the action worker(s) (the first process's tree), the rest, Redis."""
    return {
        "actions": tree_cpu_seconds(workers[0].pid),
        "projections": sum(tree_cpu_seconds(w.pid) for w in workers[1:]),
        "redis": cpu_seconds(redis_pid),
    }


def cpu_per_sms(before: dict[str, float], after: dict[str, float], sms: int) -> dict[str, float]:
    """Milliseconds of CPU per SMS between two snapshots, each process group apart."""
    per = {f"{k}_ms": (after[k] - before[k]) * 1000 / max(sms, 1) for k in before}
    per["actions_plus_redis_ms"] = per["actions_ms"] + per["redis_ms"]
    return per


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.actions_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument(
        "--split",
        action="store_true",
        help="the action followers in a worker process of their own (--role actions), the rest in another",
    )
    parser.add_argument(
        "--action-processes", type=int, default=1, help="with --split: worker --role actions --processes N"
    )
    parser.add_argument(
        "--partitions", type=int, default=1, help="OUTCOMES_ACTION_PARTITIONS: units per partitioned follower"
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the backlog's worker into this file (speedscope JSON)"
    )
    args = parser.parse_args(argv)
    work = ROOT / "var" / "bench" / "actions"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    server = EmbeddedRedis(work / "redis", appendfsync="always").start()
    port = free_port()
    log = work / "arrivals.txt"
    env = {**os.environ, "REDIS_URL": server.url, "REDIS_SHARD": "s00", "REDIS_KEY_PREFIX": "ol"}
    env["OUTCOMES_SMS_GATEWAY"] = f"http://127.0.0.1:{port}/sms"
    env["OUTCOMES_ACTION_PARTITIONS"] = str(args.partitions)
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(*cmd: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, *cmd], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        procs.append(proc)
        return proc

    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    try:
        spawn("-m", "bench.receiver", "--port", str(port), "--log", str(log))
        runtime = Runtime(Settings(redis_url=server.url))
        info = cast(dict[str, Any], runtime.client.info("server"))
        results["machine"] += f", Redis {info['redis_version']}"
        results["load_before"] = os.getloadavg()
        ledger = seed(runtime)
        n = int(args.rate * args.seconds)
        paced_calls = start_calls(ledger, "p", n)
        roles = ["actions", "projections"] if args.split else ["all"]
        processes = ["--processes", str(args.action_processes)]

        def workers() -> list[subprocess.Popen[bytes]]:
            return [
                spawn("-m", "services.cli", "worker", "--role", role, *(processes if role == "actions" else []))
                for role in roles
            ]

        running = workers()
        deadline = time.monotonic() + 120
        while not caught_up(runtime) and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"paced: {n} selections at {args.rate:.0f}/s ...", flush=True)
        redis_pid = server.process.pid
        before = cpu_snapshot(running, redis_pid)
        sent = paced(args.rate, paced_calls, lambda c: select(ledger, c))
        by_key = {sms_key(c): t for c, t in sent.items()}
        results["paced"] = latency(by_key, wait_for(log, list(by_key), 120))
        # Redis's share here includes the selections' own writes (the load)
        results["paced"]["cpu_per_sms"] = cpu_per_sms(before, cpu_snapshot(running, redis_pid), n)

        for worker in running:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        backlog_calls = start_calls(ledger, "b", args.backlog)
        print(f"backlog: {args.backlog} selections, then the worker ...", flush=True)
        run_threads(8, [lambda c=c: select(ledger, c) for c in backlog_calls])  # type: ignore[misc]
        draining = workers()
        drainer = draining[0]  # the one with the action followers
        profiler = None
        if args.profile:  # py-spy (pip install py-spy) records the draining worker, all threads
            py_spy = [str(Path(sys.executable).parent / "py-spy"), "record", "-f", "speedscope", "-r", "50", "-s"]
            profiler = subprocess.Popen([*py_spy, "-o", str(args.profile.resolve()), "--pid", str(drainer.pid)])
        keys = [sms_key(c) for c in backlog_calls]
        while not (out := arrivals(log).keys() & set(keys)) and drainer.poll() is None:
            time.sleep(0.05)  # the first SMS out: the workers are up
        first = (len(out), cpu_snapshot(draining, redis_pid))
        got = wait_for(log, keys, 300)
        last = cpu_snapshot(draining, redis_pid)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # writes the profile
            profiler.wait(timeout=60)
        times = sorted(got[k][0] for k in keys if k in got)
        results["backlog"] = {
            "delivered": len(times),
            "of": len(keys),
            "actions_per_s": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
            "cpu_per_sms": cpu_per_sms(first[1], last, len(times) - first[0]),
        }

        print("baseline: the minimal forwarder, same pacing ...", flush=True)
        stream = "bench:{b}:selections"
        spawn("-m", "bench.minimal_forwarder", server.url, stream, env["OUTCOMES_SMS_GATEWAY"])
        time.sleep(1.5)
        base_keys = [f"base-{i}" for i in range(n)]
        sent = paced(args.rate, base_keys, lambda k: runtime.client.xadd(stream, {"key": k}) and None)
        results["baseline"] = latency(sent, wait_for(log, base_keys, 120))
        results["load_after"] = os.getloadavg()
        runtime.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        server.stop()

    print(f"\nmachine: {results['machine']}; Redis appendfsync always")
    print(f"load average (1, 5, 15 min) before: {results['load_before']}, after: {results['load_after']}")
    print(f"{'':<22}{'delivered':>12}{'rate/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name in ("paced", "baseline"):
        r = results[name]
        print(
            f"{name + (' (SMS)' if name == 'paced' else ' (forwarder)'):<22}{r['delivered']:>7}/{r['of']:<4}"
            f"{r['achieved_rate']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['max_ms']:>10.1f}"
        )
    b = results["backlog"]
    print(f"backlog drain: {b['delivered']}/{b['of']} SMS at {b['actions_per_s']:.0f} actions/s")
    for name, r in (("paced", results["paced"]), ("drain", b)):
        c = r["cpu_per_sms"]
        print(
            f"CPU per SMS, {name}: action worker(s) {c['actions_ms']:.2f} ms + Redis {c['redis_ms']:.2f} ms"
            f" = {c['actions_plus_redis_ms']:.2f} ms; projections process {c['projections_ms']:.2f} ms"
        )
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
