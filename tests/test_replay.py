"""``outcomes replay`` (projections/replay.py): rebuild into a fresh generation, switch over.

Against real Redis: the rebuilt views answer every report query as the live ones did (and
as the report oracle says); a replay SIGKILLed mid-way and run again ends equal to an
uninterrupted one and resumes from the fresh keys' own position; a switch-over while the
worker process runs and the log grows loses nothing. The progress line is a pure function.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
import redis
from hypothesis import HealthCheck, given, settings

from events.codec import StructMapper, SubjectKeys
from events.connect import redis_client
from events.keys import ShardKeys
from events.types import OutcomeDefinition
from projections.base import catch_up_together, current
from projections.history import HistoryFilter, history, sample
from projections.models import names, read_models
from projections.outcome_counts import outcome_counts
from projections.outcome_mix import GROUP_BYS, KINDS, outcome_mix
from projections.qa import qa_report
from projections.rates import rates
from projections.replay import (
    PARALLEL_FROM,
    Progress,
    ProgressReport,
    Replayer,
    plan,
    processes_for,
    progress_line,
)
from services.runtime import Runtime
from tests import report_oracle
from tests.helpers import call_with_outcome, seed_project, wait_until
from tests.history_strategies import PROJECTS, TZ, HistoryPlan, histories, new_tenant, play, tenant_events
from tests.stack import ROOT, Stack
from tests.test_outcome_mix import DAYS, as_tuples
from workers.projections import ProjectionRunner

# -- progress (pure) ---------------------------------------------------------------------------------


def test_the_progress_line_shows_done_total_rate_and_eta() -> None:
    line = progress_line(Progress("outcome-mix", 25_000, 100_000, 0.5))
    assert line == "outcome-mix [######..................] 25,000/100,000 events  50,000 events/s  ETA 0:02"
    assert progress_line(Progress("v", 0, 10, 0.0)).endswith("0 events/s  ETA ?")
    assert progress_line(Progress("v", 10, 10, 2.0)).endswith("10/10 events  5 events/s  done")
    assert progress_line(Progress("v", 0, 0, 0.0)) == "v [########################] 0/0 events  0 events/s  done"
    assert "ETA 1:00:00" in progress_line(Progress("v", 1, 3601, 1.0))


def test_progress_is_plain_lines_at_an_interval_off_a_terminal_and_one_redrawn_line_on_one() -> None:
    now = [0.0]
    plain = io.StringIO()
    report = ProgressReport(plain, interval=1.0, clock=lambda: now[0], tty=False)
    report.start("v", 100)
    for _ in range(10):
        now[0] += 0.25
        report.advance(10, 100)
    report.finish()
    lines = plain.getvalue().splitlines()
    # the start, one per second of the 2.5 s, the end; no terminal control characters
    assert [line.split("] ")[1].split(" events")[0] for line in lines] == ["0/100", "40/100", "80/100", "100/100"]
    assert "\r" not in plain.getvalue() and "\x1b" not in plain.getvalue()
    tty = io.StringIO()
    report = ProgressReport(tty, clock=lambda: now[0], tty=True)
    report.start("v", 2)
    now[0] += 0.1
    report.advance(1, lambda: 2)  # the total may be read only when the line is drawn
    report.advance(1, lambda: 2)  # within 0.1 s of the last redraw: not drawn
    now[0] += 0.1
    report.advance(0, lambda: 3)
    report.finish()
    assert tty.getvalue().count("\r") == 4 and tty.getvalue().endswith("2/3 events  10 events/s  ETA 0:00\x1b[K\n")


def test_views_are_split_over_processes_by_cost() -> None:
    cost = {"a": 6.0, "b": 5.0, "c": 1.0, "d": 1.0, "e": 1.0}
    views = list(cost)
    assert plan(views, 1, cost) == [views]
    assert plan(views, 2, cost) == [["a", "d"], ["b", "c", "e"]]
    assert plan(views, 3, cost) == [["a"], ["b"], ["c", "d", "e"]]
    assert plan(views, 8, cost) == [[v] for v in views]  # never an empty process
    assert plan(["c"], 4, cost) == [["c"]]
    assert sorted(v for group in plan(names(), 3) for v in group) == sorted(names())  # every view, once
    assert processes_for(10, None) == 1 and processes_for(10, 4) == 4
    assert processes_for(PARALLEL_FROM, None) == max(1, (os.cpu_count() or 1) - 1)  # a core left to Redis


def test_a_replay_in_several_processes_needs_the_redis_url_and_nothing_is_written(redis_url: str, shard: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = ShardKeys(shard, "oly")
    try:
        with pytest.raises(ValueError, match="redis_url"):
            Replayer(client, keys, StructMapper(), grace=0, processes=2)
        assert list(client.scan_iter(match=keys.prefix + "*")) == []
    finally:
        client.close()


# -- what the views answer -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Builtins with floats rounded: float sums over hash fields in another order differ last-bit."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def answers(client: redis.Redis, shard_keys: ShardKeys, tenant: str) -> dict[str, Any]:
    """Every report query over the current generation of every view."""
    keys = current(client, shard_keys)
    out: dict[str, Any] = {}
    for kind in KINDS:
        for group_by in GROUP_BYS:
            for as_defined in ("then", "now"):
                rows = outcome_mix(client, keys, tenant, interaction=kind, group_by=group_by, as_defined=as_defined)
                out[f"mix {kind} {group_by} {as_defined}"] = as_tuples(rows)
    pages, cursor = [], None
    while True:
        page = history(client, keys, tenant, f=HistoryFilter(), limit=3, cursor=cursor)
        pages.append(page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    out["history"] = pages
    codes = {row[0] for row in out["mix call outcome then"] + out["mix conversation outcome then"]}
    for code in sorted(codes):
        out[f"sample {code}"] = sample(
            client, keys, tenant, outcome_code=code, date_from=DAYS[0], date_to=DAYS[-1], n=3, seed=7
        )
    for project in PROJECTS:
        out[f"counts {project}"] = outcome_counts(client, keys, tenant, project)
        out[f"qa {project}"] = qa_report(
            client, keys, tenant, project=project, date_from=DAYS[0], date_to=DAYS[-1], position=0
        )
        for as_defined in ("then", "now"):
            for day in DAYS:
                out[f"rates {project} {day} {as_defined}"] = rates(
                    client, keys, tenant, project=project, day=day, as_defined=as_defined
                )
            out[f"rates {project} 30 {as_defined}"] = rates(
                client, keys, tenant, project=project, rolling_30_days_ending=DAYS[-1], as_defined=as_defined
            )
    return cast(dict[str, Any], _plain(msgspec.to_builtins(out)))


def snapshot(client: redis.Redis, shard_keys: ShardKeys) -> dict[str, Any]:
    """Every key of every view's current generation (names relative to the generation's
    prefix) and each view's position."""
    keys = current(client, shard_keys)
    out: dict[str, Any] = {}
    for name in names():
        prefix = keys.view(name)
        position = client.hget(keys.tracking, keys.view_position(name))
        out[name] = position
        for raw in client.scan_iter(match=prefix + "*", count=1000):
            kind = client.type(raw)
            if kind == b"hash":
                value: Any = client.hgetall(raw)
            elif kind == b"zset":
                value = client.zrange(raw, 0, -1, withscores=True)
            else:
                raise AssertionError(f"a view key of type {kind!r}")
            out[f"{name} {raw.decode()[len(prefix) :]}"] = value
    return out


