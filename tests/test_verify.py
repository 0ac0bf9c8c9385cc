"""Tamper evidence (docs/audit.md): the log is tampered with directly in Redis -- an event
edited, removed, two reordered, the log cut -- before and after the last signed
checkpoint, and ``outcomes verify`` names exactly that event or the cut, or reports the
unverified tail when nothing can be proven. Real Redis, real ledger events, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from events.chain import ZERO, event_hash, link_hash
from events.keys import ShardKeys
from services.checkpoints import ChainBroken, Checkpointer, KeyRing, Signer, generate_key
from services.runtime import Runtime
from services.verify import (
    CHECKPOINT,
    EDITED,
    INDEX,
    REMOVED,
    REORDERED,
    REWRITTEN,
    TRUNCATED,
    CannotVerify,
    ShardReport,
    ShardVerifier,
)
from tests.helpers import call_with_outcome, new_runtime, seed_project, wait_until
from tests.stack import ROOT, Stack

Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass
class World:
    runtime: Runtime
    client: redis.Redis
    keys: ShardKeys
    key_file: Path
    calls: int = 0

    def calls_with_outcomes(self, n: int, tenant: str = "acme") -> None:
        for _ in range(n):
            self.calls += 1
            call_with_outcome(self.runtime, tenant, f"c-{self.calls}", "SALE")

    def checkpoint(self, every_events: int = 1000) -> None:
        Checkpointer(self.client, self.keys, Signer.from_file(self.key_file), every_events).run_once(force=True)

    def verify(self, ring: KeyRing | None = None) -> ShardReport:
        ring = ring or KeyRing.from_files([f"{self.key_file}.pub"])
        return ShardVerifier(self.client, self.keys, ring, batch=7).run()  # small batches: the seams are walked

    def last(self) -> int:
        return int(self.client.hget(self.keys.head, "n"))  # type: ignore[arg-type]

    def signed(self) -> int:
        """Position of the newest checkpoint."""
        return int(self.client.xrevrange(self.keys.checkpoints, count=1)[0][0].split(b"-")[0])

    def entries(self) -> list[Entry]:
        return self.client.xrange(self.keys.log)  # type: ignore[return-value]

    def position_of(self, event_type: bytes, after: int = 0, before: int | None = None) -> int:
        """The first event of that type in the range: one with an aggregate to name."""
        for entry_id, fields in self.entries():
            nid = int(entry_id.split(b"-")[0])
            if fields[b"t"] == event_type and nid > after and (before is None or nid < before):
                return nid
        raise AssertionError(f"no {event_type!r} after {after}")

    def fields(self, position: int) -> dict[bytes, bytes]:
        return self.client.xrange(self.keys.log, f"{position}-0", f"{position}-0")[0][1]  # type: ignore[index]

    def rewrite(self, change: Callable[[list[Entry]], list[Entry]]) -> None:
        """Rewrite the log stream (a stream's entries cannot be changed in place)."""
        new = change(self.entries())
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.log)
        for entry_id, fields in new:
            pipe.xadd(self.keys.log, fields, id=entry_id)  # type: ignore[arg-type]
        pipe.execute()


@pytest.fixture()
def world(redis_url: str, shard: str, tmp_path: Path) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    seed_project(runtime, "acme")
    key_file = tmp_path / "checkpoint.key"
    generate_key(key_file)
    w = World(runtime, runtime.client, runtime.shard_keys_for(shard), key_file)
    w.calls_with_outcomes(4)
    try:
        yield w
    finally:
        runtime.close()


def signed_then_tail(world: World) -> tuple[int, int]:
    """Checkpoints every 5 events up to now, then more events: (signed position, last position)."""
    world.checkpoint(every_events=5)
    world.calls_with_outcomes(3)
    return world.signed(), world.last()


def only_problem(report: ShardReport) -> object:
    assert len(report.problems) == 1, [p.describe() for p in report.problems]
    return report.problems[0]


