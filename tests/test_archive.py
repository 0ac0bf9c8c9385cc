"""The archive tier (docs/archive.md) against real Redis and real Parquet files: sealed log
segments leave Redis, and replay, export, verify and aggregate loading read archive then
Redis as before; a run stopped after its files are durable and before Redis changes (or
before the trim) is completed by a rerun with no gap and no double; auditors query the
files with DuckDB as the README shows."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from click.testing import CliRunner
from eventsourcing.persistence import IntegrityError, StoredEvent

from events.archive import Archive, log_entries, read_manifest
from events.compact import aggregate_index, decode, encode
from events.keys import encode_originator_id
from events.store import RedisApplicationRecorder, VersionConflict
from projections import cold
from projections.base import current
from projections.interactions import records
from projections.models import read_models
from projections.replay import Replayer
from services.archive import Archiver, last_before, segment_ranges
from services.checkpoints import generate_key
from services.cli import main
from services.export import Exporter, ndjson
from services.interactions import aggregate_id
from tests import test_verify as verify_tests
from tests.helpers import T0, call_with_outcome, corrected_call, new_runtime, seed_project
from tests.test_replay import _mapper, snapshot

TENANTS = ("acme", "beta")

# -- pure -----------------------------------------------------------------------------------------------


def test_segments_cut_a_range_into_files_of_at_most_the_size() -> None:
    assert segment_ranges(1, 10, 4) == [(1, 4), (5, 8), (9, 10)]
    assert segment_ranges(5, 5, 4) == [(5, 5)]
    assert segment_ranges(6, 5, 4) == []


def test_the_hot_window_starts_after_the_last_older_position() -> None:
    assert last_before(1, 10, lambda p: p <= 7) == 7
    assert last_before(1, 10, lambda p: False) == 0
    assert last_before(4, 10, lambda p: True) == 10


# -- a world --------------------------------------------------------------------------------------------


@dataclass
class World(verify_tests.World):
    """test_verify's world with two tenants on the shard and an archive directory."""

    url: str = ""

    def calls_with_outcomes(self, n: int, tenant: str = "") -> None:
        for _ in range(n):
            self.calls += 1
            for each in (tenant,) if tenant else TENANTS:
                call_with_outcome(self.runtime, each, f"c-{self.calls}", "SALE")

    def archiver(self, **options: Any) -> Archiver:
        return Archiver(self.client, self.keys, self.url, segment_size=options.pop("segment_size", 25), **options)

    def exports(self) -> dict[str, Any]:
        """Each tenant's whole log and one early call's history, as the exporter gives them."""
        out: dict[str, Any] = {}
        for tenant in TENANTS:
            exporter = Exporter(self.client, self.keys, tenant, batch=7)
            out[f"log {tenant}"] = b"".join(ndjson(exporter.log()))
            out[f"c-1 {tenant}"] = b"".join(ndjson(exporter.history("call", "c-1")))
            out[f"log {tenant} after 30"] = b"".join(ndjson(exporter.log(after=30, limit=5)))
            assert out[f"log {tenant}"].count(b"\n") > 30
        return out

    def replayed(self) -> dict[str, Any]:
        Replayer(self.client, self.keys, _mapper(self.runtime), grace=0, batch_size=7).replay()
        return snapshot(self.client, self.keys)

    def log(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        return list(log_entries(self.client, self.keys, count=9))


@pytest.fixture()
def world(redis_url: str, shard: str, tmp_path: Path) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    for tenant in TENANTS:
        seed_project(runtime, tenant)
    key_file = tmp_path / "checkpoint.key"
    generate_key(key_file)
    w = World(runtime, runtime.client, runtime.shard_keys_for(shard), key_file, url=str(tmp_path / "archive"))
    try:
        yield w
    finally:
        runtime.close()


def first_redis_position(world: World) -> int:
    entries = world.client.xrange(world.keys.log, count=1)
    return int(entries[0][0].split(b"-")[0]) if entries else 0


def test_archived_segments_leave_redis_and_every_reader_sees_the_same_log(world: World) -> None:
    world.calls_with_outcomes(15)  # 90 events after the 10 of the set-up
    world.checkpoint(every_events=20)  # at 20, 40, ..., 100
    before = world.log()
    exports, views = world.exports(), world.replayed()

    run = world.archiver().run(before_position=71)
    # sealed (a signed checkpoint lies at or after its end), before 71, in files of 25 positions
    assert [(s.first, s.last) for s in run.segments] == [(1, 25), (26, 50), (51, 70)]
    assert first_redis_position(world) == 71
    for tenant in TENANTS:  # the tenants' index streams are trimmed too
        assert int(world.client.xrange(world.keys.tenant_index(tenant), count=1)[0][0].split(b"-")[0]) > 70
    manifest = read_manifest(world.url, world.keys)
    assert [c.position for s in manifest.segments for c in s.checkpoints] == [20, 40, 60]
    assert manifest.segments[1].previous_chain == manifest.segments[0].last_chain

    assert world.log() == before
    assert world.exports() == exports
    assert world.replayed() == views
    report = world.verify()
    assert report.ok, [p.describe() for p in report.problems]
    assert report.events == report.signed_through == len(before)

    # nothing more is sealed before 71: a rerun does nothing
    assert world.archiver().run(before_position=71).segments == []


def test_an_archived_aggregate_loads_and_takes_new_events_chained_to_its_archived_head(world: World) -> None:
    world.calls_with_outcomes(10)
    world.checkpoint(every_events=10)
    world.archiver().run(before_position=int(world.client.hget(world.keys.head, "n") or 0) + 1)  # all of it
    assert world.client.xlen(world.keys.log) == 0
    ledger = world.runtime.ledger("acme")
    call = ledger.call("acme", "c-1")
    assert call.version == 3 and call.outcome is not None and call.outcome.code == "SALE"
    # a correction: the call, its outcome set and the catalogue are all archived
    corrected_call(world.runtime, "acme", "c-1", "NO_SALE", T0 + timedelta(minutes=9))
    call = ledger.call("acme", "c-1")
    assert call.version == 4 and call.outcome is not None and call.outcome.code == "NO_SALE"
    report = world.verify()
    assert report.ok, [p.describe() for p in report.problems]


def test_encoded_compact_entries_decode_to_their_index_and_only_contiguous_small_ones_are_made() -> None:
    head = "ab" * 20
    index = [(1, 7), (2, 9), (3, 300_000), (4, 5_000_001)]
    entry = encode(head, index)
    assert entry is not None and len(entry) <= 64
    assert decode(entry) == (head, index)
    assert encode(head, [(1, 7), (3, 9)]) is None  # a gap in the versions: the sorted set stays
    assert encode(head, [(v, 1_000_000 * v) for v in range(1, 30)]) is None  # too long for a listpack value


def test_a_wholly_archived_aggregate_is_one_compact_entry_that_refuses_stale_saves_and_takes_corrections(
    world: World,
) -> None:
    world.calls_with_outcomes(10)
    world.checkpoint(every_events=10)
    run = world.archiver().run(before_position=world.last() + 1)  # all of it
    assert run.compacted > 20  # the calls, their outcome sets, the catalogues
    ledger = world.runtime.ledger("acme")
    call_id = aggregate_id("acme", "call", "c-1")
    stored = encode_originator_id(call_id)
    index_key = world.keys.aggregate_index(call_id)
    assert not world.client.exists(index_key)  # no sorted set, no archived head: one compact entry
    assert not world.client.hexists(world.keys.archived_heads, stored)
    assert world.client.hget(world.keys.archived, "depth") == b"1"  # 16 buckets, named by sha1's first digit
    entry = world.client.hget(world.keys.compact_bucket(hashlib.sha1(stored.encode()).hexdigest()[:1]), stored)
    assert entry is not None and decode(entry)[1] == aggregate_index(world.client, world.keys, stored)
    assert [p for _, p in aggregate_index(world.client, world.keys, stored)] == [
        int(e[0].split(b"-")[0]) for e in world.log() if e[1][b"o"] == stored.encode()
    ]
    exports = world.exports()  # the history export reads the compact entry
    recorder = ledger.recorder
    assert isinstance(recorder, RedisApplicationRecorder)
    events = recorder.select_events(call_id)
    assert [e.originator_version for e in events] == [1, 2, 3]
    assert [e.originator_version for e in recorder.select_events(call_id, gt=1, desc=True, limit=1)] == [3]
    assert [e.originator_version for e in recorder.select_events(call_id, lte=2)] == [1, 2]

    # a duplicate version and a stale expected version are refused as before, nothing written
    with pytest.raises(IntegrityError, match="already recorded"):
        recorder.insert_events([events[1]])
    with pytest.raises(VersionConflict, match="at version 3, expected 2"):
        other = StoredEvent(uuid.uuid4(), 1, events[0].topic, events[0].state)
        recorder.insert_events([other], expect=[(call_id, 2)], tenant="acme")
    assert world.client.xlen(world.keys.log) == 0 and not world.client.exists(index_key)

    # a correction: version 4 goes to Redis chained to the archived head; the set is back
    corrected_call(world.runtime, "acme", "c-1", "NO_SALE", T0 + timedelta(minutes=9))
    call = ledger.call("acme", "c-1")
    assert call.version == 4 and call.outcome is not None and call.outcome.code == "NO_SALE"
    assert [int(v) for _, v in world.client.zrange(index_key, 0, -1, withscores=True)] == [1, 2, 3, 4]
    assert [v for v, _ in aggregate_index(world.client, world.keys, stored)] == [1, 2, 3, 4]
    with pytest.raises(IntegrityError, match="already recorded"):
        recorder.insert_events([events[2]])
    report = world.verify()
    assert report.ok, [p.describe() for p in report.problems]
    assert world.exports()["c-1 beta"] == exports["c-1 beta"]
    assert world.exports()["c-1 acme"].count(b"\n") == 4

    # archived again: compact again, with its four versions
    world.checkpoint(every_events=1)
    assert world.archiver().run(before_position=world.last() + 1).compacted >= 1
    assert not world.client.exists(index_key)
    assert [v for v, _ in aggregate_index(world.client, world.keys, stored)] == [1, 2, 3, 4]
    assert ledger.call("acme", "c-1").version == 4
    assert world.verify().ok
    assert world.archiver().run(before_position=world.last() + 1).compacted == 0  # a rerun: nothing to do


@pytest.mark.parametrize("stop", ["manifest", "publish"])
def test_a_run_stopped_between_the_file_and_the_trim_is_completed_by_a_rerun(world: World, stop: str) -> None:
    world.calls_with_outcomes(10)
    world.checkpoint(every_events=20)
    before, exports = world.log(), world.exports()
    run = world.archiver(stop_after=stop).run(before_position=50)
    assert [(s.first, s.last) for s in run.segments] == [(1, 25)]
    # the file and the manifest are durable; Redis still holds every entry
    assert first_redis_position(world) == 1
    archive = Archive.of(world.client, world.keys)
    assert (archive.through if archive else 0) == (0 if stop == "manifest" else 25)
    assert world.log() == before and world.exports() == exports  # read once each: no double, no gap
    assert world.verify().ok

    done = world.archiver().run(before_position=50)
    assert [(s.first, s.last) for s in done.segments] == [(26, 49)]
    assert first_redis_position(world) == 50
    assert [s.file for s in read_manifest(world.url, world.keys).segments] == [
        "log-000000000001-000000000025.parquet",
        "log-000000000026-000000000049.parquet",
    ]
    assert world.log() == before and world.exports() == exports
    report = world.verify()
    assert report.ok and report.events == len(before)


def test_verify_names_an_archive_file_that_was_replaced(world: World) -> None:
    world.calls_with_outcomes(5)
    world.checkpoint(every_events=10)
    world.archiver().run(before_position=31)
    path = Path(world.url) / world.keys.base_prefix / world.keys.shard / "log-000000000001-000000000025.parquet"
    path.write_bytes(path.read_bytes() + b"\0")
    report = world.verify()
    assert [(p.kind, p.position) for p in report.problems] == [("archive", 1)]
    assert "log-000000000001-000000000025.parquet" in report.problems[0].detail


def test_auditors_query_the_archive_with_duckdb_as_the_readme_shows(world: World) -> None:
    world.calls_with_outcomes(10)
    world.checkpoint(every_events=10)
    world.archiver().run(before_position=71)
    archive = f"{world.url}/{world.keys.base_prefix}/{world.keys.shard}"
    # the README's query (README.md, "Querying the archive")
    rows = duckdb.sql(
        f"""
        SELECT tenant, topic, count(*) AS events, min(position) AS first, max(position) AS last
        FROM read_parquet('{archive}/log-*.parquet')
        GROUP BY tenant, topic ORDER BY tenant, topic
        """
    ).fetchall()
    counted: dict[tuple[str, str], int] = {}
    for _, fields in world.log():
        position_fields = (fields.get(b"n", b"").decode(), fields[b"t"].decode())
        counted[position_fields] = counted.get(position_fields, 0) + 1
    archived = {(t, topic): n for t, topic, n, first, last in rows}
    assert sum(archived.values()) == 70 and all(last <= 70 for *_, last in rows)
    assert set(archived) <= set(counted)
    manifest = json.loads((Path(archive) / "manifest.json").read_text())
    assert [s["count"] for s in manifest["segments"]] == [25, 25, 20]


def test_the_cli_archives_a_shard_and_refuses_an_ambiguous_window(world: World, redis_url: str) -> None:
    world.calls_with_outcomes(5)
    world.checkpoint(every_events=10)
    env = {
        "REDIS_URL": redis_url,
        "REDIS_SHARD": world.keys.shard,
        "REDIS_KEY_PREFIX": world.keys.base_prefix,
        "OUTCOMES_ARCHIVE_URL": world.url,
    }
    runner = CliRunner()
    done = runner.invoke(main, ["archive", "--before-position", "21", "--segment-size", "10"], env=env)
    assert done.exit_code == 0, done.output
    assert "archived through 20" in done.output and "log-000000000011-000000000020.parquet" in done.output
    assert first_redis_position(world) == 21
    both = runner.invoke(main, ["archive", "--before-position", "21", "--hot-days", "1"], env=env)
    assert both.exit_code == 2 and "exactly one of --hot-days and --before-position" in both.output


def test_a_row_rewritten_after_a_retirement_read_it_stays_in_redis_and_wins(world: World) -> None:
    world.calls_with_outcomes(4, "acme")
    for view in read_models(world.client, world.keys, _mapper(world.runtime)):
        view.catch_up()
    world.checkpoint(every_events=10)
    run = world.archiver().run(before_position=world.last() + 1)  # all of it
    assert run.rows_retired == 2 * 4  # both views' rows of the four calls
    keys = current(world.client, world.keys)
    row_key = cold.rows_key(keys, "interactions", "acme")
    assert world.client.hlen(row_key) == 0
    [archived] = records(world.client, keys, "acme", ["call:c-2"])  # read from the archive
    assert archived is not None and archived.id == "c-2"

    # the view writes the row again (a later event) after a retirement read the old value:
    # that retirement deletes nothing, and every reader gets the newer row
    newer = msgspec.structs.replace(archived, termination_reason="QA: re-dialled")
    world.client.hset(row_key, "call:c-2", msgspec.json.encode(newer))
    stale = {"call:c-2": msgspec.json.encode(archived)}
    assert cold.retire(world.client, keys, world.url, "interactions", "acme", stale) == 0
    assert records(world.client, keys, "acme", ["call:c-2"]) == [newer]
    assert records(world.client, keys, "acme", ["call:c-3"])[0] is not None  # still the archive's
    assert world.client.hlen(cold.registry_key(keys, "interactions")) == 2  # the first run's file and this one


def test_a_replay_removes_the_archived_rows_of_the_generation_it_replaced(world: World) -> None:
    world.calls_with_outcomes(4, "acme")
    for view in read_models(world.client, world.keys, _mapper(world.runtime)):
        view.catch_up()
    world.checkpoint(every_events=10)
    assert world.archiver().run(before_position=world.last() + 1).rows_retired == 2 * 4
    old = current(world.client, world.keys)
    old_dirs = [Path(cold.directory(world.url, old, view)) for view in ("interactions", "outcome-mix")]
    assert all(any(d.iterdir()) for d in old_dirs)
    [before] = records(world.client, old, "acme", ["call:c-2"])  # read from the archive
    assert before is not None

    world.replayed()

    new = current(world.client, world.keys)
    assert new.generations != old.generations
    assert not any(d.exists() for d in old_dirs)  # the replaced generation's rows files are gone
    # the new generation holds every row in Redis again (until the next archive run)
    assert world.client.hlen(cold.rows_key(new, "interactions", "acme")) == 4
    assert records(world.client, new, "acme", ["call:c-2"]) == [before]
