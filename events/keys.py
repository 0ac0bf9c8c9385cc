"""The Redis keyspace of Outcome Ledger: one place that names every key.

A shard is one eventsourcing application log. Every key of a shard carries the shard's
hash tag (``{s00}``), so the whole shard lives in one Redis Cluster slot and one Lua
script may touch any of its keys. The registry (tenants -> shards, API keys) has a hash
tag of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

DEFAULT_PREFIX = "ol"
DEFAULT_SHARD = "s00"


def encode_originator_id(originator_id: UUID | str) -> str:
    """UUIDs are stored in canonical form; plain string ids get a ``~`` marker."""
    if isinstance(originator_id, UUID):
        return str(originator_id)
    return "~" + originator_id


def decode_originator_id(stored: str) -> UUID | str:
    if stored.startswith("~"):
        return stored[1:]
    return UUID(stored)


class ShardKeys:
    """Names of the keys of one shard."""

    def __init__(
        self, shard: str = DEFAULT_SHARD, prefix: str = DEFAULT_PREFIX, generations: Mapping[str, str] | None = None
    ) -> None:
        if not shard or any(c in shard for c in "{}: \n"):
            raise ValueError(f"invalid shard name {shard!r}")
        self.shard = shard
        self.base_prefix = prefix
        self.prefix = f"{prefix}:{{{shard}}}:"
        #: the application log: one stream entry per event, id "<notification id>-0"
        self.log = self.prefix + "log"
        #: hash: n = last notification id, c = head of the log hash chain
        self.head = self.prefix + "head"
        #: hash: application (or view) name -> last processed notification id
        self.tracking = self.prefix + "tracking"
        #: prefix of per-aggregate streams of the plain aggregate recorders (snapshots)
        self.plain_prefix = self.prefix + "p:"
        #: sorted set of due timers (score = due time in ms)
        self.timers = self.prefix + "timers"
        #: hash: action follower -> the number of partitions its positions are kept in
        #: (workers/partitions.py; absent: one, under the follower's own name)
        self.action_partitions = self.prefix + "action-partitions"
        #: stream: log entries a worker gave up on, with the reason (``outcomes dlq``)
        self.dead_letters = self.prefix + "dead-letters"
        #: hash: "<worker>:<notification id>" -> failed attempts so far
        self.attempts = self.prefix + "attempts"
        #: stream: signed checkpoints of the log chain, id "<notification id>-0" (docs/audit.md)
        self.checkpoints = self.prefix + "checkpoints"
        #: hash: view name -> its current generation (absent: the first, unnumbered one);
        #: "<view>~next" -> the generation a replay is building; "<view>~seq" -> last one numbered
        self.view_generations = self.prefix + "views"
        #: hash: through = the last log position moved to the archive tier, url = where the
        #: archive lives (events/archive.py); absent: nothing archived
        self.archived = self.prefix + "archived"
        #: hash: originator id -> "<notification id> <hash>" of an aggregate's newest event
        #: once that event is archived (the append script chains the next event to it), until
        #: the aggregate is compacted (``compact_bucket``)
        self.archived_heads = self.prefix + "archived-heads"
        #: the view generations these names resolve to (``projections.base.current``)
        self.generations: Mapping[str, str] = dict(generations or {})

    def aggregate_index(self, originator_id: UUID | str) -> str:
        """Sorted set: score = aggregate version, member = notification id."""
        return self.prefix + "a:" + encode_originator_id(originator_id)

    def compact_bucket(self, digits: str) -> str:
        """Hash: originator id -> compact index entry of a wholly archived aggregate whose
        sha1 starts with these hex digits (events/compact.py; the Lua scripts build the name)."""
        return self.prefix + "ah:" + digits

    def tenant_index(self, tenant: str) -> str:
        """Stream of the tenant's log positions (ids "<notification id>-0")."""
        return self.prefix + "t:" + tenant

    def idempotency(self, tenant: str, key: str) -> str:
        return self.prefix + "idem:" + tenant + ":" + key

    def plain_stream(self, purpose: str, originator_id: UUID | str) -> str:
        return self.plain_prefix + purpose + ":" + encode_originator_id(originator_id)

    def flow(self, tenant: str, flow: str) -> str:
        """Stream of a flow's hand-overs and the messages it takes over (docs/actions.md)."""
        return self.prefix + "flow:" + tenant + ":" + flow

    def published(self, stream: str, tenant: str) -> str:
        """A stream published to third parties (e.g. dialers' contact-list changes), per tenant."""
        return self.prefix + "pub:" + stream + ":" + tenant

    def lease(self, worker: str) -> str:
        """Which worker process runs a log follower now (workers/leases.py)."""
        return self.prefix + "lease:" + worker

    def lease_wanted(self, worker: str) -> str:
        """Set by the follower's home process while another holds its lease: hand it back."""
        return self.prefix + "lease-wanted:" + worker

    def suppressed(self, tenant: str) -> str:
        """Set of keyed hashes of erased contacts' numbers: never called or texted (docs/erasure.md)."""
        return self.prefix + "suppressed:" + tenant

    def view(self, name: str) -> str:
        """Prefix of a read model's keys in its generation; a view lives in its shard's slot."""
        return self.prefix + "v:" + self.view_position(name) + ":"

    def view_position(self, name: str) -> str:
        """The view's field in ``tracking`` (and its key infix): ``<name>`` or ``<name>@<generation>``."""
        generation = self.generations.get(name, "")
        return f"{name}@{generation}" if generation else name

    def with_generation(self, name: str, generation: str) -> ShardKeys:
        """The same shard's names with one view in another generation (a replay builds there)."""
        return ShardKeys(self.shard, self.base_prefix, {**self.generations, name: generation})


class RegistryKeys:
    """The small registry: tenants -> shards, API key hashes, subject keys."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = f"{prefix}:{{reg}}:"
        #: hash: tenant id -> shard name
        self.tenant_shards = self.prefix + "tenant-shards"
        #: hash: tenant id -> msgpack tenant record
        self.tenants = self.prefix + "tenants"
        #: hash: sha256(api key) -> msgpack key record
        self.api_keys = self.prefix + "api-keys"
        #: hash: tenant id -> requests per second
        self.rate_limits = self.prefix + "rate-limits"
        #: hash: tenant id -> the secret keying the hashes of suppressed numbers (docs/erasure.md)
        self.suppression_secrets = self.prefix + "suppression-secrets"


class IngestKeys:
    """A tenant's ingest and rejections streams: a hash tag of their own, so the tenant's
    Redis ACL user can be given exactly these keys and nothing else."""

    def __init__(self, tenant: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.pattern = f"{prefix}:{{in:{tenant}}}:*"
        self.ingest = f"{prefix}:{{in:{tenant}}}:ingest"
        self.rejections = f"{prefix}:{{in:{tenant}}}:rejections"


def subject_key(prefix: str, tenant: str, subject: str) -> str:
    """Where a data subject's encryption key lives: outside the log, one key each,
    so erasure deletes exactly one Redis key."""
    return f"{prefix}:{{pii:{tenant}}}:{subject}"