def edit_state(world: World, position: int) -> None:
    def change(entries: list[Entry]) -> list[Entry]:
        out = []
        for entry_id, fields in entries:
            if entry_id == f"{position}-0".encode():
                fields = {**fields, b"s": fields[b"s"].replace(b"SALE", b"LOST")}
                assert fields[b"s"] != world.fields(position)[b"s"]
            out.append((entry_id, fields))
        return out

    world.rewrite(change)


# -- a clean log ------------------------------------------------------------------------------


def test_a_clean_log_verifies_and_reports_its_unsigned_events_as_the_tail(world: World) -> None:
    report = world.verify()
    assert report.ok and report.checkpoints == 0 and report.signed_through == 0
    assert report.unverified_tail is not None and report.unverified_tail.count == world.last() == report.events

    signed, last = signed_then_tail(world)
    report = world.verify()
    assert report.ok, [p.describe() for p in report.problems]
    assert report.checkpoints == len(range(5, signed + 1, 5)) + (signed % 5 != 0)
    assert report.signed_through == signed
    assert report.unverified_tail is not None
    assert (report.unverified_tail.first, report.unverified_tail.last) == (signed + 1, last)

    world.checkpoint()
    report = world.verify()
    assert report.ok and report.signed_through == last and report.unverified_tail is None


def test_the_checkpointer_signs_every_n_events_and_the_newest_once_due(world: World) -> None:
    signer = Signer.from_file(world.key_file)
    checkpointer = Checkpointer(world.client, world.keys, signer, every_events=5, every_seconds=3600)
    first = checkpointer.run_once()  # catching up: every 5 events
    assert [c.position for c in first] == list(range(5, world.last() + 1, 5))
    newest = first[-1].position
    assert checkpointer.run_once() == []  # fewer than 5 new events, and the hour is not up
    world.calls_with_outcomes(2)  # 6 events
    assert [c.position for c in checkpointer.run_once()] == [newest + 5]
    assert [c.position for c in checkpointer.run_once(force=True)] == [world.last()]  # the CLI's `checkpoint write`
    assert all(KeyRing([signer.public]).problem(c) is None for c in first)


def test_a_log_written_during_the_walk_verifies(world: World) -> None:
    """Verify reads the head first and walks up to it: what is appended meanwhile is not
    mistaken for a cut, nor an index entry of it for a removed event."""
    world.checkpoint(every_events=5)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            world.calls_with_outcomes(1)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        reports = [world.verify() for _ in range(15)]
    finally:
        stop.set()
        writer.join()
    assert all(r.ok for r in reports), [p.describe() for r in reports for p in r.problems]
    assert reports[-1].events > reports[0].events  # the log grew under the walks


# -- edited -----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["signed", "tail"])
def test_an_edited_event_is_named(world: World, where: str) -> None:
    signed, _ = signed_then_tail(world)
    position = world.position_of(b"OutcomeSelected", *((0, signed) if where == "signed" else (signed,)))
    fields = world.fields(position)
    edit_state(world, position)

    report = world.verify()
    problem = only_problem(report)
    assert problem.kind == EDITED and problem.position == position and problem.log_id == f"{position}-0"
    assert problem.aggregate == fields[b"o"].decode() and problem.version == int(fields[b"v"])
    assert problem.event_type == "OutcomeSelected" and problem.tenant == "acme"
    assert "content does not match its hash" in problem.detail


def recompute_from(world: World, position: int) -> None:
    """Edit the event at ``position`` and recompute every hash after it, as someone who
    knows the formula would: the chains alone then look sound."""

    def change(entries: list[Entry]) -> list[Entry]:
        heads: dict[bytes, str] = {}
        chain = ZERO
        out = []
        for entry_id, f in entries:
            nid = int(entry_id.split(b"-")[0])
            if nid == position:
                f = {**f, b"s": f[b"s"].replace(b"SALE", b"LOST")}
            if nid >= position:
                h = event_hash(heads.get(f[b"o"], ZERO), f[b"o"], f[b"v"], f[b"t"], f[b"s"])
                f = {**f, b"h": h.encode(), b"c": link_hash(chain, nid, h).encode()}
            heads[f[b"o"]] = f[b"h"].decode()
            chain = f[b"c"].decode()
            out.append((entry_id, f))
        world.client.hset(world.keys.head, "c", chain)
        return out

    world.rewrite(change)


