"""``outcomes backup`` and ``outcomes restore`` (docs/backups.md). Registered on the
``outcomes`` group by ``services/cli.py``; the work is in ``services/backup.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import redis

from events.archive import ArchiveError
from events.connect import is_cluster
from events.keys import ShardKeys
from services.audit_cli import CANNOT_VERIFY, INTACT, TAMPERED, public_key_option
from services.backup import BackupError, Restored, restore, summary, take_backup
from services.checkpoints import KeyRing
from services.config import Settings
from services.verify import CannotVerify, render, verify

_DIR = click.Path(file_okay=False, path_type=Path)


@click.command("backup")
@click.argument("target", type=_DIR)
@click.option(
    "--rdb",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An RDB already taken on a remote Redis host (BGSAVE there, copy it here); no BGSAVE is asked for.",
)
@click.option(
    "--data-dir",
    default=None,
    type=_DIR,
    help="The server's data directory as this machine sees it (default: its CONFIG GET dir).",
)
@click.option(
    "--archive-by-reference",
    is_flag=True,
    help="Record the archive's URL and files' sha256 only (an object store with its own retention).",
)
def backup_command(target: Path, rdb: Path | None, data_dir: Path | None, archive_by_reference: bool) -> None:
    """Back up into TARGET: a BGSAVE snapshot (RDB), the archive files it points at and
    backup.json (log heads, checkpoints, sha256 of every file)."""
    settings = Settings.from_env()
    if is_cluster(settings.redis_url):
        # one BGSAVE is one server's snapshot: a cluster's masters are backed up one by one
        raise click.ClickException("backup takes one server's snapshot: back up each master (docs/backups.md)")
    client = redis.Redis.from_url(settings.redis_url)
    try:
        manifest = take_backup(
            client,
            target,
            settings.key_prefix,
            settings.shard,
            rdb=rdb,
            data_dir=data_dir,
            by_reference=archive_by_reference,
        )
    except (BackupError, ArchiveError, OSError, redis.RedisError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()
    click.echo("\n".join(summary(manifest)))
    click.echo(f"{len(manifest.files)} files in {target}, listed with their sha256 in backup.json")


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data-dir", required=True, type=_DIR, help="The data directory of the (stopped) Redis to restore.")
@click.option("--archive-url", default=None, help="Where the archive goes (default: where it was when backed up).")
@click.option("--replace", is_flag=True, help="Move data in --data-dir aside (never deleted) instead of refusing.")
@click.option(
    "--check",
    is_flag=True,
    help="Then start a private redis-server on --data-dir and run verify on it (exit status as verify's).",
)
@public_key_option
def restore_command(
    source: Path, data_dir: Path, archive_url: str | None, replace: bool, check: bool, public_keys: tuple[str, ...]
) -> None:
    """Restore the backup in SOURCE into a stopped Redis's data directory (and its archive).
    Every file is checked against backup.json first: a mismatch is refused, nothing written.
    The restored log ends at the backup's head; later events are not in it."""
    try:
        restored = restore(source, data_dir, archive_url=archive_url, replace=replace)
    except (BackupError, ArchiveError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo("\n".join(summary(restored.manifest)))
    if restored.moved_aside is not None:
        click.echo(f"the data that was in {data_dir} is now in {restored.moved_aside}")
    for shard, url in restored.archive_urls.items():
        click.echo(f"archive of shard {shard} at {url}")
    click.echo(f"restored into {restored.data_dir} (dump.rdb and the AOF): start Redis there")
    if check:
        sys.exit(_check(restored, public_keys))


def _check(restored: Restored, public_keys: tuple[str, ...]) -> int:
    """verify on the restored data, in a private redis-server started on it."""
    from events.embedded import EmbeddedRedis

    server = EmbeddedRedis(restored.data_dir).start()
    client = redis.Redis.from_url(server.url)
    try:
        ring = KeyRing.from_settings(Settings.from_env(), public_keys)
        shards = [ShardKeys(s.shard, restored.manifest.key_prefix) for s in restored.manifest.shards]
        report = verify(client, shards, ring)
    except (CannotVerify, ValueError, OSError) as error:
        click.echo(f"cannot verify: {error}", err=True)
        return CANNOT_VERIFY
    finally:
        client.close()
        server.stop()
    click.echo(render(report))
    return INTACT if report.ok else TAMPERED
