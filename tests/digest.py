"""A snapshot of a test's own Redis keys, to prove a rejected request wrote nothing.

``snapshot`` records, for every key under a prefix (SCAN), its type, ``DEBUG DIGEST-VALUE``
and whether it has a time to live; for every stream also its consumer-group state
(``XINFO GROUPS`` and the ``XPENDING`` summary of each group), which digests ignore
(ARCHITECTURE.md, "Nothing written" checks). Keys a rejection may touch are left out:
rate-limit counters, ingest and rejections streams.

Redis 7.0 refuses ``DEBUG`` unless the server was started with ``--enable-debug-command
local`` (events/embedded.py does that for the servers the suite starts; 6.2 allows it). On
a server that refuses it -- say a developer's REDIS_URL -- the test is skipped, saying why.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

import pytest
import redis

#: keys a rejected request is allowed to touch
EXCLUDED = ("*:{reg}:rate:*", "*ingest*", "*rejections*")

Snapshot = dict[str, dict[str, Any]]


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    return value


def excluded(key: str, patterns: Iterable[str] = EXCLUDED) -> bool:
    # fnmatchcase, not Redis glob: "{reg}" is literal here ({} mean nothing to fnmatch)
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _digests(client: redis.Redis, keys: list[str]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.execute_command("DEBUG", "DIGEST-VALUE", key)  # type: ignore[no-untyped-call]
        pipe.pttl(key)
    try:
        return pipe.execute()
    except redis.ResponseError as error:
        if "debug" in str(error).lower() or "DIGEST" in str(error):
            pytest.skip(
                f"this Redis refuses DEBUG DIGEST-VALUE ({error}); the 'nothing written' checks need it: "
                "start Redis 7+ with --enable-debug-command local, or unset REDIS_URL so the suite starts its own"
            )
        raise


def _groups(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    groups = []
    for group in client.xinfo_groups(stream):
        info = _text(group)
        pending = client.xpending(stream, info["name"])
        groups.append({"info": info, "pending": _text(pending)})
    return sorted(groups, key=lambda g: str(g["info"]["name"]))


def snapshot(client: redis.Redis, prefix: str, exclude: Iterable[str] = EXCLUDED) -> Snapshot:
    """Every key under ``prefix`` (``prefix*``), except the excluded ones."""
    patterns = tuple(exclude)
    found = {_text(k) for k in client.scan_iter(match=f"{prefix}*", count=1000)}
    keys = sorted(k for k in found if not excluded(k, patterns))
    if not keys:
        return {}
    replies = _digests(client, keys)
    state: Snapshot = {}
    for i, key in enumerate(keys):
        kind, digest, pttl = (_text(r) for r in replies[3 * i : 3 * i + 3])
        if isinstance(digest, list):  # DEBUG DIGEST-VALUE answers one digest per key asked
            digest = digest[0] if len(digest) == 1 else digest
        if kind == "none":  # expired between SCAN and the digest
            continue
        entry: dict[str, Any] = {"type": kind, "digest": digest, "expires": int(pttl) >= 0}
        if kind == "stream":
            entry["groups"] = _groups(client, key)
        state[key] = entry
    return state


def diff(before: Snapshot, after: Snapshot) -> list[str]:
    """What changed, one readable line per key (empty when nothing did)."""
    lines = [f"added:   {k} ({after[k]['type']})" for k in sorted(after.keys() - before.keys())]
    lines += [f"removed: {k} ({before[k]['type']})" for k in sorted(before.keys() - after.keys())]
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key], after[key]
        fields = sorted(old.keys() | new.keys())
        changed = [f"{f}: {old.get(f)!r} -> {new.get(f)!r}" for f in fields if old.get(f) != new.get(f)]
        if changed:
            lines.append(f"changed: {key} ({'; '.join(changed)})")
    return lines
