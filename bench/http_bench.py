"""Outcome selections per second through the HTTP API, beside a minimal endpoint, in one run.

    python -m bench.http_bench [--seconds 20] [--connections 32] [--api-workers 2]

The load comes from wrk (a compiled load generator: a Python client would measure itself;
``apt-get install wrk``) on loopback, 32 connections. Each request selects the outcome of
a different, pre-created call (a selection is a real write: rules checked, events appended
with ``appendfsync always``). The baseline is ``bench.minimal_app``: one Redis read and one
scripted write per request on the same stack. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx

from events.embedded import EmbeddedRedis, free_port
from events.types import OutcomeDefinition, ProjectSettings
from services.config import Settings
from services.permissions import Role
from services.rules import Context
from services.runtime import Runtime
from services.serve import listeners

ROOT = Path(__file__).resolve().parent.parent
T0 = "2026-11-22T09:00:00+00:00"

WRK_SCRIPT = """
local counter = 0
local id = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  id = tonumber(wrk.thread:get("id"))
end
request = function()
  counter = counter + 1
  local path = string.format(PATH, id, counter)
  return wrk.format("POST", path, HEADERS, BODY)
end
"""


def wrk_script(path_format: str, headers: dict[str, str], body: str) -> str:
    lua_headers = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"
    return f'PATH = "{path_format}"\nHEADERS = {lua_headers}\nBODY = {json.dumps(body)}\n' + WRK_SCRIPT


def parse_duration(text: str) -> float:
    """wrk's '1.23ms' / '850.00us' / '1.02s' in milliseconds."""
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(url: str, script: Path, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds:.0f}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    return {
        "rps": rps,
        "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
        "p50_ms": parse_duration(lat["50"]),
        "p99_ms": parse_duration(lat["99"]),
        "raw": out,
    }


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def family(pid: int) -> list[int]:
    """A process and its children (uvicorn's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    wrk = ""
    if shutil.which("wrk"):  # only the HTTP bench needs it
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return (
        f"{cpu}, {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, Python {platform.python_version()}, "
        f"{wrk.strip()}"
    )


def seed(runtime: Runtime, calls_per_thread: int, wrk_threads: int) -> str:
    runtime.create_tenant("bench", "Bench")
    ledger = runtime.ledger("bench")
    admin = Context("bench", "admin:bench", datetime.now(UTC))
    ledger.define_outcome(admin, OutcomeDefinition(code="SALE", name="Sale"))
    ledger.create_project(admin, "p1", ProjectSettings(name="P", direction="outbound"))
    _, secret = runtime.registry.issue_key("bench", Role.PLATFORM)
    ctx = Context("bench", "system", datetime.now(UTC))
    started = datetime.fromisoformat(T0)

    def start(call_id: str) -> None:
        ledger.start_call(ctx, call_id=call_id, project_id="p1", direction="outbound", occurred_at=started)

    ids = [f"b{t}-{n}" for t in range(wrk_threads) for n in range(1, calls_per_thread + 1)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(start, ids))
    return secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn processes for the API (default 2)")
    parser.add_argument("--max-rate", type=int, default=4000, help="sizes the pool of pre-created calls")
    parser.add_argument(
        "--appendfsync", default="always", choices=["always", "everysec"], help="for diagnosis: the fsync's share"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    work = ROOT / "var" / "bench" / "http"
    shutil.rmtree(work, ignore_errors=True)
    server = EmbeddedRedis(work / "redis", appendfsync=args.appendfsync).start()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "REDIS_SHARD": "s00",
        "REDIS_KEY_PREFIX": "ol",
        "OUTCOMES_RATE_LIMIT_PER_SECOND": "1000000",
        "OUTCOMES_ALLOW_WEAK_DURABILITY": "1" if args.appendfsync != "always" else "",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        runtime = Runtime(Settings(redis_url=server.url))
        per_thread = int(args.max_rate * args.seconds * 1.2 / args.wrk_threads)
        t = time.monotonic()
        secret = seed(runtime, per_thread, args.wrk_threads)
        print(f"seeded {per_thread * args.wrk_threads} calls in {time.monotonic() - t:.0f}s", flush=True)
        results: dict[str, Any] = {
            "machine": machine(),
            "redis": ".".join(map(str, server.version)),
            "appendfsync": runtime.client.config_get("appendfsync")["appendfsync"],
            "args": vars(args),
        }
        headers = {
            "Authorization": f"Bearer {secret}",
            "X-Acting-For": "agent:anna",
            "Content-Type": "application/json",
        }
        body = json.dumps({"outcome_code": "SALE", "occurred_at": T0})
        # both served alike: `outcomes api` with its per-process sockets (services/serve.py)
        api = [sys.executable, "-m", "services.cli", "api", "--workers", str(args.api_workers), "--no-access-log"]
        with tempfile.TemporaryDirectory() as tmp:
            for name, cmd, path in (
                (
                    "minimal",
                    [*api, "--app", "bench.minimal_app:create_app"],
                    "/minimal/b%d-%d",
                ),
                (
                    "selection",
                    api,
                    "/v1/calls/b%d-%d/outcome",
                ),
            ):
                port = free_port()
                proc = subprocess.Popen(
                    [*cmd, "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                procs.append(proc)
                wait_http(f"http://127.0.0.1:{port}/health")
                while listeners(port) < args.api_workers:  # wrk's connections are made at once: all must listen
                    time.sleep(0.1)
                script = Path(tmp) / f"{name}.lua"
                script.write_text(wrk_script(path, headers, body))
                print(f"running {name} for {args.seconds:.0f}s ...", flush=True)
                api_pids, redis_pid = family(proc.pid), [server.process.pid]  # type: ignore[union-attr]
                api_cpu, redis_cpu = cpu_seconds(api_pids), cpu_seconds(redis_pid)
                results[name] = run_wrk(
                    f"http://127.0.0.1:{port}", script, args.seconds, args.connections, args.wrk_threads
                )
                done = results[name]["requests"]
                results[name]["api_cpu_ms"] = (cpu_seconds(api_pids) - api_cpu) * 1000 / done
                results[name]["redis_cpu_ms"] = (cpu_seconds(redis_pid) - redis_cpu) * 1000 / done
                proc.terminate()
                proc.wait(timeout=30)
        log = runtime.shard_keys("bench").log
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], runtime.client.xrange(log))
        written = sum(1 for _, f in entries if f[b"t"] == b"OutcomeSelected")
        sel, mini = results["selection"], results["minimal"]
        results["selections_in_log"] = written
        print(f"\nmachine: {results['machine']}; Redis {results['redis']}, appendfsync {results['appendfsync']}")
        columns = ("req/s", "p50 ms", "p99 ms", "non-2xx")
        print(f"{'endpoint':<12}" + "".join(f"{c:>10}" for c in columns) + f"{'API CPU ms/req':>16}{'Redis':>8}")
        for name in ("minimal", "selection"):
            r = results[name]
            print(
                f"{name:<12}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['non_2xx']:>10}"
                f"{r['api_cpu_ms']:>16.2f}{r['redis_cpu_ms']:>8.2f}"
            )
        print(
            f"selections / minimal: {sel['rps'] / mini['rps']:.0%}; OutcomeSelected events in the log: {written} "
            f"(wrk counted {sel['requests']} requests, {sel['non_2xx']} non-2xx)"
        )
        (work / "results.json").write_text(json.dumps({k: v for k, v in results.items()}, indent=2, default=str))
        runtime.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
