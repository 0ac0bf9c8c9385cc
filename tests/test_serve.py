"""`outcomes api --workers N`: N processes, each with its own listening socket; a process
that dies is replaced; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from services.serve import listeners
from tests.helpers import wait_until
from tests.stack import Stack


def _all_children(pid: int) -> set[int]:
    """Every child, zombies included (until the parent reaps them)."""
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _children(pid: int) -> set[int]:
    """The serving processes under the parent (not multiprocessing's resource tracker)."""
    found = set()
    for child in _all_children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            found.add(int(child))
    return found


def _serving(stack: Stack, n: int) -> bool:
    if listeners(stack.port) != n:
        return False
    try:
        return httpx.get(stack.base + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _two_processes(stack: Stack) -> subprocess.Popen[bytes]:
    parent = stack.spawn("api", "--port", str(stack.port), "--workers", "2", "--no-access-log")
    try:
        wait_until(lambda: _serving(stack, 2), 60, "two API processes listening")
    except BaseException:
        parent.kill()
        raise
    return parent


def test_each_api_process_listens_and_a_dead_one_is_replaced(redis_url: str, shard: str) -> None:
    stack = Stack(redis_url, shard)
    parent = _two_processes(stack)
    try:
        before = _children(parent.pid)
        assert len(before) == 2
        # requests on fresh connections all answered, whichever process takes them
        assert all(httpx.get(stack.base + "/health").status_code == 200 for _ in range(20))

        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in _all_children(parent.pid), 30, "the killed process to be reaped")
        wait_until(lambda: _serving(stack, 2), 60, "a replacement process listening")
        assert len(_children(parent.pid) - before) == 1

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0
        assert listeners(stack.port) == 0
        assert not _alive(before)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pids: set[int]) -> set[int]:
    """Those of the pids that are live (not exited, not zombie) processes."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def test_api_processes_die_with_a_killed_parent(redis_url: str, shard: str) -> None:
    stack = Stack(redis_url, shard)
    parent = _two_processes(stack)
    served_by = _children(parent.pid)
    parent.kill()  # SIGKILL: the parent cannot pass anything on
    parent.wait()
    wait_until(lambda: not _alive(served_by), 60, "the orphaned API processes to exit")
    assert listeners(stack.port) == 0
