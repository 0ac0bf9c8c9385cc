"""The projection subscriber: on the shard log's "projections" consumer group.

The group only delivers: each batch says "the log has grown to here", and every view
catches up from its own tracking position to that point, committing view and position
in one script (projections.base.View). The batch is acknowledged after that commit.
Entries left pending by a dead consumer are reclaimed after ``reclaim_idle_ms`` and
settled the same way, so killing the worker at any instant loses and doubles nothing.
Far behind the log (``BULK_FROM``), the views catch up as a replay builds them first
(``ProjectionRunner.catch_up_bulk``, docs/replay.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

import redis
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub

from events.codec import StructMapper, SubjectKeys
from events.connect import redis_client
from events.keys import ShardKeys
from projections.base import catch_up_together, tracking_positions
from projections.interactions import InteractionsView
from projections.models import read_models
from projections.outcome_counts import NAME as OUTCOME_COUNTS
from projections.outcome_mix import OutcomeMixView
from projections.replay import REPLAY_MEMORY_CAP
from services.config import Settings
from services.runtime import Runtime
from workers.alerts import AlertWatch
from workers.quotas import QuotaWatcher

GROUP = "projections"
#: events behind the log's head from which the views catch up as a replay builds them
#: (``ProjectionRunner.catch_up_bulk``): a worker started on a long log, or after an outage
BULK_FROM = 100_000
#: how long a delivery waits for more of the log before the views settle: under a steady
#: trickle each small delivery would otherwise cost a full pass over every view
#: (``OUTCOMES_PROJECTION_LINGER_MS``; reports lag the log by up to this much more)
LINGER_SECONDS = int(os.environ.get("OUTCOMES_PROJECTION_LINGER_MS", "300")) / 1000
log = logging.getLogger("outcomes.projections")


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create the group at position 0 (FastStream would start at "$" and skip history)."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def notification_ids(message_ids: list[bytes]) -> list[int]:
    return [int(i.split(b"-")[0]) for i in message_ids]


async def _ids_only(msg: Mapping[str, Any], original: Any) -> Any:
    # Log entries carry binary event state, which FastStream's parser cannot take;
    # the views read the entries from the log themselves, so pass on the ids only.
    return await original({**msg, "data": [{} for _ in msg["data"]]})


async def _decode_ids(msg: Any, original: Any) -> list[int]:
    return notification_ids(msg.raw_message["message_ids"])


class ProjectionRunner:
    """The views of one shard and how to settle deliveries against them."""

    def __init__(self, settings: Settings) -> None:
        self.keys = ShardKeys(settings.shard, settings.key_prefix)
        self.client = redis_client(settings.redis_url)
        mapper = StructMapper(keys=SubjectKeys(self.client, settings.key_prefix))
        self.runtime = Runtime(settings)
        self.views = read_models(self.client, self.keys, mapper)
        mix = next(v for v in self.views if isinstance(v, OutcomeMixView))
        # last: it reads the outcome mix, and records alerts (docs/reports.md "Alerts");
        # not a read model (nothing to rebuild: it records alerts), but it follows the log too
        self.alert_watch = AlertWatch(self.runtime, self.keys, mapper, mix)
        self.quotas = QuotaWatcher(self.runtime, self.keys)
        # deliveries, the reclaimer and the start-up sweep settle from different threads; the
        # views keep state in memory between their own commits (projections/outcome_mix.py,
        # interactions.py), which one thread at a time may fold into
        self._settling = threading.Lock()
        self._settled_at = 0.0

    def settle(self, up_to: int) -> None:
        with self._settling:
            views = [*self.views, self.alert_watch]
            if up_to - min(tracking_positions(views)) >= BULK_FROM:  # one round trip: this runs per delivery
                self.catch_up_bulk(up_to)
            # each batch of the log read and decoded once for every view
            catch_up_together(views, up_to, observe={OUTCOME_COUNTS: self.quotas.observe})
            self.quotas.flush()
            self.alert_watch.check_pending()  # the weeks the batches marked, against the caught-up mix

    def catch_up_bulk(self, up_to: int) -> None:
        """Far behind: catch up as ``outcomes replay`` builds views (``catch_up_together(
        pipelined=True)``, ~3x the plain loop's rate at 1M events), each stateful view keeping
        up to a replay's ``REPLAY_MEMORY_CAP`` entries (its own, smaller cap applies again
        from its next batch); then check every project's quotas once (the plain loop checks
        those its batches touched)."""
        views = [*self.views, self.alert_watch]
        stateful = [v for v in views if isinstance(v, OutcomeMixView | InteractionsView)]
        caps = [v.memory_cap for v in stateful]
        for v in stateful:
            v.memory_cap = REPLAY_MEMORY_CAP
        try:
            catch_up_together(views, up_to, pipelined=True)
        finally:
            for v, cap in zip(stateful, caps, strict=True):
                v.memory_cap = cap
        self.quotas.sweep()

    def settle_delivery(self, ids: list[int]) -> None:
        """A delivery says the log has grown: after the linger (counted from the last
        settle), settle to the head as it is then -- later deliveries of what that covered
        find the views past them and cost one read of the positions."""
        wait = self._settled_at + LINGER_SECONDS - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.settle(max(*ids, self.head()))
        self._settled_at = time.monotonic()

    def head(self) -> int:
        """The log's last position (0 when empty)."""
        return int(cast(bytes, self.client.hget(self.keys.head, "n") or b"0"))

    def reclaim(self, consumer: str, min_idle_ms: int) -> int:
        """Take over entries pending too long elsewhere, settle them, acknowledge them."""
        total = 0
        start = "0-0"
        while True:
            reply: list[Any] = self.client.xautoclaim(
                self.keys.log,
                GROUP,
                consumer,
                min_idle_ms,
                start_id=start,
                count=1000,
            )
            # (JUSTID would skip loading the entries, but redis-py then drops the cursor)
            next_start, ids = reply[0], [entry_id for entry_id, _fields in reply[1]]
            if ids:
                self.settle(max(notification_ids(ids)))
                self.client.xack(self.keys.log, GROUP, *ids)
                total += len(ids)
            if next_start in (b"0-0", "0-0"):
                return total
            start = next_start


