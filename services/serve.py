"""Serving an ASGI app from several processes, each with its own listening socket.

uvicorn's own ``--workers`` shares one socket among the processes, and the kernel hands
new connections to whichever process is awake: under load one process can end up with
nearly every keep-alive connection while the other idles (seen in ``bench/http_bench.py``:
85 connections against 1). Here each process binds the port with ``SO_REUSEPORT``, so the
kernel spreads connections over the processes by their addresses.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

#: how long a process that keeps dying waits before it is started again
RESTART_DELAY_SECONDS = 1.0


def listeners(port: int) -> int:
    """Sockets listening on the port on this machine: with ``serve``, one per process."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            count += fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port  # 0A: LISTEN
    return count


def die_with_parent() -> None:
    """Have the kernel send SIGTERM when the supervising process dies, even by SIGKILL,
    so no orphan keeps serving the port (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor's own stop() still applies
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _serve_one(app: str, host: str, port: int, access_log: bool) -> None:
    die_with_parent()
    config = uvicorn.Config(app, factory=True, host=host, port=port, log_level="info", access_log=access_log)
    uvicorn.Server(config).run(sockets=[_bind(host, port)])


def serve(app: str, *, host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the app factory ``app`` ("module:function") until SIGINT or SIGTERM."""
    if workers <= 1:
        uvicorn.run(app, factory=True, host=host, port=port, log_level="info", access_log=access_log)
        return
    supervise([(_serve_one, (app, host, port, access_log))] * workers)


def supervise(targets: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
    """Run each ``target(*args)`` in a process of its own until SIGINT or SIGTERM; a process
    that dies is started again (with the same arguments). Stopping sends each SIGTERM."""
    context = multiprocessing.get_context("spawn")

    def start(target: Callable[..., None], args: tuple[Any, ...]) -> multiprocessing.process.BaseProcess:
        process = context.Process(target=target, args=args, daemon=False)
        process.start()
        return process

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    processes = [start(*target) for target in targets]
    try:
        while not stopping:
            time.sleep(0.2)
            for i, process in enumerate(processes):
                if not process.is_alive() and not stopping:  # a crashed process is replaced
                    time.sleep(RESTART_DELAY_SECONDS)
                    processes[i] = start(*targets[i])
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # uvicorn drains its connections on SIGTERM
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        for s, handler in previous.items():
            signal.signal(s, handler)