def test_an_edit_with_recomputed_hashes_is_caught_by_the_checkpoint_after_it(world: World) -> None:
    signed, _ = signed_then_tail(world)
    position = world.position_of(b"OutcomeSelected", signed - 5, signed + 1)
    recompute_from(world, position)

    checkpoints = [int(i.split(b"-")[0]) for i, _ in world.client.xrange(world.keys.checkpoints)]
    at = min(p for p in checkpoints if p >= position)  # the first checkpoint after the edit
    before = max(p for p in checkpoints if p < position)

    problem = only_problem(world.verify())
    assert problem.kind == REWRITTEN and problem.position == at
    assert f"events {before + 1}..{at} were changed" in problem.detail


def test_an_edit_with_recomputed_hashes_in_the_tail_cannot_be_proven_and_stays_unsigned(world: World) -> None:
    signed, last = signed_then_tail(world)
    recompute_from(world, world.position_of(b"OutcomeSelected", signed))

    report = world.verify()
    assert report.ok  # what was never signed is only internally consistent ...
    assert report.signed_through == signed and report.unverified_tail is not None
    assert (report.unverified_tail.first, report.unverified_tail.last) == (signed + 1, last)  # ... and says so
    assert "cannot be proven" in render_one(report)


def render_one(report: ShardReport) -> str:
    from services.verify import Report, render

    return render(Report(report.ok, [report], report.problems[0] if report.problems else None))


# -- removed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["signed", "tail"])
def test_a_removed_event_is_named_with_its_aggregate_and_version(world: World, where: str) -> None:
    signed, _ = signed_then_tail(world)
    # a call's CallEnded: the same aggregate's outcome selection follows it
    position = world.position_of(b"CallEnded", *((0, signed) if where == "signed" else (signed,)))
    fields = world.fields(position)
    world.client.xdel(world.keys.log, f"{position}-0")

    problem = only_problem(world.verify())
    assert problem.kind == REMOVED and problem.position == position
    assert problem.aggregate == fields[b"o"].decode() and problem.version == int(fields[b"v"])
    assert problem.tenant == "acme"
    assert f"event {position} is missing" in problem.detail


def test_the_newest_event_of_an_aggregate_removed_is_named_from_its_index(world: World) -> None:
    signed, _ = signed_then_tail(world)
    position = world.position_of(b"OutcomeSelected", 0, signed)  # the call's last event
    fields = world.fields(position)
    world.client.xdel(world.keys.log, f"{position}-0")

    problem = only_problem(world.verify())
    assert (problem.kind, problem.position) == (REMOVED, position)
    assert problem.aggregate == fields[b"o"].decode() and problem.version == int(fields[b"v"])


# -- reordered --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["signed", "tail"])
def test_two_swapped_events_are_named(world: World, where: str) -> None:
    signed, _ = signed_then_tail(world)
    first = world.position_of(b"CallEnded", *((0, signed - 1) if where == "signed" else (signed,)))
    a, b = f"{first}-0".encode(), f"{first + 1}-0".encode()

    def swap(entries: list[Entry]) -> list[Entry]:
        by_id = dict(entries)
        return [(eid, by_id[b] if eid == a else by_id[a] if eid == b else f) for eid, f in entries]

    world.rewrite(swap)
    report = world.verify()
    assert [(p.kind, p.position) for p in report.problems] == [(REORDERED, first), (REORDERED, first + 1)]
    assert report.problems[0].event_type == "OutcomeSelected" and report.problems[1].event_type == "CallEnded"


# -- truncated --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["signed", "tail"])
def test_a_cut_log_is_named_at_the_cut(world: World, where: str) -> None:
    signed, last = signed_then_tail(world)
    cut = signed - 2 if where == "signed" else last - 1
    for position in range(cut, last + 1):  # the newest events, XDEL'd
        world.client.xdel(world.keys.log, f"{position}-0")

    problem = only_problem(world.verify())
    assert (problem.kind, problem.position) == (TRUNCATED, cut)
    assert f"the log ends at {cut - 1}" in problem.detail and f"its head says {last}" in problem.detail
    if where == "signed":
        assert "checkpoint(s) were signed at" in problem.detail and str(signed) in problem.detail


