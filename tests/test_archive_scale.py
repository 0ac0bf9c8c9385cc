"""The archive tier's must-show, scaled down for CI (docs/archive.md): a history over ten days
archived but for its last day. The history's Redis ``used_memory`` falls to at most 20% of
before (measured ~17%; ~23% without the compact index entries of events/compact.py): the
log's to at most 20%, the read-model rows of the archived interactions and their index
entries leave Redis too (projections/cold.py, cold_index.py), and each archived call's
version index and head become one compact entry. Replay (every read model rebuilt from 0),
export, verify and the reports (history, sampling, rates, QA, outcome mix) give the same
results as before archiving; a correction and a QA verdict on an archived call after it
give the reports a rebuild from 0 gives. A private redis-server, without Redis 7's
per-command latency histograms (a constant of the server, ~0.6 MB here): the memory
measured is this history's alone. What stays is mostly the hot day."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from events.embedded import EmbeddedRedis
from events.keys import ShardKeys
from projections.base import current
from projections.history import HistoryFilter, history, sample
from projections.models import read_models
from projections.outcome_mix import outcome_mix
from projections.qa import qa_report
from projections.rates import rates
from projections.replay import Replayer
from services.archive import Archiver
from services.checkpoints import Checkpointer, KeyRing, Signer, generate_key
from services.config import Settings
from services.export import Exporter, ndjson
from services.interactions import aggregate_id
from services.rules import Context
from services.rules.interactions import Choice
from services.runtime import Runtime
from services.verify import ShardVerifier
from tests.helpers import corrected_call, seed_project
from tests.test_replay import _mapper, snapshot

CALLS = 2_400  # 3 events each: 7,200 events (and the set-up's)
DAYS = 10
THREADS = 4  # concurrent writers: the group commit batches their saves


def write_history(runtime: Runtime, tenant: str, calls: int, days: int, now: datetime) -> None:
    """Calls spread evenly over ``days`` before ``now``, each started, ended and given an
    outcome at its recorded time (``Context.recorded_at``)."""
    start = now - timedelta(days=days)
    step = timedelta(days=days) / calls
    ledger = runtime.ledger(tenant)

    def write(part: int) -> None:
        for n in range(part, calls, THREADS):
            at = start + n * step
            ctx = Context(tenant, "agent:anna", at)
            call_id = f"c-{n}"
            ledger.start_call(ctx, call_id=call_id, project_id="winter", direction="outbound", occurred_at=at)
            ledger.end_call(ctx, call_id=call_id, occurred_at=at + timedelta(minutes=3))
            code = "SALE" if n % 3 == 0 else "NO_SALE"
            ledger.select_call_outcome(ctx, call_id=call_id, choice=Choice(code, at + timedelta(minutes=4)))

    threads = [threading.Thread(target=write, args=(part,)) for part in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def used_memory(client: redis.Redis) -> int:
    client.execute_command("MEMORY PURGE")
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def log_memory(client: redis.Redis, keys: ShardKeys) -> int:
    """Redis memory of the log stream and the tenant's index stream."""
    return sum(int(client.memory_usage(k) or 0) for k in (keys.log, keys.tenant_index("acme")))


def reports(client: redis.Redis, keys: ShardKeys, day: date) -> tuple[Any, ...]:
    """What the reports show for the tenant: every history row (paged), a sample, the rates
    and the QA report over the 30 days ending ``day``, the outcome mix."""
    keys = current(client, keys)
    rows, cursor = [], None
    while True:
        page = history(client, keys, "acme", f=HistoryFilter(), limit=500, cursor=cursor)
        rows += page.rows
        if (cursor := page.next_cursor) is None:
            break
    first = day - timedelta(days=29)
    return (
        rows,
        sample(client, keys, "acme", outcome_code="SALE", date_from=first, date_to=day, n=50, seed=7),
        rates(client, keys, "acme", project="winter", rolling_30_days_ending=day),
        qa_report(client, keys, "acme", project="winter", date_from=first, date_to=day, position=0),
        outcome_mix(client, keys, "acme", interaction="call"),
    )


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    # no per-command latency histograms (Redis 7 allocates ~27 kB for each command name the
    # server runs, ~0.6 MB here: a constant of the server, not of the history)
    s = EmbeddedRedis(tmp_path / "redis", appendfsync="always", extra_args=["--latency-tracking", "no"]).start()
    try:
        yield s.url
    finally:
        s.stop()


