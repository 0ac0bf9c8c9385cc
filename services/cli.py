"""The ``outcomes`` command line: run the service and workers, operate tenants and views."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import redis

from events.durability import WeakDurability, check_durability
from services.config import Settings
from services.permissions import Role


def _settings() -> Settings:
    return Settings.from_env()


def _check_durability(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
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
def worker() -> None:
    """Run the projection worker (a FastStream app on the log's consumer group)."""
    from workers.app import run

    settings = _settings()
    _check_durability(settings)
    run(settings)


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
def dlq() -> None:
    """The dead-letter stream: log entries a worker gave up on (REDIS_SHARD picks the shard)."""


@dlq.command("list")
def dlq_list() -> None:
    """One line per dead letter: id, worker, log position, event type, attempts, reason."""
    from workers.actions import dead_letters

    for letter in dead_letters(_settings()):
        click.echo(f"{letter.id}\t{letter.worker}\t{letter.nid}\t{letter.type}\t{letter.attempts}\t{letter.reason}")


@dlq.command("show")
@click.argument("entry_id")
def dlq_show(entry_id: str) -> None:
    """One dead letter as JSON."""
    import msgspec

    from workers.actions import dead_letters

    found = [letter for letter in dead_letters(_settings()) if letter.id == entry_id]
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
    """Drop every read model of a shard and rebuild it from the log."""
    from projections.base import catch_up_together
    from workers.projections import ProjectionRunner

    settings = _settings()
    if shard:
        settings = Settings(settings.redis_url, shard, settings.key_prefix, settings.allow_weak_durability)
    runner = ProjectionRunner(settings)
    for view in runner.views:
        view.drop()
    started = time.monotonic()
    head = int(runner.client.hget(runner.keys.head, "n") or 0)  # type: ignore[arg-type]
    # as the worker does it: each batch of the log read and decoded once for every view
    count = catch_up_together(runner.views, head)
    for view in runner.views:
        click.echo(f"{view.name}: rebuilt to position {view.position()}")
    click.echo(f"{count} events in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