def cover_up_cut(world: World, keep: int) -> None:
    """XTRIM the log to its first ``keep`` events and make the head and the stream's last id agree."""
    world.rewrite(lambda entries: entries[:keep])
    last_fields = world.fields(keep)
    world.client.hset(world.keys.head, mapping={"n": keep, "c": last_fields[b"c"]})


def test_a_covered_up_cut_before_the_last_checkpoint_is_still_caught(world: World) -> None:
    signed, _ = signed_then_tail(world)
    cover_up_cut(world, signed - 3)

    problem = only_problem(world.verify())
    assert (problem.kind, problem.position) == (TRUNCATED, signed - 2)
    assert "checkpoint(s) were signed at" in problem.detail and str(signed) in problem.detail


def test_a_covered_up_cut_in_the_tail_is_reported_as_the_unverified_tail(world: World) -> None:
    signed, last = signed_then_tail(world)
    cover_up_cut(world, last - 2)

    report = world.verify()
    assert report.ok and report.unverified_tail is not None
    assert (report.unverified_tail.first, report.unverified_tail.last) == (signed + 1, last - 2)
    assert "a truncation inside the tail cannot be proven" in render_one(report)


def test_an_xtrim_which_drops_the_oldest_names_them_removed(world: World) -> None:
    _, last = signed_then_tail(world)
    world.client.xtrim(world.keys.log, maxlen=last - 3, approximate=False)  # the oldest go

    problem = only_problem(world.verify())
    assert (problem.kind, problem.position) == (REMOVED, 1)
    assert "events 1..3 are missing" in problem.detail


# -- checkpoints and indexes ------------------------------------------------------------------


def test_a_forged_checkpoint_is_detected(world: World, tmp_path: Path) -> None:
    signed, _ = signed_then_tail(world)
    stored = world.client.xrange(world.keys.checkpoints)
    world.client.delete(world.keys.checkpoints)
    for entry_id, fields in stored:  # the newest altered, with its old signature
        changed = {**fields, b"count": b"1"} if entry_id == stored[-1][0] else fields
        world.client.xadd(world.keys.checkpoints, changed, id=entry_id)

    report = world.verify()
    problem = only_problem(report)
    assert (problem.kind, problem.position) == (CHECKPOINT, signed) and "does not verify" in problem.detail
    assert report.signed_through < signed  # a forged checkpoint vouches for nothing

    other = tmp_path / "other.key"
    generate_key(other)
    Checkpointer(world.client, world.keys, Signer.from_file(other)).run_once(force=True)  # a stranger's key
    problems = world.verify().problems
    assert [p.kind for p in problems] == [CHECKPOINT, CHECKPOINT] and "unknown key" in problems[1].detail


def test_a_retired_key_still_verifies_old_checkpoints(world: World, tmp_path: Path) -> None:
    signed_then_tail(world)
    new_key = tmp_path / "new.key"
    generate_key(new_key)
    Checkpointer(world.client, world.keys, Signer.from_file(new_key)).run_once(force=True)

    both = KeyRing.from_files([f"{world.key_file}.pub", f"{new_key}.pub"])
    report = world.verify(both)
    assert report.ok and report.signed_through == world.last() and report.checkpoints > 1
    assert world.verify(KeyRing.from_files([f"{new_key}.pub"])).problems[0].kind == CHECKPOINT


def test_checkpoints_without_a_public_key_cannot_be_verified(world: World) -> None:
    world.checkpoint()
    with pytest.raises(CannotVerify):
        world.verify(KeyRing([]))


def test_a_tenant_index_entry_removed_is_named(world: World) -> None:
    position = world.position_of(b"CallStarted")
    world.client.xdel(world.keys.tenant_index("acme"), f"{position}-0")

    problem = only_problem(world.verify())
    assert (problem.kind, problem.position) == (INDEX, position) and "lacks this position" in problem.detail


