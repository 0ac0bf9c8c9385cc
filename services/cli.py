"""The ``outcomes`` command line: run the service and workers, operate tenants and views."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from events.connect import redis_client
from events.durability import WeakDurability, check_durability
from services.audit_cli import checkpoint, verify_command
from services.backup_cli import backup_command, restore_command
from services.config import Settings
from services.permissions import Role

if TYPE_CHECKING:
    from services.export import ExportedEvent, Exporter
    from workers.actions import DeadLetter


def _settings() -> Settings:
    return Settings.from_env()


def _check_durability(settings: Settings) -> None:
    client = redis_client(settings.redis_url)
    try:
        report = check_durability(client, allow_weak=settings.allow_weak_durability)
    except WeakDurability as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()
    if report.weak:
        click.echo(f"WARNING: weak durability allowed by OUTCOMES_ALLOW_WEAK_DURABILITY: {report}", err=True)


@click.group()
def main() -> None:
    """Outcome Ledger: the event-sourced system of record for contact-centre outcomes."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="API processes (stateless; share the port)")
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.option(
    "--app",
    "app",
    default="services.api.app:create_app",
    hidden=True,
    help="The ASGI app factory to serve (the HTTP benchmark serves its baseline this way).",
)
def api(host: str, port: int, workers: int, access_log: bool, app: str) -> None:
    """Serve the HTTP API (REDIS_URL must point at Redis)."""
    from services.serve import serve

    settings = _settings()
    _check_durability(settings)
    serve(app, host=host, port=port, workers=workers, access_log=access_log)


@main.command()
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=int,
    help="Worker processes sharing the work (restarted if they die).",
)
@click.option(
    "--role",
    type=click.Choice(["all", "actions", "projections"]),
    default="all",
    show_default=True,
    help="'actions': the follow-up action followers only; 'projections': projections, timers and ingest only.",
)
@click.option("--process", "process", default=0, show_default=True, type=int, help="This process's index of --of.")
@click.option(
    "--of",
    "of",
    default=1,
    show_default=True,
    type=int,
    help="Processes started apart (e.g. on other hosts) sharing the work.",
)
def worker(processes: int, role: Literal["all", "actions", "projections"], process: int, of: int) -> None:
    """Run the workers: projections on the log's consumer group, timers, ingest and the
    follow-up action followers (docs/actions.md)."""
    from workers.app import run, run_processes

    settings = _settings()
    _check_durability(settings)
    if processes > 1:
        run_processes(role, processes)
    else:
        run(settings, role=role, process=process, processes=of)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--data-dir",
    default="var",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the private redis-server keeps its data when REDIS_URL is unset.",
)
@click.option("--redis-port", default=6380, show_default=True, type=int)
def run(host: str, port: int, data_dir: Path, redis_port: int) -> None:
    """Run everything: (a private Redis if REDIS_URL is unset,) the API and the workers.

    One process tree; Ctrl-C stops it cleanly.
    """
    from events.embedded import EmbeddedRedis

    env = dict(os.environ)
    server: EmbeddedRedis | None = None
    if not env.get("REDIS_URL"):
        server = EmbeddedRedis(data_dir / "redis", port=redis_port).start()
        env["REDIS_URL"] = server.url
        click.echo(
            f"private redis-server {server.version[0]}.{server.version[1]} on {server.url} "
            f"(data in {data_dir / 'redis'}, AOF appendfsync always)"
        )
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        me = [sys.executable, "-m", "services.cli"]
        children.append(subprocess.Popen([*me, "api", "--host", host, "--port", str(port)], env=env))
        children.append(subprocess.Popen([*me, "worker"], env=env))
        click.echo(f"API on http://{host}:{port} (OpenAPI: /schema), worker running. Ctrl-C stops.")
        while not stopping:
            if any(child.poll() is not None for child in children):
                click.echo("a child process exited; stopping", err=True)
                break
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if server is not None:
            server.stop()
        click.echo("stopped")


@main.group()
def tenant() -> None:
    """Tenants (accounts)."""


