"""``outcomes as-of`` and ``outcomes what-if``: looking back, reading only (services/as_of.py,
services/what_if.py). Each prints the JSON the HTTP API answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
import msgspec

from services.config import Settings
from services.errors import DomainError
from services.runtime import Runtime


@contextmanager
def _runtime() -> Iterator[Runtime]:
    runtime = Runtime(Settings.from_env())
    try:
        yield runtime
    except DomainError as error:
        raise click.ClickException(str(error)) from None
    finally:
        runtime.close()


def _print(value: Any) -> None:
    click.echo(msgspec.json.encode(value).decode())


def _moment(at: datetime | None, position: int | None) -> Any:
    from services.as_of import Moment

    return Moment(at=at, position=position).check()


_AT = click.option(
    "--at",
    type=str,
    default=None,
    help="Events recorded at or before this time (ISO 8601 with a time zone).",
)
_POSITION = click.option(
    "--position", type=click.IntRange(min=1), default=None, help="Events at or before this log position."
)


def _parse_at(at: str | None) -> datetime | None:
    if at is None:
        return None
    try:
        return datetime.fromisoformat(at)
    except ValueError:
        raise click.BadParameter(f"{at!r} is not an ISO 8601 time", param_hint="--at") from None


@click.group("as-of")
def as_of() -> None:
    """State as of a past moment: a project's outcome set, a call, a conversation."""


def _as_of_command(name: str, argument: str, what: str, read: Callable[[Any, str, str, Any], Any]) -> None:
    @as_of.command(name, help=f"{what} as it was at a past moment (--at and/or --position).")
    @click.argument("tenant_id")
    @click.argument(argument)
    @_AT
    @_POSITION
    def show(tenant_id: str, at: str | None, position: int | None, **ids: str) -> None:
        with _runtime() as runtime:
            moment = _moment(_parse_at(at), position)
            _print(read(runtime.ledger(tenant_id), tenant_id, ids[argument], moment))


def _as_of_commands() -> None:
    from services import as_of as read

    _as_of_command(
        "outcome-set", "project_id", "The project's outcome set (the agent's picker)", read.outcome_set_as_of
    )
    _as_of_command("call", "call_id", "The call (facts, outcome, corrections)", read.call_as_of)
    _as_of_command("conversation", "conversation_id", "The conversation", read.conversation_as_of)


_as_of_commands()


@click.command("what-if")
@click.argument("tenant_id")
@click.argument("proposal", type=click.File("rb"))
def what_if(tenant_id: str, proposal: Any) -> None:
    """Try a proposed outcome-definition change on the last N days, writing nothing.

    PROPOSAL is a JSON file ('-': standard input) with the body of POST /v1/what-if, e.g.
    {"days": 30, "changes": [{"op": "change_outcome", "definition": {"code": "SALE", ...}}]}.
    """
    from events.codec import now
    from services.rules import Context
    from services.what_if import WhatIfBody
    from services.what_if import what_if as try_it

    try:
        body = msgspec.json.decode(proposal.read(), type=WhatIfBody)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise click.ClickException(f"the proposal is not valid: {error}") from None
    with _runtime() as runtime:
        ctx = Context(tenant_id, "operator:cli", now())
        _print(try_it(runtime.ledger(tenant_id), runtime.client, runtime.view_keys(tenant_id), ctx, body))
