"""One action follower's work split across processes (``OUTCOMES_ACTION_PARTITIONS``).

A partitioned follower runs as P **units**, ``<follower>#<p>``: each reads the whole log
from its own tracking position, acts only on the entries whose aggregate (the entry's
``o``) hashes to *p*, and moves its position past the others -- so each entry is acted on
by exactly one unit, and what one aggregate asks for stays in log order (a correction
after its selection). Each unit has its own lease (workers/leases.py), so the units of one
follower are spread over the worker processes. With P = 1 the follower keeps its own name.

The number of partitions is fixed configuration: a unit's position says which of *its*
entries are done, so a new split cannot start while the old units' positions differ.
``adopt`` changes it only on a drained log (every unit at the same position; the log idle),
starting the new units there and sealing the old ones' positions far ahead, so a process
still running the old layout writes nothing more (what it had in flight outside -- an SMS --
may go again with its idempotency key, as after a kill). Otherwise it refuses, and the
follower does not run (docs/actions.md "Partitions").
"""

from __future__ import annotations

import zlib
from typing import cast

import redis

from events.keys import ShardKeys
from events.store import lua_source

#: where an old layout's positions are moved on a change: past any log position
SEALED = 2**53 - 1


def unit_name(follower: str, partition: int, partitions: int) -> str:
    """The name of a unit's tracking position and lease."""
    return follower if partitions == 1 else f"{follower}#{partition}"


def follower_of(unit: str) -> str:
    """The follower a unit belongs to."""
    return unit.split("#", 1)[0]


def partition_of(key: bytes, partitions: int) -> int:
    """The partition of an aggregate: a stable hash (not Python's, which differs per process)."""
    return zlib.crc32(key) % partitions


class LayoutChanged(RuntimeError):
    """The follower's positions are kept in another number of partitions, not drained."""


def adopt(client: redis.Redis, keys: ShardKeys, follower: str, partitions: int) -> None:
    """Make ``partitions`` the follower's layout, or raise LayoutChanged (see the module)."""
    if partitions < 1:
        raise ValueError(f"OUTCOMES_ACTION_PARTITIONS must be at least 1, not {partitions}")
    script = lua_source("workers", "partitions.lua")
    args = (keys.tracking, keys.action_partitions, follower, partitions, SEALED)
    done, *positions = cast(list[int], client.eval(script, 2, *args))
    if not done:
        raise LayoutChanged(
            f"{follower}: its positions are kept in {len(positions)} partitions at {positions}, not one position;"
            f" run it with OUTCOMES_ACTION_PARTITIONS={len(positions)} until the log is drained, then change it"
        )
