"""``outcomes backup`` and ``outcomes restore`` (docs/backups.md).

A backup directory holds:

- ``redis/dump.rdb``: a point-in-time snapshot of the whole Redis data set (BGSAVE, waited
  for, then copied);
- ``archive/<key prefix>/<shard>/``: the archive files the snapshot points at and their
  manifest, cut at the snapshot's ``archived.through`` (or, with ``by_reference``, only the
  object store's URL and the files' sha256 in ``backup.json``);
- ``backup.json``, written last (its presence marks a complete backup): what was taken and
  when, per shard the log head, the archive's ``through`` and the signed checkpoints, and the
  sha256 of every file.

What the snapshot holds is read from the snapshot itself (the RDB copy is loaded into a
private redis-server), not from the live server, which moves on meanwhile. The archive is
copied *after* the snapshot: segments are only ever appended, so the copy holds every segment
the snapshot's ``through`` names; segments an archive run added in between are left out (the
snapshot still holds their events in its log), so the restored manifest never runs ahead of
the restored log.

Restore checks every file against ``backup.json`` (a mismatch is refused, nothing written),
puts the archive back, loads the RDB into the target data directory with ``appendonly no``
and switches the AOF on (Redis 7 with ``appendonly yes`` and no AOF would start empty and
ignore the RDB), so a server started there afterwards with ``appendonly yes`` loads it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import msgspec
import redis

from events.archive import (
    Manifest,
    Segment,
    absolute,
    filesystem,
    read_manifest,
    read_segment_bytes,
    sha256,
    shard_url,
    write_atomically,
    write_manifest,
)
from events.embedded import EmbeddedRedis
from events.keys import ShardKeys
from services.checkpoints import read_checkpoints
from services.verify import shards_of

FORMAT = 1
MANIFEST = "backup.json"
RDB = "redis/dump.rdb"
ARCHIVE = "archive"
#: how long a BGSAVE or an AOF rewrite may take before the command gives up
WAIT_SECONDS = 3600.0
#: Redis neither saving nor rewriting this long after the BGSAVE, and no new save: it failed
FAILED_AFTER_SECONDS = 2.0


class BackupError(Exception):
    """The backup cannot be taken or restored as asked; the message says why."""


class BackupFile(msgspec.Struct, frozen=True):
    path: str  # relative to the backup directory
    sha256: str
    size: int


class ShardArchive(msgspec.Struct, frozen=True):
    #: where the shard's archive lived when the backup was taken (Redis's ``archived.url``)
    url: str
    #: "copy": the files are in the backup; "reference": only their sha256 (object store)
    mode: Literal["copy", "reference"]
    #: the segments the snapshot's ``through`` covers, as the archive's manifest lists them
    segments: list[Segment]


class ShardState(msgspec.Struct, frozen=True):
    shard: str
    #: the last log position and its chain hash in the snapshot: the restored log ends here
    head: int
    head_chain: str
    archived_through: int
    #: positions of the signed checkpoints in the snapshot (entry ids ``<position>-0``)
    checkpoints: list[int]
    archive: ShardArchive | None = None

    @property
    def signed_through(self) -> int:
        return self.checkpoints[-1] if self.checkpoints else 0


class BackupManifest(msgspec.Struct, frozen=True):
    format: int
    created_at: str
    redis_version: str
    key_prefix: str
    shards: list[ShardState]
    files: list[BackupFile]


# -- small pure pieces ------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks (an RDB can be large)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def covered(manifest: Manifest, through: int) -> list[Segment]:
    """The manifest's segments up to ``through``; refused if it does not reach ``through``."""
    segments = [s for s in manifest.segments if s.last <= through]
    if (segments[-1].last if segments else 0) != through:
        raise BackupError(
            f"the archive manifest of shard {manifest.shard} does not end a segment at position {through}, "
            "which the snapshot says is archived"
        )
    return segments


def summary(manifest: BackupManifest) -> list[str]:
    """What the backup holds, per shard, and what a restore of it loses."""
    lines = [f"backup taken {manifest.created_at} (Redis {manifest.redis_version}, key prefix {manifest.key_prefix})"]
    for s in manifest.shards:
        tail = s.head - s.signed_through
        archived = f", archived through {s.archived_through} ({s.archive.mode})" if s.archive else ""
        lines.append(
            f"  shard {s.shard}: log ends at position {s.head}{archived}, signed through {s.signed_through}"
            + (
                f", {tail} events after the last checkpoint (verify reports them as the unverified tail)"
                if tail
                else ""
            )
        )
    lines.append("events recorded after the backup was taken are not in it")
    return lines


def _write_file(path: Path, data: bytes) -> None:
    fs, root = filesystem(str(path))
    write_atomically(fs, root, data)


