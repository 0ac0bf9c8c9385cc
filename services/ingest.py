"""The ingest stream: platforms publish the same facts and selections as over HTTP.

An entry's fields: ``type`` (a command of ``services.commands``, e.g. ``call.outcome``),
``body`` (its JSON body, as over HTTP), ``target`` (the call, conversation or contact id,
for commands that act on one), optional ``key`` (idempotency key; default: the entry id)
and ``acting_for`` (``agent:<id>``, ``supervisor:<id>`` or ``system``, the default).
The tenant is the stream's: entries act with the platform role. An entry that cannot be
carried out goes to the tenant's rejections stream with the reason, keyed to the entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from events.codec import now
from services.commands import COMMANDS
from services.errors import DomainError
from services.idempotency import Idempotency, Receipt
from services.ledger import Ledger
from services.permissions import Role, may
from services.rules import Context

MAX_ENTRY_BYTES = 256 * 1024
_ACTOR = re.compile(r"^(system|agent:[A-Za-z0-9._:-]{1,128}|supervisor:[A-Za-z0-9._:-]{1,128})$")


@dataclass(frozen=True)
class Rejection:
    status: int
    error: str
    message: str

    def fields(self, entry_id: str, entry_type: str) -> list[str]:
        return [
            "input",
            entry_id,
            "type",
            entry_type,
            "status",
            str(self.status),
            "error",
            self.error,
            "message",
            self.message,
        ]


def _text(fields: dict[bytes, bytes], name: str) -> str | None:
    value = fields.get(name.encode())
    return value.decode("utf-8", errors="replace") if value is not None else None


def handle(ledger: Ledger, tenant_id: str, entry_id: str, fields: dict[bytes, bytes]) -> Receipt | Rejection:
    """Carry out one ingest entry, or say why not (nothing written then)."""
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size > MAX_ENTRY_BYTES:
        return Rejection(413, "payload_too_large", f"entry of {size} bytes is over the 256 KiB limit")
    entry_type = _text(fields, "type") or ""
    command = COMMANDS.get(entry_type)
    if command is None:
        known = ", ".join(sorted(COMMANDS))
        return Rejection(400, "unknown_type", f"unknown entry type {entry_type!r}; known types: {known}")
    actor = _text(fields, "acting_for") or "system"
    if not _ACTOR.match(actor):
        return Rejection(400, "invalid_request", "acting_for must be 'agent:<id>', 'supervisor:<id>' or 'system'")
    if not may(Role.PLATFORM, command.action) or (
        entry_type.endswith(".correction") and not actor.startswith("supervisor:")
    ):
        return Rejection(403, "forbidden", f"{entry_type} needs acting_for a supervisor")
    target = _text(fields, "target") or ""
    if command.target is not None and not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", target):
        return Rejection(400, "invalid_request", f"{entry_type} needs a 'target' field: the {command.target}")
    raw = fields.get(b"body")
    if raw is None:
        return Rejection(400, "invalid_request", "the entry has no 'body' field")
    try:
        body = msgspec.json.decode(raw, type=command.body)
    except msgspec.DecodeError as error:
        return Rejection(400, "invalid_request", f"body: {error}")
    key_text = _text(fields, "key") or f"ingest:{entry_id}"
    key = Idempotency.of(key_text, entry_type.encode(), target.encode(), raw)
    try:
        return command.run(ledger, Context(tenant_id, actor, now(), "ingest"), target, body, key)
    except DomainError as error:
        return Rejection(error.status, error.code, error.message)