def test_ten_days_archived_but_the_last_free_redis_memory_and_every_reader_agrees(server: str, tmp_path: Path) -> None:
    runtime = Runtime(Settings(redis_url=server))
    client = runtime.client
    keys: ShardKeys = runtime.shard_keys_for(runtime.settings.shard)
    key_file = tmp_path / "checkpoint.key"
    generate_key(key_file)
    empty = used_memory(client)  # the server's own: not the history's
    try:
        seed_project(runtime, "acme")
        now = datetime.now(UTC)
        write_history(runtime, "acme", CALLS, DAYS, now)
        views = read_models(client, keys, _mapper(runtime))
        for view in views:
            view.catch_up()
        Checkpointer(client, keys, Signer.from_file(key_file), every_events=1000).run_once(force=True)
        ring = KeyRing.from_files([f"{key_file}.pub"])

        def readers() -> tuple[Any, ...]:
            Replayer(client, keys, _mapper(runtime), grace=0).replay()
            exported = b"".join(ndjson(Exporter(client, keys, "acme").log()))
            report = ShardVerifier(client, keys, ring).run()
            assert report.ok, [p.describe() for p in report.problems]
            return snapshot(client, keys), exported, report.events, report.signed_through

        before = readers()
        shown = reports(client, keys, now.date())
        memory_before, log_before = used_memory(client) - empty, log_memory(client, keys)
        events = int(cast(bytes, client.hget(keys.head, "n")))

        archiver = Archiver(client, keys, str(tmp_path / "archive"), segment_size=2_000)
        run = archiver.run(hot_days=1)
        # the last day stays hot: about a tenth of the calls, give or take the set-up and the edge
        hot = client.xlen(keys.log)
        assert run.through == events - hot
        assert 0.09 * events < hot < 0.11 * events + 20
        # both views' rows of every archived call (2 x 9/10 of the calls) left Redis
        assert 2 * 0.88 * CALLS < run.rows_retired < 2 * 0.92 * CALLS
        # and each archived call's version index and head became one compact entry (events/compact.py)
        assert run.compacted > 0.88 * CALLS
        assert client.exists(keys.aggregate_index(aggregate_id("acme", "call", "c-0"))) == 0
        memory_after, log_after = used_memory(client) - empty, log_memory(client, keys)
        print(f"history's used_memory {memory_before:,} -> {memory_after:,} B; log {log_before:,} -> {log_after:,} B")
        assert log_after <= 0.2 * log_before, (log_before, log_after)
        assert memory_after <= 0.2 * memory_before, (memory_before, memory_after)
        assert reports(client, keys, now.date()) == shown  # archived rows read from the archive

        assert readers() == before  # a replay rebuilds every view in Redis from archive and log
        # the new generation's rows (and those of the calls the day's edge moved past since)
        assert archiver.run(hot_days=1).rows_retired >= run.rows_retired
        assert reports(client, keys, now.date()) == shown

        # later events about archived calls: the views' catch-up reads their rows from the archive
        corrected_call(runtime, "acme", "c-0", "NO_SALE", now, recorded_at=now)
        runtime.ledger("acme").record_verdict(Context("acme", "qa:quinn", now), "call", "c-3", verdict="confirmed")
        for view in views:
            view.catch_up()
        changed = reports(client, keys, now.date())
        assert changed != shown
        Replayer(client, keys, _mapper(runtime), grace=0).replay()
        assert reports(client, keys, now.date()) == changed
    finally:
        runtime.close()
