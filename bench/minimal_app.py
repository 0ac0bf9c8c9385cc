"""The HTTP benchmark's baseline: the smallest endpoint that does what a selection must at
least do -- one read and one scripted write on Redis -- on the same stack (Litestar,
msgspec, uvicorn, redis-py in a worker thread). ``uvicorn bench.minimal_app:create_app --factory``.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import msgspec
import redis
from litestar import Litestar, post

from services.config import Settings

WRITE = """
redis.call("XADD", KEYS[2], "*", "b", ARGV[1])
return redis.call("INCR", KEYS[1])
"""


class Body(msgspec.Struct, frozen=True):
    outcome_code: str
    occurred_at: str


def create_app() -> Litestar:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    script = client.register_script(WRITE)
    counter, stream = "bench:{m}:counter", "bench:{m}:stream"

    def read_and_write(call_id: str, body: bytes) -> int:
        client.get(f"bench:{{m}}:call:{call_id}")
        return int(script(keys=[counter, stream], args=[body]))  # type: ignore[arg-type]

    @post("/minimal/{call_id:str}", status_code=201)
    async def minimal(call_id: str, data: Body) -> dict[str, int]:
        n = await asyncio.to_thread(read_and_write, call_id, msgspec.json.encode(data))
        return {"version": n}

    def on_startup() -> None:  # the API's thread pool (services/api/app.py), for a like-for-like baseline
        threads = Settings.from_env().api_threads
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="api"))

    return Litestar(route_handlers=[minimal], on_startup=[on_startup])
