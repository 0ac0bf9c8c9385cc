"""The scheduled archive (workers/archive.py; docs/archive.md) against real Redis and real
files: one process archives at a time, the holder of the shard's archive lease; a run killed
mid-way is completed by the next one, in whichever process holds the lease then; a real
``outcomes worker`` process told the hot days archives by itself."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.archive import log_entries
from projections.models import read_models
from services.archive import Archiver
from services.checkpoints import Checkpointer, KeyRing, Signer, generate_key
from services.config import Settings
from services.verify import ShardVerifier
from tests.helpers import new_runtime, seed_project, wait_until
from tests.stack import Stack
from tests.test_archive_scale import write_history
from tests.test_replay import _mapper
from workers.archive import LEASE, ArchiveRunner


def test_the_worker_archives_only_when_told_how_many_days_stay_hot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTCOMES_ARCHIVE_HOT_DAYS", raising=False)
    assert Settings.from_env().archive_hot_days is None
    monkeypatch.setenv("OUTCOMES_ARCHIVE_HOT_DAYS", "7")
    monkeypatch.setenv("OUTCOMES_ARCHIVE_INTERVAL", "600")
    assert (Settings.from_env().archive_hot_days, Settings.from_env().archive_interval) == (7.0, 600.0)


def test_one_process_archives_at_a_time_and_completes_a_run_killed_midway(
    redis_url: str, shard: str, tmp_path: Path
) -> None:
    runtime = new_runtime(redis_url, shard)
    client, keys = runtime.client, runtime.shard_keys_for(shard)
    key_file = tmp_path / "checkpoint.key"
    generate_key(key_file)
    settings = replace(runtime.settings, archive_url=str(tmp_path / "archive"))
    a = ArchiveRunner(settings, "worker-a", hot_days=1, lease_ms=60_000)
    b = ArchiveRunner(settings, "worker-b", hot_days=1, lease_ms=60_000)
    try:
        seed_project(runtime, "acme")
        write_history(runtime, "acme", 60, 10, datetime.now(UTC))  # 180 events over ten days
        for view in read_models(client, keys, _mapper(runtime)):
            view.catch_up()
        Checkpointer(client, keys, Signer.from_file(key_file), every_events=50).run_once(force=True)
        before = list(log_entries(client, keys))

        # a run killed after Redis learnt of the archived segment, before the log was trimmed
        killed = Archiver(client, keys, settings.archive_url, stop_after="publish").run(hot_days=1)
        assert killed.through > 0 and client.xlen(keys.log) == len(before)

        run = a.run_once()  # a takes the lease and completes the run
        assert run is not None and run.through >= killed.through
        assert run.rows_retired > 0  # the calls archived whole: their read-model rows too
        assert 0 < client.xlen(keys.log) < 0.2 * len(before)
        assert b.run_once() is None  # a holds the lease: b does nothing

        # a's process dies: its lease runs out and b takes over
        client.pexpire(keys.lease(LEASE), 1)
        while client.exists(keys.lease(LEASE)):
            time.sleep(0.01)
        again = b.run_once()
        assert again is not None and again.through >= run.through
        assert a.run_once() is None

        assert list(log_entries(client, keys)) == before
        report = ShardVerifier(client, keys, KeyRing.from_files([f"{key_file}.pub"])).run()
        assert report.ok, [p.describe() for p in report.problems]
    finally:
        a.close()
        b.close()
        runtime.close()


def test_a_worker_process_told_the_hot_days_archives_by_itself(stack: Stack, tmp_path: Path) -> None:
    runtime = stack.runtime()
    client, keys = runtime.client, runtime.shard_keys_for(runtime.settings.shard)
    key_file = tmp_path / "checkpoint.key"
    generate_key(key_file)
    try:
        seed_project(runtime, "acme")
        write_history(runtime, "acme", 30, 10, datetime.now(UTC))
        events = client.xlen(keys.log)
        stack.env |= {
            "OUTCOMES_CHECKPOINT_KEY": str(key_file),  # the worker signs the log, then archives it
            "OUTCOMES_ARCHIVE_URL": str(tmp_path / "archive"),
            "OUTCOMES_ARCHIVE_HOT_DAYS": "1",
            "OUTCOMES_ARCHIVE_INTERVAL": "0.2",
        }
        stack.start_worker()
        wait_until(lambda: 0 < client.xlen(keys.log) < 0.2 * events, 60, "the worker to archive all but the last day")
        assert (tmp_path / "archive" / keys.base_prefix / keys.shard / "manifest.json").exists()
    finally:
        runtime.close()