@tenant.command("create")
@click.argument("tenant_id")
@click.option("--name", default=None, help="Display name (default: the id).")
@click.option("--time-zone", default="UTC", show_default=True)
def tenant_create(tenant_id: str, name: str | None, time_zone: str) -> None:
    """Create a tenant and print its first admin API key (shown once)."""
    from services.errors import DomainError
    from services.registry import TenantExists
    from services.runtime import Runtime

    runtime = Runtime(_settings())
    try:
        _record, secret = runtime.create_tenant(tenant_id, name or tenant_id, time_zone)
    except (TenantExists, ValueError, DomainError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        runtime.close()
    click.echo(secret)


@tenant.command("ingest-user")
@click.argument("tenant_id")
def tenant_ingest_user(tenant_id: str) -> None:
    """Create (or reset) the tenant's Redis ACL user for its ingest stream; print its URL."""
    from urllib.parse import urlsplit, urlunsplit

    from services.runtime import Runtime

    runtime = Runtime(_settings())
    try:
        username, password, keys = runtime.create_ingest_user(tenant_id)
    except Exception as error:
        raise click.ClickException(str(error)) from None
    finally:
        runtime.close()
    url = urlsplit(runtime.settings.redis_url)
    host = url.hostname or "localhost"
    netloc = f"{username}:{password}@{host}" + (f":{url.port}" if url.port else "")
    click.echo(f"REDIS_URL={urlunsplit((url.scheme, netloc, url.path, '', ''))}")
    click.echo(f"ingest stream: {keys.ingest}")
    click.echo(f"rejections stream: {keys.rejections}")


@main.group()
def contact() -> None:
    """Contacts' personal data."""


@contact.command("erase")
@click.argument("tenant_id")
@click.argument("contact_id")
def contact_erase(tenant_id: str, contact_id: str) -> None:
    """Erase a contact (docs/erasure.md): destroy its key, purge its data outside the log, keep
    its numbers suppressed as keyed hashes, record ContactErased once. Prints what it did (JSON)."""
    import msgspec

    from events.codec import now
    from services.erasure import erase_contact
    from services.errors import DomainError
    from services.rules import Context
    from services.runtime import Runtime

    runtime = Runtime(_settings())
    try:
        ctx = Context(tenant_id, "system", now())  # the operator at the console
        done = erase_contact(runtime.ledger(tenant_id), ctx, contact_id)
    except DomainError as error:
        raise click.ClickException(str(error)) from None
    finally:
        runtime.close()
    click.echo(msgspec.json.encode(done).decode())


@main.group()
def dlq() -> None:
    """The dead-letter stream: log entries a worker gave up on (REDIS_SHARD picks the shard)."""


def _dead_letters() -> list[DeadLetter]:
    from events.keys import ShardKeys
    from workers.actions import dead_letters

    settings = _settings()
    client = redis_client(settings.redis_url)
    try:
        return dead_letters(client, ShardKeys(settings.shard, settings.key_prefix))
    finally:
        client.close()


@dlq.command("list")
def dlq_list() -> None:
    """One line per dead letter: id, worker, log position, event type, attempts, reason."""
    for letter in _dead_letters():
        click.echo(f"{letter.id}\t{letter.worker}\t{letter.nid}\t{letter.type}\t{letter.attempts}\t{letter.reason}")


@dlq.command("show")
@click.argument("entry_id")
def dlq_show(entry_id: str) -> None:
    """One dead letter as JSON."""
    import msgspec

    found = [letter for letter in _dead_letters() if letter.id == entry_id]
    if not found:
        raise click.ClickException(f"no dead-letter entry {entry_id!r}")
    click.echo(msgspec.json.format(msgspec.json.encode(found[0]), indent=2))


@dlq.command("requeue")
@click.argument("entry_id")
def dlq_requeue(entry_id: str) -> None:
    """Run a dead-lettered entry again now (after fixing its cause); on success it leaves
    the dead-letter stream."""
    from services.sms_gateway import gateway_from_env
    from workers.actions import requeue

    try:
        letter = requeue(_settings(), gateway_from_env(), entry_id)
    except LookupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"requeued {letter.id}: {letter.worker} at log position {letter.nid} done")


@main.group()
def key() -> None:
    """API keys."""


@key.command("create")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
def key_create(tenant_id: str, role: str) -> None:
    """Issue an API key for a tenant and print it (shown once)."""
    from services.runtime import Runtime

    runtime = Runtime(_settings())
    try:
        runtime.shard_of(tenant_id)
        _record, secret = runtime.registry.issue_key(tenant_id, Role(role))
    except Exception as error:
        raise click.ClickException(str(error)) from None
    finally:
        runtime.close()
    click.echo(secret)


@main.command()
@click.option("--shard", default=None, help="Shard to rebuild (default: REDIS_SHARD or s00).")
def rebuild(shard: str | None) -> None:
    """Rebuild every read model of a shard from the log: ``outcomes replay`` of every view
    (fresh keys, switched over atomically once built)."""
    click.get_current_context().invoke(replay, shard=shard)  # the replay's defaults for the rest