def view_keys_outside_current(client: redis.Redis, shard_keys: ShardKeys) -> list[bytes]:
    keys = current(client, shard_keys)
    prefixes = tuple(keys.view(name).encode() for name in names())
    return [k for k in client.scan_iter(match=shard_keys.prefix + "v:*", count=1000) if not k.startswith(prefixes)]


def _mapper(runtime: Runtime) -> StructMapper:
    return StructMapper(keys=SubjectKeys(runtime.client, runtime.settings.key_prefix))


def _replayer(runtime: Runtime, keys: ShardKeys, **options: Any) -> Replayer:
    return Replayer(runtime.client, keys, _mapper(runtime), grace=0, **options)


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(plan=histories(max_calls=10, max_conversations=5))
def test_rebuilt_views_answer_every_query_as_the_live_ones_and_the_live_view_follows(
    redis_url: str, plan: HistoryPlan
) -> None:
    d = new_tenant(redis_url)
    try:
        client, keys = d.runtime.client, d.runtime.shard_keys(d.tenant)
        play(d, plan)
        live = read_models(client, keys, _mapper(d.runtime), batch_size=7)
        for view in live:
            view.catch_up()
        before = answers(client, keys, d.tenant)
        events = tenant_events(d.runtime, d.tenant)
        for kind in KINDS:
            expected = report_oracle.outcome_mix(events, tz=TZ, interaction=kind)
            assert before[f"mix {kind} outcome then"] == _plain(msgspec.to_builtins(as_tuples(expected)))

        # small batches and a memory cap of 2 entries: the builds forget and read state back
        replayer = _replayer(d.runtime, keys, report=ProgressReport(io.StringIO()), batch_size=3, memory_cap=2)
        assert all(getattr(replayer.build(n, "1"), "memory_cap", 2) == 2 for n in names())
        done = replayer.replay()
        assert [(r.view, r.generation, r.replaced) for r in done] == [(n, "1", "") for n in names()]
        assert answers(client, keys, d.tenant) == before
        assert view_keys_outside_current(client, keys) == []  # the first generation's keys are gone
        assert {k for k in client.hkeys(keys.tracking)} == {f"{n}@1".encode() for n in names()}

        # the live views (still holding the old generation's names) move to the new one
        d.define(OutcomeDefinition(code="DEFINED_AFTER", name="Defined after the replay"))
        for view in live:
            view.catch_up()
            assert view.keys.view_position(view.name) == f"{view.name}@1"
        moved = answers(client, keys, d.tenant)
        assert moved["mix call outcome then"] != before["mix call outcome then"]  # the new outcome's row
        _replayer(d.runtime, keys).replay()
        assert answers(client, keys, d.tenant) == moved
    finally:
        d.runtime.close()


