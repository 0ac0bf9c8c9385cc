"""``outcomes verify`` and ``outcomes checkpoint``: tamper evidence from the command line
(docs/audit.md). Registered on the ``outcomes`` group by ``services/cli.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec

from events.connect import redis_client
from events.keys import ShardKeys
from services.checkpoints import ChainBroken, Checkpointer, KeyRing, generate_key
from services.config import Settings
from services.verify import CannotVerify, render, shards_of, verify

#: exit status of ``outcomes verify``: intact (an unverified tail included), tampering found,
#: verification impossible as asked (no key for the stored checkpoints, unreadable key)
INTACT, TAMPERED, CANNOT_VERIFY = 0, 1, 2


#: ``--public-key`` of the commands that verify (here and ``outcomes restore --check``)
public_key_option = click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A checkpoint public key (PEM; repeatable), besides OUTCOMES_CHECKPOINT_PUBLIC_KEYS.",
)


@click.command("verify")
@click.option("--shard", "shards", multiple=True, help="Shard to verify (repeatable; default: every shard).")
@public_key_option
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000), help="XRANGE COUNT.")
def verify_command(shards: tuple[str, ...], public_keys: tuple[str, ...], as_json: bool, batch: int) -> None:
    """Walk every shard's log, hash chains, indexes and signed checkpoints; name the first
    edited, removed, reordered or cut-off event. Exit 0 intact, 1 tampered, 2 cannot verify."""
    settings = Settings.from_env()
    client = redis_client(settings.redis_url)
    try:
        ring = KeyRing.from_settings(settings, public_keys)
        names = list(shards) or shards_of(client, settings.key_prefix, settings.shard)
        report = verify(client, [ShardKeys(name, settings.key_prefix) for name in names], ring, batch)
    except (CannotVerify, ValueError, OSError) as error:
        click.echo(f"cannot verify: {error}", err=True)
        sys.exit(CANNOT_VERIFY)
    finally:
        client.close()
    click.echo(msgspec.json.encode(report).decode() if as_json else render(report))
    sys.exit(INTACT if report.ok else TAMPERED)


@click.group("checkpoint")
def checkpoint() -> None:
    """Signed checkpoints of the log chain (the worker writes them at the configured interval)."""


@checkpoint.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def checkpoint_keygen(path: Path) -> None:
    """Create an Ed25519 signing key at PATH (mode 0600) and its public key at PATH.pub."""
    try:
        key_id = generate_key(path)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; a key is never overwritten") from None
    click.echo(f"key {key_id}: private {path}, public {path}.pub")


@checkpoint.command("write")
@click.option("--shard", default=None, help="Shard (default: REDIS_SHARD or s00).")
def checkpoint_write(shard: str | None) -> None:
    """Sign the log now, up to its newest event (and at every interval on the way)."""
    settings = Settings.from_env()
    if not settings.checkpoint_key:
        raise click.ClickException("OUTCOMES_CHECKPOINT_KEY (the signing key's file) is not set")
    client = redis_client(settings.redis_url)
    try:
        checkpointer = Checkpointer.for_settings(settings, client, shard)
        assert checkpointer is not None  # the key is set
        written = checkpointer.run_once(force=True)
    except (ChainBroken, ValueError, OSError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()
    for c in written:
        click.echo(f"checkpoint {c.shard} position {c.position} chain {c.chain} count {c.count} key {c.key_id}")
    if not written:
        click.echo("nothing new to sign")
