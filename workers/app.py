"""``outcomes worker``: one FastStream app per shard hosting the projection subscriber,
the timer loop, the ingest loop, the checkpointer, the scheduled archive
(``OUTCOMES_ARCHIVE_HOT_DAYS``, workers/archive.py) and the follow-up actions; ``--role`` runs only the action
followers or only the rest, ``--processes N`` several processes sharing the work
(workers/leases.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from faststream import FastStream
from faststream.redis import RedisBroker

from events.connect import node_url, redis_client
from events.keys import ShardKeys
from projections.base import bulk_gc
from services.archive import describe
from services.checkpoints import ChainBroken, Checkpointer
from services.config import Settings
from services.sms_gateway import Gateway, gateway_from_env
from workers import actions, projections
from workers.archive import ArchiveRunner
from workers.ingest import IngestRunner
from workers.leases import Leases
from workers.timers import TimerRunner

log = logging.getLogger("outcomes.worker")

#: what a worker process runs: everything, the action followers only, or all but them
Role = Literal["all", "actions", "projections"]


def build_app(
    settings: Settings | None = None,
    *,
    consumer: str | None = None,
    reclaim_idle_ms: int = 30_000,
    timer_interval: float = 0.2,
    timer_lease_ms: int = 30_000,
    gateway: Gateway | None = None,
    role: Role = "all",
    process: int = 0,
    processes: int = 1,
) -> FastStream:
    settings = settings or Settings.from_env()
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    # FastStream has no cluster broker: it speaks to the master holding the shard's slot
    broker = RedisBroker(node_url(settings.redis_url, ShardKeys(settings.shard, settings.key_prefix).log))
    app = FastStream(broker)
    if role != "actions":
        _projections_timers_ingest(app, broker, settings, consumer, reclaim_idle_ms, timer_interval, timer_lease_ms)
    if role != "projections":
        _actions(
            app, settings, consumer, gateway or gateway_from_env(), reclaim_idle_ms, timer_interval, process, processes
        )
    return app


def _projections_timers_ingest(
    app: FastStream,
    broker: RedisBroker,
    settings: Settings,
    consumer: str,
    reclaim_idle_ms: int,
    timer_interval: float,
    timer_lease_ms: int,
) -> None:
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
    checkpointer = Checkpointer.for_settings(settings, redis_client(settings.redis_url))
    if checkpointer is not None:
        projections.background(app, _checkpointing(checkpointer))
    else:
        log.warning("OUTCOMES_CHECKPOINT_KEY is not set: no signed checkpoints are written (docs/audit.md)")
    if settings.archive_hot_days is not None:
        # the lease outlives two intervals: a run longer than one is not taken over
        lease_ms = int(max(2 * settings.archive_interval, 60) * 1000)
        runner = ArchiveRunner(settings, consumer, settings.archive_hot_days, lease_ms)
        projections.background(app, _archiving(runner, settings.archive_interval))


def _archiving(runner: ArchiveRunner, interval: float) -> Callable[[], Coroutine[Any, Any, None]]:
    """Archive at the interval while this process holds the archive lease (workers/archive.py)."""

    async def loop() -> None:
        while True:
            try:
                run = await asyncio.to_thread(runner.run_once)
                if run is not None:
                    log.info("%s", describe(run))
            except Exception:  # Redis or the store away, or a refusal: the next turn reruns
                log.exception("archive run failed")
            await asyncio.sleep(interval)

    return loop


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


def _actions(
    app: FastStream,
    settings: Settings,
    consumer: str,
    gateway: Gateway,
    idle_ms: int,
    interval: float,
    process: int,
    processes: int,
) -> None:
    """The action followers, each run while this process holds its lease; a heartbeat
    renews the leases a few times per idle time."""
    followers = actions.followers(settings, gateway)
    client = followers[0].client
    names = [f.name for f in followers]
    leases = Leases(client, followers[0].keys, consumer, names, idle_ms=idle_ms, process=process, processes=processes)
    beat = idle_ms / 1000 / 4

    async def heartbeat() -> None:
        held: set[str] = set()
        while True:
            try:
                now_held = await asyncio.to_thread(leases.refresh)
            except Exception:  # Redis away: the leases lapse, so the followers stop here too
                log.exception("lease heartbeat failed")
                leases.forget()
                now_held = set()
            if now_held != held:
                log.info("%s runs %s", consumer, sorted(now_held) or "no action follower")
                held = now_held
            await asyncio.sleep(beat)

    projections.background(app, heartbeat)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_following, args=(follower, interval, leases, beat, stop), name=follower.name, daemon=True
        )
        for follower in followers
    ]

    @app.after_startup
    async def start_following() -> None:
        for thread in threads:
            thread.start()

    @app.on_shutdown
    async def let_go() -> None:
        stop.set()
        # a follower finishes its batch (or its wait on the log, at most a beat) first
        await asyncio.to_thread(_join, threads, timeout=beat + 5)
        await asyncio.to_thread(leases.release)


def _join(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        if thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))


def _following(
    follower: actions.LogFollower, interval: float, leases: Leases, beat: float, stop: threading.Event
) -> None:
    """One thread per action follower, so a slow or failing one holds up no other: it runs
    while the log has entries for it and this process holds its lease, waits on the log
    (XREAD BLOCK) when it has none, and backs off after a failure (its position says where
    to go on). Caught up, it lets the next entries gather for ``linger`` seconds, and it
    keeps its position in memory while it holds the lease (``run_once(lazy=True)``). A
    thread of its own rather than a task handing each turn to a thread (``to_thread``): at
    hundreds of turns a second, the hand-offs between the event loop and the threads cost
    more CPU than the turns' own work."""
    failures = 0
    while not stop.is_set():
        if not leases.holds(follower.name):  # another process runs it
            follower.forget_position()  # and moves it meanwhile
            stop.wait(beat)
            continue
        try:
            covered = follower.run_once(lazy=True)
            if not covered:
                follower.store_position()
            failures = 0
        except Exception:
            failures += 1
            log.exception("%s failed (%d in a row)", follower.name, failures)
            stop.wait(min(interval * 2**failures, 10.0))
            continue
        if covered >= follower.batch_size:
            continue  # more is waiting
        if not covered:
            follower.wait_for_more(int(min(1000, beat * 1000)))
        stop.wait(follower.linger)


def run(settings: Settings | None = None, *, role: Role = "all", process: int = 0, processes: int = 1) -> None:
    """Entry point of ``outcomes worker`` (one process)."""
    logging.basicConfig(level=logging.INFO)
    bulk_gc()  # the projections' catch-up allocates in bulk (projections/base.py)
    asyncio.run(
        build_app(
            settings,
            reclaim_idle_ms=int(os.environ.get("OUTCOMES_RECLAIM_IDLE_MS", "30000")),
            timer_lease_ms=int(os.environ.get("OUTCOMES_TIMER_LEASE_MS", "30000")),
            role=role,
            process=process,
            processes=processes,
        ).run()
    )


def run_processes(role: Role, processes: int) -> None:
    """``outcomes worker --processes N``: N worker processes, each the home of its share of
    the action followers (workers/leases.py); one that dies is started again, and until then
    the others take its followers over."""
    from services.serve import supervise

    supervise([(_run_child, (role, i, processes)) for i in range(processes)])


def _run_child(role: Role, process: int, processes: int) -> None:
    from services.serve import die_with_parent

    die_with_parent()
    run(Settings.from_env(), role=role, process=process, processes=processes)