# -- interrupted and resumed ---------------------------------------------------------------------------


def _seed_calls(runtime: Runtime, tenant: str, n: int) -> None:
    seed_project(runtime, tenant)
    for i in range(n):
        call_with_outcome(runtime, tenant, f"c-{i}", "SALE" if i % 3 else "NO_SALE")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _ended(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie nobody reaps is over too
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("processes", ["1", "3"])
def test_a_replay_killed_mid_way_resumes_from_its_own_position_and_equals_an_uninterrupted_one(
    stack: Stack, processes: str
) -> None:
    runtime = stack.runtime()
    try:
        _seed_calls(runtime, "acme", 300)
        client, keys = runtime.client, runtime.shard_keys("acme")
        head = int(cast(bytes, client.hget(keys.head, "n")))
        first = names()[0]
        command = [sys.executable, "-m", "services.cli", "replay", "--batch-size", "10", "--grace", "0"]
        command += ["--processes", processes]
        process = subprocess.Popen(command, env=stack.env, cwd=ROOT, stderr=subprocess.PIPE, text=True)

        def building() -> int:
            gen = client.hget(keys.view_generations, f"{first}~next")
            at = client.hget(keys.tracking, f"{first}@{gen.decode()}") if gen else None
            return int(cast(bytes, at)) if at else 0

        # every build process seen (the lightest group may be done before the first view's
        # first commit; spawn's resource tracker is a child too)
        builders: set[int] = set()

        def first_commit() -> bool:
            builders.update(_children(process.pid))
            return building() > 0

        wait_until(first_commit, 30, "the replay to commit its first batch")
        builders.update(_children(process.pid))
        assert len(builders) >= (3 if processes == "3" else 0)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        # the build processes end with the replay: none goes on writing beside the next run
        wait_until(lambda: all(_ended(pid) for pid in builders), 30, "the build processes to end")
        reached = building()
        assert 0 < reached < head, "killed mid-way through the first view"
        assert client.hget(keys.view_generations, first) is None  # nothing switched

        resumed = subprocess.run(command, env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        resumed_at = {
            n: int(resumed.stderr.split(f"{n}: resuming generation 1 at log position ")[1].split()[0]) for n in names()
        }
        assert resumed_at[first] >= reached  # from the fresh keys' own position, not from 0
        # one pass for every view, from the lowest of their positions (each skips what it holds)
        low = min(resumed_at.values())
        assert f"{len(names())} views [{'#' * 24}] {head - low:,}/{head - low:,} events" in resumed.stderr
        assert ("3 processes: " in resumed.stderr) == (processes == "3")
        assert all(f"{n}: generation 1," in resumed.stdout for n in names())
        after_resume = snapshot(client, keys)
        resumed_answers = answers(client, keys, "acme")

        _replayer(runtime, keys).replay()  # uninterrupted, into generation 2
        assert current(client, keys).generations == {n: "2" for n in names()}
        assert snapshot(client, keys) == after_resume
        assert answers(client, keys, "acme") == resumed_answers
        assert outcome_counts(client, current(client, keys), "acme", "winter") == {"NO_SALE": 100, "SALE": 200}
        assert view_keys_outside_current(client, keys) == []
    finally:
        runtime.close()


def _generation_dump(client: redis.Redis, keys: ShardKeys, gen: str) -> dict[str, Any]:
    """Every key of generation ``gen`` of every view (relative to its prefix) and the positions."""
    out: dict[str, Any] = {}
    for name in names():
        built = keys.with_generation(name, gen)
        prefix = built.view(name)
        out[name] = client.hget(keys.tracking, built.view_position(name))
        for raw in client.scan_iter(match=prefix + "*", count=1000):
            kind = client.type(raw)
            value = client.hgetall(raw) if kind == b"hash" else client.zrange(raw, 0, -1, withscores=True)
            out[f"{name} {raw.decode()[len(prefix) :]}"] = value
    return out


def test_a_pipelined_catch_up_whose_commits_are_refused_mid_way_equals_a_plain_one(stack: Stack) -> None:
    """A replay's build sends each commit without waiting for its reply
    (projections/base.py ``_catch_up_pipelined``); another runner moves the positions while
    commits are in flight, so they are refused, the state folded on them is dropped and the
    build goes on from the stored positions (reading its state back): the same keys as a
    plain catch-up."""
    runtime = stack.runtime()
    try:
        _seed_calls(runtime, "acme", 40)
        client, keys = runtime.client, runtime.shard_keys("acme")
        replayer = _replayer(runtime, keys, batch_size=7)
        catch_up_together([replayer.build(n, "70") for n in names()], None)
        plain = _generation_dump(client, keys, "70")

        rivals = [replayer.build(n, "71") for n in names()]
        moved: list[int] = []

        def rival_runs(_read: int, last: int) -> None:
            if len(moved) < 2 and last > 20 * (len(moved) + 1):  # twice, mid-way
                catch_up_together(rivals, last + 10)  # not a batch boundary of the build
                moved.append(last + 10)

        catch_up_together([replayer.build(n, "71") for n in names()], None, on_batch=rival_runs, pipelined=True)
        assert len(moved) == 2
        assert all(r.position() >= moved[-1] for r in rivals)  # the rival's commits were applied
        assert _generation_dump(client, keys, "71") == plain
    finally:
        runtime.close()


# -- while the worker runs -------------------------------------------------------------------------------


def test_switching_over_while_the_worker_runs_and_the_log_grows_loses_nothing(stack: Stack) -> None:
    runtime = stack.runtime()
    try:
        _seed_calls(runtime, "acme", 50)
        client, keys = runtime.client, runtime.shard_keys("acme")
        stack.start_worker()
        stop = threading.Event()
        written: list[str] = []

        def write() -> None:
            while not stop.is_set():
                n = len(written)
                call_with_outcome(runtime, "acme", f"w-{n}", "SALE" if n % 2 else "NO_SALE")
                written.append(f"w-{n}")

        writer = threading.Thread(target=write)
        writer.start()
        try:
            wait_until(lambda: len(written) >= 20, 30, "writes before the first replay")
            # in two processes (outcome-mix and interactions apart), while the worker applies
            # the same batches to the current generations
            first = _replayer(runtime, keys, batch_size=25, processes=2, redis_url=stack.env["REDIS_URL"]).replay()
            wait_until(lambda: len(written) >= 40, 30, "writes after it")
            second = _replayer(runtime, keys, batch_size=25).replay([names()[0]])
        finally:
            stop.set()
            writer.join(timeout=30)
        assert [r.generation for r in first] == ["1"] * len(names()) and second[0].generation == "2"
        head = int(cast(bytes, client.hget(keys.head, "n")))

        def settled() -> bool:
            now = current(client, keys)
            return all(int(client.hget(now.tracking, now.view_position(n)) or 0) == head for n in names())

        wait_until(settled, 60, "the worker to apply every event to the current generations")
        assert stack.worker is not None and stack.worker.poll() is None
        calls = 50 + len(written)
        sales = sum(1 for i in range(50) if i % 3) + sum(1 for i in range(len(written)) if i % 2)
        assert outcome_counts(client, current(client, keys), "acme", "winter") == {
            "NO_SALE": calls - sales,
            "SALE": sales,
        }
        live = snapshot(client, keys)
        _replayer(runtime, keys).replay()  # a fresh rebuild of the same log: equal, key by key
        assert snapshot(client, keys) == live
        assert view_keys_outside_current(client, keys) == []
    finally:
        runtime.close()


def test_an_unknown_view_is_refused_and_nothing_is_written(redis_url: str, shard: str) -> None:
    client = redis_client(redis_url)
    keys = ShardKeys(shard, "olx")
    try:
        with pytest.raises(ValueError, match="unknown view"):
            Replayer(client, keys, StructMapper(), grace=0).replay(["no-such-view"])
        assert list(client.scan_iter(match=keys.prefix + "*")) == []
    finally:
        client.close()


def test_settling_from_several_threads_at_once_equals_a_rebuild(stack: Stack) -> None:
    """The worker settles from FastStream's handler thread, the reclaimer and the start-up
    sweep at once; the views keep state in memory between their own commits, so the runner
    lets one thread at a time fold (workers/projections.py) and the result is what a rebuild
    from 0 gives."""
    runtime = stack.runtime()
    try:
        _seed_calls(runtime, "acme", 10)
        client, keys = runtime.client, runtime.shard_keys("acme")
        runner = ProjectionRunner(runtime.settings)
        for view in runner.views:
            view.batch_size = 7  # many small batches: many chances to interleave
        stop = threading.Event()
        errors: list[BaseException] = []

        def settle_forever() -> None:
            try:
                while not stop.is_set():
                    runner.settle(int(cast(bytes, client.hget(keys.head, "n"))))
            except BaseException as error:
                errors.append(error)

        settlers = [threading.Thread(target=settle_forever) for _ in range(3)]
        for t in settlers:
            t.start()
        try:
            for i in range(40):
                call_with_outcome(runtime, "acme", f"w-{i}", "SALE" if i % 2 else "NO_SALE")
        finally:
            stop.set()
            for t in settlers:
                t.join(timeout=60)
        assert not errors
        runner.settle(int(cast(bytes, client.hget(keys.head, "n"))))
        live = snapshot(client, keys)
        _replayer(runtime, keys).replay()
        assert snapshot(client, keys) == live
        runner.runtime.close()
        runner.client.close()
    finally:
        runtime.close()
