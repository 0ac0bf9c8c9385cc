"""Several worker processes share the action followers (issue 4, "several worker processes
share the load"): each follower runs in one process at a time, the holder of its lease. A
partitioned follower's units (``<follower>#<p>``, workers/partitions.py) are leased one by
one, like followers.

- ``outcomes worker --processes N`` starts N processes; process *i* is the **home** of the
  followers whose index in ``actions.followers`` is *i* modulo N and takes their leases at
  once. So the followers are spread over the processes, each doing its own share.
- A lease lives ``idle_ms`` (``OUTCOMES_RECLAIM_IDLE_MS``) and its holder renews it
  several times within that (``Leases.refresh``, a heartbeat apart from the followers'
  loops, so a long batch does not lose it). A process killed stops renewing: after the idle
  time any other process takes its followers over, from their tracking positions.
- A process back up asks for its own followers back (the "wanted" key); the process that
  stood in gives them back at its next renewal.

A lease only decides who works; "once" never rests on it. Two processes running the same
follower (a holder stalled past its idle time while another took over) race to the same
tracking positions, and the second write fails whole (workers/actions.py).
"""

from __future__ import annotations

import threading
import time

import redis

from events.keys import ShardKeys
from events.store import register_lua


def is_home(index: int, process: int, processes: int) -> bool:
    """Whether the follower at ``index`` belongs to ``process`` of ``processes``."""
    return index % processes == process


class Leases:
    """This process's leases on the shard's action followers."""

    def __init__(
        self,
        client: redis.Redis,
        keys: ShardKeys,
        owner: str,
        names: list[str],
        *,
        idle_ms: int,
        process: int = 0,
        processes: int = 1,
    ) -> None:
        self.client = client
        self.keys = keys
        self.owner = owner
        self.idle_ms = idle_ms
        self.home = {name: is_home(i, process, processes) for i, name in enumerate(names)}
        # before taking another's followers, give their home processes time to start
        self._stand_in_from = time.monotonic() + idle_ms / 1000
        self._held: set[str] = set()
        #: until when (monotonic) the last refresh's leases surely last: a stalled heartbeat
        #: must not let a follower work on past its lease, while another process has taken over
        self._held_until = 0.0
        self._lock = threading.Lock()
        self._lease = register_lua(client, "workers", "lease.lua")

    def holds(self, name: str) -> bool:
        return name in self.held()

    def held(self) -> set[str]:
        """What the last refresh took, while its leases surely last."""
        with self._lock:
            return set(self._held) if time.monotonic() < self._held_until else set()

    def refresh(self) -> set[str]:
        """Take, keep or give back each lease; the followers this process runs now."""
        started = time.monotonic()
        may_stand_in = "1" if started >= self._stand_in_from else "0"
        held = set()
        for name, home in self.home.items():
            keys = [self.keys.lease(name), self.keys.lease_wanted(name)]
            args = [self.owner, str(self.idle_ms), "1" if home else "0", may_stand_in]
            if self._lease(keys=keys, args=args):
                held.add(name)
        with self._lock:
            self._held = held
            # each lease was set to last idle_ms from a moment after ``started``
            self._held_until = started + self.idle_ms / 1000
        return held

    def forget(self) -> None:
        """Run nothing until the next refresh says what is held (Redis could not be asked)."""
        with self._lock:
            self._held = set()

    def release(self) -> None:
        """Let every lease go (a clean stop): another process may take them at once."""
        self.forget()
        for name in self.home:
            self._lease(keys=[self.keys.lease(name), self.keys.lease_wanted(name)], args=[self.owner, "0", "0", "0"])

    def holders(self) -> dict[str, str]:
        """Follower -> the process holding its lease now (for operators and tests)."""
        found = {name: self.client.get(self.keys.lease(name)) for name in self.home}
        return {name: bytes(owner).decode() for name, owner in found.items() if owner is not None}  # type: ignore[arg-type]
