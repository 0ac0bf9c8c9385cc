"""The service as real processes: the CLI, the API (uvicorn) and the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import uvicorn

from events.connect import redis_client
from events.durability import check_durability
from events.embedded import free_port
from services.api.app import create_app
from services.config import Settings
from services.runtime import Runtime
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent


class Stack:
    def __init__(self, redis_url: str, shard: str) -> None:
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "REDIS_SHARD": shard,
            "REDIS_KEY_PREFIX": "e2e" + uuid.uuid4().hex[:6],
            "OUTCOMES_RECLAIM_IDLE_MS": "500",
            "OUTCOMES_TIMER_LEASE_MS": "1000",
        }
        if check_durability(redis_client(redis_url), allow_weak=True).weak:
            self.env["OUTCOMES_ALLOW_WEAK_DURABILITY"] = "1"  # a developer's own REDIS_URL
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def runtime(self) -> Runtime:
        """In-process access to what the processes use: the same Redis, shard and prefix."""
        env = self.env
        settings = Settings(redis_url=env["REDIS_URL"], shard=env["REDIS_SHARD"], key_prefix=env["REDIS_KEY_PREFIX"])
        return Runtime(settings)

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_api(self) -> None:
        self.api = self.spawn("api", "--port", str(self.port))

        def up() -> bool:
            try:
                return httpx.get(self.base + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the API to answer /health")

    def start_worker(self) -> None:
        self.worker = self.spawn("worker")

    def decode(self, fields: dict[bytes, bytes]) -> dict[str, object]:
        """A log entry's event as a dict (no personal fields read here)."""
        import msgspec

        from events.codec import StructMapper

        event = StructMapper().decode(fields[b"t"].decode(), fields[b"s"])
        return dict(msgspec.to_builtins(event))

    def stop(self) -> None:
        for p in (self.api, self.worker):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()


class Served:
    """The real app (create_app) served by uvicorn in a thread on a free loopback port."""

    def __init__(self, runtime: Runtime) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, "uvicorn to start")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