def _copy_file(source: Path, target: Path) -> None:
    """Copy beside and rename, fsynced: the target is absent or complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with open(source, "rb") as src, open(temporary, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(temporary, target)


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    return client.info(section)


def _wait(what: str, done: Callable[[], bool], timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise BackupError(f"gave up waiting for {what}")
        time.sleep(0.05)


# -- taking a backup --------------------------------------------------------------------------------


def bgsave(client: redis.Redis) -> None:
    """Make Redis write a fresh RDB snapshot and wait until it is on disk.

    The snapshot is one Redis forks *after* this call (LASTSAVE moves past its value before
    the call), so it holds every write acknowledged before the backup started."""
    before = int(cast(int, client.lastsave().timestamp()))
    # LASTSAVE has one-second resolution: start the save in a later second than the last one
    _wait("the next second", lambda: int(client.time()[0]) > before)
    while True:
        try:
            client.bgsave(schedule=True)  # after an AOF rewrite under way, if any
            break
        except redis.ResponseError as error:
            if "in progress" not in str(error):
                raise BackupError(f"BGSAVE refused: {error}") from None
            _wait("the BGSAVE already running", lambda: not _info(client, "persistence")["rdb_bgsave_in_progress"])

    idle_since: float | None = None

    def saved() -> bool:
        nonlocal idle_since
        if int(client.lastsave().timestamp()) > before:
            return True  # LASTSAVE moves only when a save succeeded
        info = _info(client, "persistence")
        if info["rdb_bgsave_in_progress"] or info["aof_rewrite_in_progress"]:
            idle_since = None
            return False
        # neither saving nor waiting for a rewrite to finish: the save failed (a save scheduled
        # behind a rewrite starts within a cron tick of its end, hence the grace)
        idle_since = idle_since or time.monotonic()
        if time.monotonic() - idle_since > FAILED_AFTER_SECONDS:
            status = info["rdb_last_bgsave_status"]
            raise BackupError(f"BGSAVE did not complete (last status: {status}; see the Redis log)")
        return False

    _wait("BGSAVE", saved)


def rdb_path(client: redis.Redis, data_dir: Path | None) -> Path:
    """Where the server writes its RDB: ``CONFIG GET dir``/``dbfilename`` (``data_dir``
    instead of ``dir`` when this machine mounts the server's data elsewhere)."""
    try:
        config = cast(
            dict[str, str], {k: v for name in ("dir", "dbfilename") for k, v in client.config_get(name).items()}
        )
    except redis.ResponseError as error:
        raise BackupError(
            f"CONFIG GET refused ({error}): take the RDB on the Redis host, see docs/backups.md"
        ) from None
    directory = data_dir or Path(config["dir"])
    path = directory / config["dbfilename"]
    if not path.is_file():
        raise BackupError(
            f"no RDB at {path}: the Redis server is not on this machine (or not mounted here). Run BGSAVE on its "
            "host, copy the RDB here and pass it with --rdb, or give --data-dir (docs/backups.md)"
        )
    return path


@contextmanager
def loaded(rdb: Path) -> Iterator[redis.Redis]:
    """The RDB loaded into a private redis-server (no AOF, never saved back): a client on it."""
    with tempfile.TemporaryDirectory(prefix="outcomes-backup-") as scratch:
        _copy_or_link(rdb, Path(scratch) / "dump.rdb")
        server = EmbeddedRedis(Path(scratch), appendonly=False).start()
        client = redis.Redis.from_url(server.url)
        try:
            yield client
        finally:
            client.close()
            server.stop()


def _copy_or_link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def shard_states(client: redis.Redis, prefix: str, shards: list[str]) -> list[ShardState]:
    """These shards' heads, archives and checkpoints as ``client``'s data set holds them."""
    states = []
    for name in shards:
        keys = ShardKeys(name, prefix)
        head, chain = cast(list[bytes | None], client.hmget(keys.head, ["n", "c"]))
        through, url = cast(list[bytes | None], client.hmget(keys.archived, ["through", "url"]))
        archived = int(through) if through is not None else 0
        states.append(
            ShardState(
                shard=name,
                head=int(head) if head is not None else 0,
                head_chain=chain.decode() if chain else "",
                archived_through=archived,
                checkpoints=[int(entry_id.split("-")[0]) for entry_id, _ in read_checkpoints(client, keys)],
                archive=ShardArchive(url.decode(), "copy", []) if url is not None and archived else None,
            )
        )
    return states


class Backup:
    """One backup into ``target``, in steps so that the order is explicit (and testable):
    :meth:`snapshot`, then :meth:`copy_archive`, then :meth:`finish`."""

    def __init__(self, client: redis.Redis, target: Path, key_prefix: str, default_shard: str) -> None:
        self.client = client
        self.target = Path(target).resolve()
        self.key_prefix = key_prefix
        self.default_shard = default_shard
        self.shards: list[ShardState] = []
        self.redis_version = ""
        self.created_at = ""

    def snapshot(self, rdb: Path | None = None, data_dir: Path | None = None) -> None:
        """BGSAVE and copy the RDB (or take ``rdb``, one copied from the Redis host), then read
        what it holds from the copy itself."""
        if self.target.exists() and any(self.target.iterdir()):
            raise BackupError(f"{self.target} is not empty: a backup goes into a new or empty directory")
        self.created_at = datetime.now(UTC).isoformat(timespec="seconds")
        if rdb is None:
            bgsave(self.client)
            rdb = rdb_path(self.client, data_dir)
        _copy_file(rdb, self.target / RDB)
        with loaded(self.target / RDB) as snapshot:
            self.redis_version = str(_info(snapshot, "server")["redis_version"])
            names = shards_of(snapshot, self.key_prefix, self.default_shard)
            self.shards = shard_states(snapshot, self.key_prefix, names)

    def copy_archive(self, by_reference: bool = False) -> None:
        """The archive segments the snapshot points at: copied under ``archive/`` with a
        manifest cut at the snapshot's ``through``, or (``by_reference``) only listed."""
        for i, state in enumerate(self.shards):
            if state.archive is None:
                continue
            keys = ShardKeys(state.shard, self.key_prefix)
            segments = covered(read_manifest(state.archive.url, keys), state.archived_through)
            if not by_reference:
                for segment in segments:
                    data = read_segment_bytes(state.archive.url, keys, segment)
                    if sha256(data) != segment.sha256:
                        raise BackupError(f"archive file {segment.file} does not match its sha256 in the manifest")
                    _write_file(self.target / self._archive_dir(keys) / segment.file, data)
                write_manifest(str(self.target / ARCHIVE), keys, Manifest(state.shard, segments))
            mode: Literal["copy", "reference"] = "reference" if by_reference else "copy"
            self.shards[i] = msgspec.structs.replace(state, archive=ShardArchive(state.archive.url, mode, segments))

    def _archive_dir(self, keys: ShardKeys) -> str:
        return shard_url(ARCHIVE, keys)

    def finish(self) -> BackupManifest:
        """Hash every file and write ``backup.json`` (last: it marks the backup complete)."""
        files = [
            BackupFile(str(path.relative_to(self.target)), file_sha256(path), path.stat().st_size)
            for path in sorted(self.target.rglob("*"))
            if path.is_file() and path.name != MANIFEST
        ]
        manifest = BackupManifest(FORMAT, self.created_at, self.redis_version, self.key_prefix, self.shards, files)
        _write_file(self.target / MANIFEST, msgspec.json.format(msgspec.json.encode(manifest)))
        return manifest


def take_backup(
    client: redis.Redis,
    target: Path,
    key_prefix: str,
    default_shard: str,
    *,
    rdb: Path | None = None,
    data_dir: Path | None = None,
    by_reference: bool = False,
) -> BackupManifest:
    backup = Backup(client, target, key_prefix, default_shard)
    backup.snapshot(rdb, data_dir)
    backup.copy_archive(by_reference)
    return backup.finish()


# -- restoring --------------------------------------------------------------------------------------


def read_backup(source: Path) -> BackupManifest:
    path = Path(source) / MANIFEST
    if not path.is_file():
        raise BackupError(f"{source} holds no {MANIFEST}: not a backup, or one that did not finish")
    manifest = msgspec.json.decode(path.read_bytes(), type=BackupManifest)
    if manifest.format != FORMAT:
        raise BackupError(f"backup format {manifest.format}; this version reads format {FORMAT}")
    return manifest


def check_files(source: Path, manifest: BackupManifest) -> None:
    """Every file the backup lists is there and has its sha256 (else refused, naming it)."""
    listed = {f.path for f in manifest.files}
    if RDB not in listed:
        raise BackupError(f"the backup lists no {RDB}")
    for f in manifest.files:
        path = Path(source) / f.path
        if not path.is_file():
            raise BackupError(f"backup file {f.path} is missing")
        if file_sha256(path) != f.sha256:
            raise BackupError(f"backup file {f.path} does not match its sha256 in {MANIFEST}: refusing to restore")
    for state in manifest.shards:
        if state.archive is not None and state.archive.mode == "copy":
            for segment in state.archive.segments:
                if (
                    str(Path(shard_url(ARCHIVE, ShardKeys(state.shard, manifest.key_prefix))) / segment.file)
                    not in listed
                ):
                    raise BackupError(f"archive file {segment.file} of shard {state.shard} is not in the backup")


def archive_targets(manifest: BackupManifest, url: str | None) -> dict[str, str]:
    """Where each archived shard's files go back: ``url``, or where they were."""
    return {
        state.shard: absolute(url) if url is not None else state.archive.url
        for state in manifest.shards
        if state.archive is not None
    }


def check_references(manifest: BackupManifest, targets: dict[str, str]) -> None:
    """Archive files kept by reference are at their URL with the backup's sha256 (else refused)."""
    for state in manifest.shards:
        if state.archive is None or state.archive.mode != "reference":
            continue
        keys = ShardKeys(state.shard, manifest.key_prefix)
        fs, root = filesystem(shard_url(targets[state.shard], keys))
        for segment in state.archive.segments:
            if not fs.exists(f"{root}/{segment.file}"):
                raise BackupError(f"archive file {segment.file} is not at {shard_url(targets[state.shard], keys)}")
            if sha256(read_segment_bytes(targets[state.shard], keys, segment)) != segment.sha256:
                raise BackupError(
                    f"archive file {segment.file} at {targets[state.shard]} does not match the backup's sha256"
                )


def restore_archive(source: Path, manifest: BackupManifest, targets: dict[str, str]) -> None:
    """Put each shard's copied archive files back, and its manifest cut at the backup's
    ``through`` (never ahead of the restored log: segments of the lost future are dropped
    from it)."""
    for state in manifest.shards:
        if state.archive is None:
            continue
        keys = ShardKeys(state.shard, manifest.key_prefix)
        fs, root = filesystem(shard_url(targets[state.shard], keys))
        if state.archive.mode == "copy":
            for segment in state.archive.segments:
                data = (Path(source) / shard_url(ARCHIVE, keys) / segment.file).read_bytes()
                write_atomically(fs, f"{root}/{segment.file}", data)
        write_manifest(targets[state.shard], keys, Manifest(state.shard, list(state.archive.segments)))


#: what a Redis data directory may hold that a restore would shadow or be shadowed by
DATA_FILES = ("dump.rdb", "appendonlydir", "appendonly.aof")


def prepare_data_dir(data_dir: Path, replace: bool) -> Path | None:
    """An empty place for the restored data: existing data is refused, or with ``replace``
    moved aside (never deleted). Returns where it went."""
    data_dir.mkdir(parents=True, exist_ok=True)
    present = [name for name in DATA_FILES if (data_dir / name).exists()]
    if not present:
        return None
    if not replace:
        raise BackupError(
            f"{data_dir} already holds Redis data ({', '.join(present)}); stop that Redis and pass --replace "
            "to move it aside"
        )
    aside = data_dir / f"before-restore-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    aside.mkdir()
    for name in present:
        os.replace(data_dir / name, aside / name)
    return aside


@dataclass(frozen=True)
class Restored:
    manifest: BackupManifest
    data_dir: Path
    archive_urls: dict[str, str]
    moved_aside: Path | None


def restore(source: Path, data_dir: Path, *, archive_url: str | None = None, replace: bool = False) -> Restored:
    """Restore a backup into ``data_dir`` (that of a *stopped* Redis) and its archive.

    The RDB is loaded there by a private redis-server with ``appendonly no``; then the AOF is
    switched on and rewritten from the data, so the directory holds both, and a server
    started on it with ``appendonly yes`` (as production runs) loads the restored data."""
    source = Path(source)
    manifest = read_backup(source)
    check_files(source, manifest)
    urls = archive_targets(manifest, archive_url)
    check_references(manifest, urls)
    data_dir = Path(data_dir).resolve()
    aside = prepare_data_dir(data_dir, replace)  # nothing is written before this point
    restore_archive(source, manifest, urls)
    _copy_file(source / RDB, data_dir / "dump.rdb")
    server = EmbeddedRedis(data_dir, appendonly=False).start()
    client = redis.Redis.from_url(server.url)
    try:
        found = shard_states(client, manifest.key_prefix, [s.shard for s in manifest.shards])
        heads = {s.shard: (s.head, s.head_chain, s.archived_through) for s in found}
        for state in manifest.shards:
            if heads.get(state.shard) != (state.head, state.head_chain, state.archived_through):
                raise BackupError(f"the RDB's shard {state.shard} is not what {MANIFEST} describes")
            moved = urls.get(state.shard)
            if moved is not None and state.archive is not None and moved != state.archive.url:
                client.hset(ShardKeys(state.shard, manifest.key_prefix).archived, "url", moved)
        client.config_set("appendonly", "yes")  # rewrites the AOF from the loaded data

        def rewritten() -> bool:
            info = _info(client, "persistence")
            return not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]) and bool(info["aof_enabled"])

        _wait("the AOF rewrite", rewritten)
        if _info(client, "persistence")["aof_last_bgrewrite_status"] != "ok":
            raise BackupError(f"the AOF rewrite in {data_dir} failed (see redis.log there)")
        client.save()  # and an RDB of the same data, for servers that start without the AOF
    finally:
        client.close()
        server.stop()
    return Restored(manifest, data_dir, urls, aside)
