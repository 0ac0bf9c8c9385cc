"""``outcomes worker``: one FastStream app per shard hosting the projection subscriber,
the timer loop, the ingest loop and the follow-up actions."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import redis
from faststream import FastStream
from faststream.redis import RedisBroker

from services.checkpoints import ChainBroken, Checkpointer
from services.config import Settings
from services.sms_gateway import Gateway, gateway_from_env
from workers import actions, projections
from workers.ingest import IngestRunner
from workers.timers import TimerRunner

log = logging.getLogger("outcomes.worker")


def build_app(
    settings: Settings | None = None,
    *,
    consumer: str | None = None,
    reclaim_idle_ms: int = 30_000,
    timer_interval: float = 0.2,
    timer_lease_ms: int = 30_000,
    gateway: Gateway | None = None,
) -> FastStream:
    settings = settings or Settings.from_env()
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    broker = RedisBroker(settings.redis_url)
    app = FastStream(broker)
    projections.register(broker, app, settings, consumer, reclaim_idle_ms)
    timers = TimerRunner(settings, timer_lease_ms)

    async def fire_due_timers() -> None:
        while True:
            try:
                fired = await asyncio.to_thread(timers.run_once)
            except Exception:  # Redis away: try again; claimed timers come back after their lease
                log.exception("timer loop failed")
                fired = 0
            if not fired:
                await asyncio.sleep(timer_interval)

    projections.background(app, fire_due_timers)
    ingest = IngestRunner(settings, consumer, reclaim_idle_ms)

    async def take_ingest() -> None:
        while True:
            try:
                await asyncio.to_thread(ingest.run_once)
            except Exception:  # Redis away: unacknowledged entries are retried
                log.exception("ingest loop failed")
                await asyncio.sleep(timer_interval)

    projections.background(app, take_ingest)
    for follower in actions.followers(settings, gateway or gateway_from_env()):
        projections.background(app, _following(follower, timer_interval))
    checkpointer = Checkpointer.for_settings(settings, redis.Redis.from_url(settings.redis_url))
    if checkpointer is not None:
        projections.background(app, _checkpointing(checkpointer))
    else:
        log.warning("OUTCOMES_CHECKPOINT_KEY is not set: no signed checkpoints are written (docs/audit.md)")
    return app


def _checkpointing(checkpointer: Checkpointer) -> Callable[[], Coroutine[Any, Any, None]]:
    """Sign the shard's log at the configured interval (docs/audit.md); a log that does not
    chain on is not signed, and is logged until someone runs ``outcomes verify``."""
    poll = min(1.0, checkpointer.every_seconds)

    async def loop() -> None:
        while True:
            try:
                for c in await asyncio.to_thread(checkpointer.run_once):
                    # a copy outside Redis for whoever ships the logs (docs/audit.md)
                    log.info("checkpoint %s position %d chain %s count %d", c.shard, c.position, c.chain, c.count)
            except ChainBroken as error:
                log.error("%s", error)
            except Exception:  # Redis away: the next turn starts from the last checkpoint
                log.exception("checkpointing failed")
            await asyncio.sleep(poll)

    return loop


def _following(follower: actions.LogFollower, interval: float) -> Callable[[], Coroutine[Any, Any, None]]:
    """One loop per action follower, so a slow or failing one holds up no other: it runs
    while the log has entries for it, waits on the log (XREAD BLOCK) when it has none, and
    backs off after a failure (its position says where to go on)."""

    async def loop() -> None:
        failures = 0
        while True:
            try:
                covered = await asyncio.to_thread(follower.run_once)
                failures = 0
            except Exception:
                failures += 1
                log.exception("%s failed (%d in a row)", follower.name, failures)
                await asyncio.sleep(min(interval * 2**failures, 10.0))
                continue
            if not covered:
                await asyncio.to_thread(follower.wait_for_more, 1000)

    return loop


def run(settings: Settings | None = None) -> None:
    """Entry point of ``outcomes worker``."""
    logging.basicConfig(level=logging.INFO)
    asyncio.run(
        build_app(
            settings,
            reclaim_idle_ms=int(os.environ.get("OUTCOMES_RECLAIM_IDLE_MS", "30000")),
            timer_lease_ms=int(os.environ.get("OUTCOMES_TIMER_LEASE_MS", "30000")),
        ).run()
    )
