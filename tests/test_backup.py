"""Backups (docs/backups.md) with real redis-server processes: history, signed checkpoints and
an archived part are backed up; more is written; the server's data (and the archive) are
destroyed; the restore brings back exactly the data set of the backup's moment -- the same
DEBUG DIGEST, exports and read models -- and ``outcomes verify`` accepts it. A backup file
changed afterwards is refused by the restore; one changed along with every hash the backup
lists is caught by verify. An archive run between the snapshot and the archive copy does not
make the restored archive run ahead of the restored log."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from events.archive import read_manifest, sha256
from events.embedded import EmbeddedRedis
from services.backup import MANIFEST, RDB, Backup, BackupError, covered, file_sha256, read_backup, restore
from services.checkpoints import generate_key
from services.cli import main
from services.config import Settings
from services.runtime import Runtime
from tests.helpers import seed_project
from tests.test_archive import TENANTS
from tests.test_archive import World as ArchiveWorld
from tests.test_replay import snapshot

SHARD = "s00"


@dataclass
class Site:
    """One private redis-server with its data directory, and the ledger on it."""

    server: EmbeddedRedis
    world: ArchiveWorld

    @property
    def prefix(self) -> str:
        return self.world.keys.base_prefix

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.server.url, "REDIS_SHARD": SHARD, "REDIS_KEY_PREFIX": self.prefix}

    def digest(self) -> bytes:
        return self.world.client.execute_command("DEBUG", "DIGEST")  # type: ignore[no-untyped-call,no-any-return]

    def state(self) -> dict[str, Any]:
        """What the backup must bring back: the whole data set's digest, the exports, the
        read models and the log head."""
        return {
            "digest": self.digest(),
            "exports": self.world.exports(),
            "views": snapshot(self.world.client, self.world.keys),
            "head": self.world.last(),
        }

    def close(self) -> None:
        self.world.runtime.close()
        self.server.stop()


def open_site(data_dir: Path, prefix: str, key_file: Path, archive: str) -> Site:
    server = EmbeddedRedis(data_dir).start()
    runtime = Runtime(Settings(redis_url=server.url, shard=SHARD, key_prefix=prefix))
    keys = runtime.shard_keys_for(SHARD)
    return Site(server, ArchiveWorld(runtime, runtime.client, keys, key_file, url=archive))


def history(s: Site) -> Site:
    """History on two tenants, checkpoints every 20 events, positions before 51 archived,
    read models caught up, and 6 events after the last checkpoint."""
    for tenant in TENANTS:
        seed_project(s.world.runtime, tenant)
    s.world.calls_with_outcomes(12)  # 10 + 72 events
    s.world.checkpoint(every_events=20)
    s.world.archiver().run(before_position=51)
    s.world.calls_with_outcomes(1)  # 6 more: an unsigned tail
    s.world.replayed()
    return s


@pytest.fixture()
def key_file(tmp_path: Path) -> Path:
    generate_key(tmp_path / "checkpoint.key")
    return tmp_path / "checkpoint.key"


@pytest.fixture()
def site(tmp_path: Path, key_file: Path) -> Iterator[Site]:
    s = open_site(tmp_path / "redis", "olb", key_file, str(tmp_path / "archive"))
    try:
        yield history(s)
    finally:
        s.close()


def cli(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_a_restore_brings_back_the_backups_moment_and_verify_accepts_it(site: Site, tmp_path: Path) -> None:
    at_backup = site.state()
    backup_dir = tmp_path / "backup"
    done = cli(["backup", str(backup_dir)], site.env())
    assert done.exit_code == 0, done.output
    manifest = read_backup(backup_dir)
    (shard,) = manifest.shards
    assert (shard.head, shard.archived_through, shard.checkpoints) == (at_backup["head"], 50, [20, 40, 60, 80, 94])
    assert shard.archive is not None and shard.archive.mode == "copy"
    assert [(s.first, s.last) for s in shard.archive.segments] == [(1, 25), (26, 50)]
    assert f"log ends at position {at_backup['head']}" in done.output

    # life goes on: more events, signed and archived, then the server and the archive are lost
    site.world.calls_with_outcomes(10)
    site.world.checkpoint(every_events=20)
    site.world.archiver().run(before_position=101)
    assert site.world.last() > at_backup["head"]
    site.world.runtime.close()
    site.server.kill()
    shutil.rmtree(site.server.data_dir)
    shutil.rmtree(site.world.url)

    restored_dir = tmp_path / "restored"
    public = f"{site.world.key_file}.pub"
    done = cli(["restore", str(backup_dir), "--data-dir", str(restored_dir), "--check", "--public-key", public], {})
    assert done.exit_code == 0, done.output
    assert "INTACT" in done.output and "unverified tail: 6 events" in done.output
    assert "events recorded after the backup was taken are not in it" in done.output
    # the archive is back where it was, cut where the backup's snapshot had it
    assert read_manifest(site.world.url, site.world.keys).through == 50

    # a Redis started on the restored directory as production runs it (appendonly yes)
    back = open_site(restored_dir, site.prefix, site.world.key_file, site.world.url)
    try:
        assert back.state() == at_backup  # the data set of the backup's moment, no more
        done = cli(["verify", "--public-key", public], back.env())
        assert done.exit_code == 0, done.output
        # and the restored ledger goes on: new events chain on, archiving resumes
        back.world.calls = site.world.calls  # call ids not used before
        back.world.calls_with_outcomes(5)
        back.world.checkpoint(every_events=20)
        assert [s.last for s in back.world.archiver().run(before_position=81).segments] == [75, 80]
        report = back.world.verify()
        assert report.ok and report.signed_through == back.world.last()
    finally:
        back.close()


def _backed_up(site: Site, tmp_path: Path) -> Path:
    backup_dir = tmp_path / "backup"
    assert cli(["backup", str(backup_dir)], site.env()).exit_code == 0
    return backup_dir


def _segment_path(backup_dir: Path, site: Site) -> Path:
    return backup_dir / "archive" / site.prefix / SHARD / "log-000000000001-000000000025.parquet"


def test_a_changed_backup_file_is_refused_and_nothing_is_written(site: Site, tmp_path: Path) -> None:
    backup_dir = _backed_up(site, tmp_path)
    for changed in (_segment_path(backup_dir, site), backup_dir / RDB):
        original = changed.read_bytes()
        changed.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        target, archive = tmp_path / "target", tmp_path / "elsewhere"
        done = CliRunner().invoke(
            main, ["restore", str(backup_dir), "--data-dir", str(target), "--archive-url", str(archive)]
        )
        assert done.exit_code == 1
        relative = str(changed.relative_to(backup_dir))
        assert f"backup file {relative} does not match its sha256" in done.output
        assert not target.exists() and not archive.exists()
        changed.write_bytes(original)


def test_a_changed_file_with_every_hash_recomputed_is_caught_by_verify(site: Site, tmp_path: Path) -> None:
    backup_dir = _backed_up(site, tmp_path)
    # edit one archived event's stored bytes and recompute the hashes backup.json lists
    segment = _segment_path(backup_dir, site)
    table = pq.read_table(segment)
    states = table.column("state").to_pylist()
    middle = len(states[11]) // 2
    states[11] = states[11][:middle] + bytes([states[11][middle] ^ 1]) + states[11][middle + 1 :]
    table = table.set_column(table.schema.get_field_index("state"), "state", pa.array(states, pa.binary()))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    segment.write_bytes(sink.getvalue())
    listed = json.loads((backup_dir / MANIFEST).read_text())
    for s in listed["shards"][0]["archive"]["segments"]:
        if s["file"] == segment.name:
            s["sha256"] = sha256(sink.getvalue())
    for f in listed["files"]:
        f["sha256"] = file_sha256(backup_dir / f["path"])
    (backup_dir / MANIFEST).write_text(json.dumps(listed))

    public = f"{site.world.key_file}.pub"
    args = ["restore", str(backup_dir), "--data-dir", str(tmp_path / "restored"), "--check", "--public-key", public]
    done = cli([*args, "--archive-url", str(tmp_path / "archive2")], {})
    assert done.exit_code == 1, done.output
    assert "TAMPERED: shard s00, log id 12-0, edited" in done.output


def test_an_archive_run_between_snapshot_and_archive_copy_leaves_the_restored_archive_at_the_snapshot(
    site: Site, tmp_path: Path
) -> None:
    at_backup = site.state()
    backup = Backup(site.world.client, tmp_path / "backup", site.prefix, SHARD)
    backup.snapshot()
    # an archive run lands between the snapshot and the archive copy
    site.world.calls_with_outcomes(4)
    site.world.checkpoint(every_events=20)
    assert [s.last for s in site.world.archiver().run(before_position=101).segments] == [75, 100]
    backup.copy_archive()
    manifest = backup.finish()
    assert manifest.shards[0].archived_through == 50
    assert manifest.shards[0].archive is not None and manifest.shards[0].archive.segments[-1].last == 50

    restored = restore(tmp_path / "backup", tmp_path / "restored", archive_url=str(tmp_path / "archive2"))
    assert restored.archive_urls == {SHARD: str(tmp_path / "archive2")}
    back = open_site(tmp_path / "restored", site.prefix, site.world.key_file, str(tmp_path / "archive2"))
    try:
        state = back.state()
        assert state["exports"] == at_backup["exports"] and state["views"] == at_backup["views"]
        assert read_manifest(back.world.url, back.world.keys).through == 50
        report = back.world.verify()
        assert report.ok, [p.describe() for p in report.problems]
    finally:
        back.close()


def test_restore_refuses_a_data_directory_that_holds_data_unless_told_to_move_it_aside(
    site: Site, tmp_path: Path
) -> None:
    backup_dir = _backed_up(site, tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    (target / "dump.rdb").write_bytes(b"older data")
    with pytest.raises(BackupError, match="already holds Redis data"):
        restore(backup_dir, target, archive_url=str(tmp_path / "a2"))
    assert (target / "dump.rdb").read_bytes() == b"older data"
    restored = restore(backup_dir, target, archive_url=str(tmp_path / "a2"), replace=True)
    assert restored.moved_aside is not None and (restored.moved_aside / "dump.rdb").read_bytes() == b"older data"
    assert (target / "appendonlydir").is_dir() or (target / "appendonly.aof").is_file()


def test_a_backup_is_never_written_over_and_a_remote_servers_rdb_can_be_given(site: Site, tmp_path: Path) -> None:
    backup_dir = _backed_up(site, tmp_path)
    done = CliRunner().invoke(main, ["backup", str(backup_dir)], env=site.env())
    assert done.exit_code == 1 and "is not empty: a backup goes into a new or empty directory" in done.output
    # the remote procedure: BGSAVE on the host, copy the RDB, hand it to the command
    copied = tmp_path / "copied.rdb"
    shutil.copyfile(backup_dir / RDB, copied)
    done = cli(["backup", str(tmp_path / "from-host"), "--rdb", str(copied)], site.env())
    assert done.exit_code == 0, done.output
    assert read_backup(tmp_path / "from-host").shards == read_backup(backup_dir).shards


def test_covered_cuts_the_archive_manifest_at_the_snapshots_through(site: Site) -> None:
    manifest = read_manifest(site.world.url, site.world.keys)
    assert [s.last for s in covered(manifest, 50)] == [25, 50]
    assert [s.last for s in covered(manifest, 25)] == [25]
    with pytest.raises(BackupError, match="does not end a segment at position 30"):
        covered(manifest, 30)
    assert covered(manifest, 0) == []


def test_an_archive_in_an_object_store_is_backed_up_by_reference_and_checked_on_restore(
    tmp_path: Path, key_file: Path
) -> None:
    url = f"memory://backup-{uuid.uuid4().hex[:8]}"  # fsspec's in-process object store
    site = history(open_site(tmp_path / "redis", "olr", key_file, url))
    try:
        at_backup = site.state()
        backup_dir = tmp_path / "backup"
        done = cli(["backup", str(backup_dir), "--archive-by-reference"], site.env())
        assert done.exit_code == 0, done.output
        assert not (backup_dir / "archive").exists()
        (shard,) = read_backup(backup_dir).shards
        assert shard.archive is not None and shard.archive.mode == "reference" and shard.archive.url == url
    finally:
        site.close()
    shutil.rmtree(site.server.data_dir)

    fs = fsspec.filesystem("memory")
    segment = f"{url}/olr/{SHARD}/log-000000000026-000000000050.parquet"
    original = fs.cat_file(segment)
    fs.pipe_file(segment, original + b"x")
    with pytest.raises(BackupError, match=r"log-000000000026-000000000050\.parquet at memory://\S+ does not match"):
        restore(backup_dir, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()  # nothing written
    fs.pipe_file(segment, original)
    restore(backup_dir, tmp_path / "restored")
    back = open_site(tmp_path / "restored", "olr", key_file, url)
    try:
        assert back.state() == at_backup
        assert back.world.verify().ok
    finally:
        back.close()


def test_a_failed_bgsave_is_reported_and_no_backup_is_written(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False).start()
    try:
        shutil.rmtree(server.data_dir)  # Redis now works in a removed directory: a BGSAVE cannot write
        done = CliRunner().invoke(main, ["backup", str(tmp_path / "backup")], env={"REDIS_URL": server.url})
    finally:
        server.stop()
    assert done.exit_code == 1
    assert "BGSAVE did not complete (last status: err" in done.output
    assert not (tmp_path / "backup").exists()