def test_the_signer_refuses_a_log_that_does_not_chain_on(world: World) -> None:
    world.checkpoint()
    world.calls_with_outcomes(1)
    position = world.last()
    world.rewrite(lambda es: [(i, {**f, b"c": ZERO.encode()} if i == f"{position}-0".encode() else f) for i, f in es])
    with pytest.raises(ChainBroken, match=f"{position}-0"):
        world.checkpoint()


# -- the CLI and the worker -------------------------------------------------------------------


def cli(world: World, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    settings = world.runtime.settings
    base = {k: v for k, v in os.environ.items() if not k.startswith("OUTCOMES_CHECKPOINT_")}
    full = {**base, "REDIS_URL": settings.redis_url, "REDIS_KEY_PREFIX": settings.key_prefix, **env}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=full, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_cli_signs_verifies_and_exits_by_the_result(world: World, tmp_path: Path) -> None:
    key = tmp_path / "cli.key"
    made = cli(world, "checkpoint", "keygen", str(key))
    assert made.returncode == 0 and key.exists() and Path(f"{key}.pub").exists(), made.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert cli(world, "checkpoint", "keygen", str(key)).returncode == 1  # never overwritten

    shard = world.keys.shard
    signing = {"OUTCOMES_CHECKPOINT_KEY": str(key), "REDIS_SHARD": shard}
    written = cli(world, "checkpoint", "write", **signing)
    assert written.returncode == 0 and f"position {world.last()}" in written.stdout, written.stderr
    public = {"OUTCOMES_CHECKPOINT_PUBLIC_KEYS": f"{key}.pub"}

    clean = cli(world, "verify", "--shard", shard, **public)
    assert clean.returncode == 0 and "INTACT" in clean.stdout, clean.stdout + clean.stderr
    every = cli(world, "verify", "--json", REDIS_SHARD="s00", **public)  # the registry's shards and s00
    assert every.returncode == 0, every.stdout + every.stderr
    assert sorted(r["shard"] for r in json.loads(every.stdout)["shards"]) == sorted([shard, "s00"])

    assert cli(world, "verify", "--shard", shard).returncode == 2  # signed, and no key to check with

    position = world.position_of(b"OutcomeSelected")
    edit_state(world, position)
    tampered = cli(world, "verify", "--shard", shard, **public)
    assert tampered.returncode == 1
    assert f"TAMPERED: shard {shard}, log id {position}-0, edited" in tampered.stdout

    as_json = cli(world, "verify", "--shard", shard, "--json", **public)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["first_problem"]["position"] == position
    assert report["shards"][0]["events_per_second"] > 0


def test_the_worker_writes_checkpoints_at_the_interval(stack: Stack, tmp_path: Path) -> None:
    key = tmp_path / "worker.key"
    generate_key(key)
    stack.env |= {
        "OUTCOMES_CHECKPOINT_KEY": str(key),
        "OUTCOMES_CHECKPOINT_EVERY_EVENTS": "4",
        "OUTCOMES_CHECKPOINT_EVERY_SECONDS": "0.5",
    }
    runtime = stack.runtime()
    try:
        seed_project(runtime, "acme")
        keys = runtime.shard_keys_for(runtime.settings.shard)
        stack.start_worker()

        def signed_to_head() -> bool:
            newest = runtime.client.xrevrange(keys.checkpoints, count=1)
            return bool(newest) and newest[0][0] == f"{int(runtime.client.hget(keys.head, 'n'))}-0".encode()

        wait_until(signed_to_head, 30, "a checkpoint at the head")
        call_with_outcome(runtime, "acme", "c-1", "SALE")
        wait_until(signed_to_head, 30, "a checkpoint at the new head")
        positions = [int(i.split(b"-")[0]) for i, _ in runtime.client.xrange(keys.checkpoints)]
        assert any(p % 4 == 0 for p in positions)  # every 4 events while catching up
        report = ShardVerifier(runtime.client, keys, KeyRing.from_files([f"{key}.pub"])).run()
        assert report.ok and report.unverified_tail is None
    finally:
        runtime.close()
