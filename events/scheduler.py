"""The durable scheduler: one sorted set of due times per shard, for every delayed thing.

Timers are written by the same script as the events that set them (``timers=`` on a
save), so a timer exists exactly when its event does. A worker claims due timers with
a lease (``claim``); a timer whose worker dies before ``complete`` is due again when the
lease runs out. Firing must therefore be idempotent -- the commands timers run are.
Business time never sleeps in a process: it waits here, in Redis.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import cast

import msgspec
import redis

from events.keys import ShardKeys
from events.store import register_lua


class Timer(msgspec.Struct, frozen=True, array_like=True):
    """What to do when: ``kind`` names the action, ``target`` what it acts on."""

    kind: str
    tenant_id: str
    target: str
    due_ms: int
    detail: str = ""

    @staticmethod
    def at(kind: str, tenant_id: str, target: str, due: datetime, detail: str = "") -> Timer:
        return Timer(kind, tenant_id, target, int(due.timestamp() * 1000), detail)

    def member(self) -> str:
        return msgspec.json.encode(self).decode()

    @property
    def key(self) -> str:
        """Stable identity of this timer (used as the idempotency key of its firing)."""
        return f"timer:{self.kind}:{self.target}:{self.due_ms}"


def decode_timer(member: bytes | str) -> Timer:
    return msgspec.json.decode(member, type=Timer)


class Scheduler:
    def __init__(self, client: redis.Redis, keys: ShardKeys, lease_ms: int = 30_000) -> None:
        self.client = client
        self.keys = keys
        self.leased = keys.timers + ":leased"
        self.lease_ms = lease_ms
        self._claim = register_lua(client, "events", "claim_timers.lua")

    def claim(self, now_ms: int | None = None, count: int = 100) -> list[Timer]:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        members = cast(
            list[bytes], self._claim(keys=[self.keys.timers, self.leased], args=[now_ms, self.lease_ms, count])
        )
        return [decode_timer(m) for m in members]

    def complete(self, timer: Timer) -> None:
        self.client.zrem(self.leased, timer.member())

    def pending(self) -> int:
        return int(self.client.zcard(self.keys.timers)) + int(self.client.zcard(self.leased))