def register(
    broker: RedisBroker, app: FastStream, settings: Settings, consumer: str, reclaim_idle_ms: int = 30_000
) -> ProjectionRunner:
    """The projection subscriber and its reclaimer, on a worker app."""
    runner = ProjectionRunner(settings)

    @broker.subscriber(
        stream=StreamSub(
            runner.keys.log, group=GROUP, consumer=consumer, batch=True, max_records=1000, polling_interval=200
        ),
        parser=_ids_only,
        decoder=_decode_ids,
        ack_policy=AckPolicy.REJECT_ON_ERROR,  # a failed batch stays pending: reclaimed later
    )
    def on_log_grown(ids: list[int]) -> None:
        runner.settle_delivery(ids)

    async def reclaim_forever() -> None:
        while True:
            try:
                await asyncio.to_thread(runner.reclaim, consumer, reclaim_idle_ms)
            except Exception:  # keep reclaiming; the log stays the truth
                log.exception("reclaim failed")
            await asyncio.sleep(max(reclaim_idle_ms / 4000, 0.2))

    @app.on_startup
    async def create_group() -> None:
        ensure_group(runner.client, runner.keys.log, GROUP)

    @app.after_startup
    async def sweep_quotas() -> None:
        await asyncio.to_thread(lambda: runner.settle(runner.head()))
        await asyncio.to_thread(runner.quotas.sweep)

    background(app, reclaim_forever)
    return runner


def background(app: FastStream, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``loop`` as a task for the app's lifetime."""
    tasks: list[asyncio.Task[None]] = []

    @app.after_startup
    async def start() -> None:
        tasks.append(asyncio.create_task(loop()))

    @app.on_shutdown
    async def stop() -> None:
        for task in tasks:
            task.cancel()
