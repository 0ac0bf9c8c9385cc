"""``outcomes worker``: one FastStream app per shard hosting the projection subscriber,
the timer loop, the ingest loop and the follow-up actions."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from faststream import FastStream
from faststream.redis import RedisBroker

from services.config import Settings
from services.sms_gateway import Gateway, gateway_from_env
from workers import actions, projections
from workers.contact_lists import ContactListPlanner
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
    act = actions.followers(settings, gateway or gateway_from_env())
    # contact-list effects: internal only, so they follow the log beside the SMS followers
    act.append(ContactListPlanner(settings))

    async def follow_up() -> None:
        while True:
            try:
                covered = sum([await asyncio.to_thread(follower.run_once) for follower in act])
            except Exception:  # Redis or a gateway away: the positions say where to go on
                log.exception("follow-up actions failed")
                covered = 0
            if not covered:
                await asyncio.sleep(timer_interval)

    projections.background(app, follow_up)
    return app


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
