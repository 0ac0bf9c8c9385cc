"""Settings from the environment, read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass

from events.keys import DEFAULT_PREFIX, DEFAULT_SHARD


@dataclass(frozen=True)
class Settings:
    redis_url: str
    shard: str = DEFAULT_SHARD
    key_prefix: str = DEFAULT_PREFIX
    allow_weak_durability: bool = False
    #: requests per second per tenant unless the registry sets another
    default_rate_limit: int = 5000
    #: worker threads per API process: commands block on Redis round trips, so the
    #: process needs about as many as it has requests in flight
    api_threads: int = 32
    #: Ed25519 private key (PEM file) that signs the shards' checkpoints; kept outside Redis
    #: (docs/audit.md). Unset: no checkpoints are written.
    checkpoint_key: str | None = None
    #: public keys (PEM files) that verify checkpoints: the current and every retired one
    checkpoint_public_keys: tuple[str, ...] = ()
    #: a checkpoint at least every this many events ...
    checkpoint_every_events: int = 1000
    #: ... and at the newest event once this many seconds passed since the last one
    checkpoint_every_seconds: float = 60.0
    #: where ``outcomes archive`` writes sealed log segments: a directory or an fsspec URL
    #: (docs/archive.md); readers find it through Redis, not through this setting
    archive_url: str = "archive"
    #: the worker archives what is older than this many days by itself (workers/archive.py);
    #: unset: only ``outcomes archive`` does
    archive_hot_days: float | None = None
    #: seconds between the worker's archive runs
    archive_interval: float = 3600.0
    #: each partitioned action follower's work is split in this many parts by the log
    #: entry's aggregate, each a unit with its own position and lease (workers/partitions.py)
    action_partitions: int = 1
    #: the shards new tenants are placed on (``services.registry.place_tenant``); empty: ``shard``.
    #: Over a Redis Cluster each shard is one hash slot, so tenants spread over its masters
    #: (docs/cluster.md); each shard needs a worker of its own (``REDIS_SHARD``)
    tenant_shards: tuple[str, ...] = ()

    @staticmethod
    def from_env() -> Settings:
        return Settings(
            redis_url=os.environ.get("REDIS_URL") or "redis://localhost:6379/0",
            shard=os.environ.get("REDIS_SHARD") or DEFAULT_SHARD,
            key_prefix=os.environ.get("REDIS_KEY_PREFIX") or DEFAULT_PREFIX,
            allow_weak_durability=os.environ.get("OUTCOMES_ALLOW_WEAK_DURABILITY", "") in {"1", "yes", "true"},
            default_rate_limit=int(os.environ.get("OUTCOMES_RATE_LIMIT_PER_SECOND", "5000")),
            api_threads=int(os.environ.get("OUTCOMES_API_THREADS", "32")),
            checkpoint_key=os.environ.get("OUTCOMES_CHECKPOINT_KEY") or None,
            checkpoint_public_keys=tuple(
                path for path in os.environ.get("OUTCOMES_CHECKPOINT_PUBLIC_KEYS", "").split(os.pathsep) if path
            ),
            checkpoint_every_events=int(os.environ.get("OUTCOMES_CHECKPOINT_EVERY_EVENTS", "1000")),
            checkpoint_every_seconds=float(os.environ.get("OUTCOMES_CHECKPOINT_EVERY_SECONDS", "60")),
            archive_url=os.environ.get("OUTCOMES_ARCHIVE_URL") or "archive",
            archive_hot_days=float(days) if (days := os.environ.get("OUTCOMES_ARCHIVE_HOT_DAYS")) else None,
            archive_interval=float(os.environ.get("OUTCOMES_ARCHIVE_INTERVAL", "3600")),
            action_partitions=int(os.environ.get("OUTCOMES_ACTION_PARTITIONS", "1")),
            tenant_shards=tuple(
                s.strip() for s in os.environ.get("OUTCOMES_TENANT_SHARDS", "").split(",") if s.strip()
            ),
        )

    def ledger_env(self) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "events.store",
            "REDIS_URL": self.redis_url,
            "REDIS_SHARD": self.shard,
            "REDIS_KEY_PREFIX": self.key_prefix,
        }
