"""Start-up check that Redis acknowledges a write only once it is on disk.

An acknowledged save must survive a crash of the Redis host, which needs the append-only
file with an fsync before every reply: ``appendonly yes`` and ``appendfsync always``.
:func:`check_durability` reads the *effective* settings with ``CONFIG GET`` and refuses
anything weaker, unless weak durability is allowed explicitly (development machines,
benchmarks): ``allow_weak=True``, e.g. from ``OUTCOMES_ALLOW_WEAK_DURABILITY=1`` via
:func:`allow_weak_from_env`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from events.connect import server_clients

__all__ = [
    "ALLOW_WEAK_ENV",
    "DurabilityReport",
    "DurabilityUnknown",
    "WeakDurability",
    "allow_weak_from_env",
    "check_durability",
]

ALLOW_WEAK_ENV = "OUTCOMES_ALLOW_WEAK_DURABILITY"
REQUIRED = {"appendonly": "yes", "appendfsync": "always"}

logger = logging.getLogger(__name__)


class WeakDurability(RuntimeError):
    """Redis may acknowledge a write that a crash then loses."""


class DurabilityUnknown(WeakDurability):
    """The settings cannot be read (CONFIG disabled or renamed, e.g. on managed Redis)."""


@dataclass(frozen=True)
class DurabilityReport:
    """The effective settings; ``None`` where they could not be read."""

    appendonly: str | None
    appendfsync: str | None
    #: what falls short of ``appendonly yes`` + ``appendfsync always`` (empty when durable)
    problems: tuple[str, ...]

    @property
    def weak(self) -> bool:
        return bool(self.problems)


def allow_weak_from_env(env: Mapping[str, str] | None = None) -> bool:
    """True when ``OUTCOMES_ALLOW_WEAK_DURABILITY`` is set to 1/true/yes/on."""
    value = (os.environ if env is None else env).get(ALLOW_WEAK_ENV, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _config_get(client: redis.Redis, name: str) -> str | None:
    reply = client.config_get(name)
    for key, value in reply.items():
        if _text(key).lower() == name:
            return _text(value).lower()
    return None


def _setting(client: redis.Redis, name: str) -> str | None:
    """The setting on every server (each master of a cluster): "a/b" when they differ."""
    values = sorted({_config_get(server, name) or "" for server in server_clients(client)})
    return "/".join(values) or None


def check_durability(client: redis.Redis, *, allow_weak: bool = False) -> DurabilityReport:
    """Read ``appendonly`` and ``appendfsync`` from the server and judge them.

    Raises :class:`WeakDurability` if they are weaker than required, or
    :class:`DurabilityUnknown` if ``CONFIG GET`` is refused -- unless ``allow_weak``,
    in which case the report comes back with ``weak`` set and a warning is logged.
    Connection errors propagate unchanged.
    """
    override = f"set {ALLOW_WEAK_ENV}=1 to run anyway with weak durability"
    try:
        found = {name: _setting(client, name) for name in REQUIRED}
    except redis.ResponseError as error:  # unknown command (renamed/disabled), NOPERM (ACL)
        report = DurabilityReport(None, None, (f"CONFIG GET refused: {error}",))
        message = (
            f"cannot read the Redis durability settings ({error}); required: appendonly yes and "
            f"appendfsync always. Configure the server so, and allow CONFIG GET, or {override}"
        )
        if not allow_weak:
            raise DurabilityUnknown(message) from error
        logger.warning("%s", message)
        return report
    problems = tuple(
        f"{name} is {found[name] or 'not reported'!r}, required {required!r}"
        for name, required in REQUIRED.items()
        if found[name] != required
    )
    report = DurabilityReport(found["appendonly"], found["appendfsync"], problems)
    if problems:
        message = f"Redis may lose acknowledged writes: {'; '.join(problems)}. Configure the server so, or {override}"
        if not allow_weak:
            raise WeakDurability(message)
        logger.warning("%s", message)
    return report