@main.command()
@click.option("--view", "views", multiple=True, help="A view to rebuild (repeatable; default: every view).")
@click.option("--shard", default=None, help="Shard to replay (default: REDIS_SHARD or s00).")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--grace",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between the switch-over and removing the old keys (queries already reading them finish).",
)
@click.option(
    "--processes",
    default=None,
    type=click.IntRange(1),
    help="Processes building the views (default: one per core but one, for 200,000 events or more to read; else 1).",
)
@click.option(
    "--memory-cap",
    default=None,
    type=click.IntRange(0),
    help="Entries each stateful view keeps in memory while building, ~0.5-1 KB each "
    "(default: 1,000,000; past it, state is read back from Redis).",
)
def replay(
    views: tuple[str, ...],
    shard: str | None,
    batch_size: int,
    grace: float,
    processes: int | None,
    memory_cap: int | None,
) -> None:
    """Rebuild read models from the log into fresh keys and switch over atomically.

    Progress goes to stderr. Interrupted, it resumes from the fresh keys' own position when
    run again. The live worker may keep running.
    """
    from events.codec import StructMapper, SubjectKeys
    from events.keys import ShardKeys
    from projections.base import bulk_gc
    from projections.replay import REPLAY_MEMORY_CAP, ProgressReport, Replayer

    bulk_gc()
    settings = _settings()
    client = redis_client(settings.redis_url)
    keys = ShardKeys(shard or settings.shard, settings.key_prefix)
    mapper = StructMapper(keys=SubjectKeys(client, settings.key_prefix))
    replayer = Replayer(
        client,
        keys,
        mapper,
        batch_size=batch_size,
        memory_cap=REPLAY_MEMORY_CAP if memory_cap is None else memory_cap,
        grace=grace,
        report=ProgressReport(sys.stderr),
        processes=processes,
        redis_url=settings.redis_url,
    )
    try:
        done = replayer.replay(views)
    except (ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()
    for r in done:
        click.echo(f"{r.view}: generation {r.generation}, {r.events} events in {r.seconds:.1f}s, position {r.position}")


@main.group()
def export() -> None:
    """History as JSON lines on stdout (the schema: docs/audit.md)."""


def _export(tenant_id: str, read: Callable[[Exporter], Iterator[ExportedEvent]]) -> None:
    from services.errors import DomainError
    from services.export import Exporter, ndjson
    from services.runtime import Runtime

    runtime = Runtime(_settings())
    try:
        lines = read(Exporter(runtime.client, runtime.shard_keys(tenant_id), tenant_id))
        for chunk in ndjson(lines):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    except DomainError as error:
        raise click.ClickException(error.message) from None
    finally:
        runtime.close()


@export.command("log")
@click.argument("tenant_id")
@click.option("--after", default=0, show_default=True, type=click.IntRange(0), help="Resume after this log position.")
@click.option("--limit", default=None, type=click.IntRange(1), help="At most this many lines.")
def export_log(tenant_id: str, after: int, limit: int | None) -> None:
    """The tenant's whole log, in order."""
    _export(tenant_id, lambda exporter: exporter.log(after, limit))


@export.command("history")
@click.argument("tenant_id")
@click.argument("kind")
@click.argument("external_id", required=False, default=None)
@click.option("--after", default=0, show_default=True, type=click.IntRange(0), help="Resume after this version.")
@click.option("--limit", default=None, type=click.IntRange(1), help="At most this many lines.")
def export_history(tenant_id: str, kind: str, external_id: str | None, after: int, limit: int | None) -> None:
    """One aggregate's history: KIND (call, conversation, contact, catalogue, ...) and the
    platform's id (none for the catalogue)."""
    from services.export import AGGREGATE_KINDS, check_aggregate

    if kind not in AGGREGATE_KINDS:
        raise click.BadParameter(f"{kind!r}; one of {', '.join(AGGREGATE_KINDS)}", param_hint="KIND")
    _export(tenant_id, lambda exporter: exporter.history(kind, check_aggregate(kind, external_id), after, limit))


@main.command()
@click.option("--shard", default=None, help="Shard to archive (default: REDIS_SHARD or s00).")
@click.option("--hot-days", default=None, type=click.FloatRange(0), help="Keep events of the last N days in Redis.")
@click.option("--before-position", default=None, type=click.IntRange(1), help="Archive only positions before this one.")
@click.option("--url", default=None, help="Archive URL (default: OUTCOMES_ARCHIVE_URL or ./archive).")
@click.option("--segment-size", default=100_000, show_default=True, type=click.IntRange(1), help="Events per file.")
def archive(
    shard: str | None, hot_days: float | None, before_position: int | None, url: str | None, segment_size: int
) -> None:
    """Move sealed log segments older than the hot window from Redis to Parquet files
    (docs/archive.md). Rerun after a crash: it completes what was under way."""
    from events.archive import ArchiveError
    from events.keys import ShardKeys
    from services.archive import Archiver, describe

    if (hot_days is None) == (before_position is None):
        raise click.UsageError("give exactly one of --hot-days and --before-position")
    settings = _settings()
    client = redis_client(settings.redis_url)
    keys = ShardKeys(shard or settings.shard, settings.key_prefix)
    try:
        run = Archiver(client, keys, url or settings.archive_url, segment_size).run(before_position, hot_days)
    except ArchiveError as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()
    click.echo(describe(run))


# tamper evidence (docs/audit.md): its own module
main.add_command(verify_command)
main.add_command(checkpoint)
# backups (docs/backups.md)
main.add_command(backup_command)
main.add_command(restore_command)


def _look_back() -> None:
    from services.look_back_cli import as_of, what_if

    main.add_command(as_of)
    main.add_command(what_if)


_look_back()


if __name__ == "__main__":
    main()
