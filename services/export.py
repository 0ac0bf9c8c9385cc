"""History export for auditors (PRODUCT.md §5; the line schema is in docs/audit.md).

Two readings of the log, both as JSON lines in log order and both streamed in batches
(nothing holds a whole history in memory):

* one aggregate's history -- a call, conversation, contact, the catalogue, ... named as the
  platform names it (kind + external id, in the tenant's namespace): the aggregate's index
  (version -> log position) then the log entries, resumable ``after`` a version;
* a tenant's whole log -- the per-tenant index stream of log positions, then the entries,
  resumable ``after`` a log position.

Each line is the stored event as recorded: its stable type name and schema version, its
aggregate and version, its position and both chain hashes, and the event's fields (upcast to
the registered version). Personal fields are decrypted with the data subject's key when it
exists and read ``[erased]`` when it does not (``erased_fields`` names them: the hook for
erasure, issue 7); a subject key is read fresh for each export, never from a process cache,
so an erased subject is never shown in clear. Signing secrets are never exported.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, get_args

import msgspec
import redis

from events.archive import Archive, entries_at
from events.codec import ERASED, DomainEvent, StructMapper, SubjectKeys
from events.compact import Index, aggregate_index
from events.keys import ShardKeys, encode_originator_id
from events.store import xrange
from services.errors import BadRequest, NotFound
from services.interactions import aggregate_id

#: the aggregate kinds a history names (the ``kind`` of ``services.interactions.aggregate_id``)
AggregateKind = Literal[
    "call",
    "conversation",
    "contact",
    "catalogue",
    "sms",
    "follow-up",
    "quota",
    "dialing",
    "contact-list",
    "company-dialing",
    "webhook-delivery",
]
AGGREGATE_KINDS: tuple[str, ...] = get_args(AggregateKind)
#: kinds with one aggregate per tenant: no external id
SINGLETONS = frozenset({"catalogue"})
WITHHELD = "[withheld]"
#: fields never exported in clear, whoever asks (credentials, not facts)
SECRET_FIELDS = frozenset({"secret"})
BATCH = 500


class ExportedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an export (docs/audit.md)."""

    #: the event's position on its shard's log (notification id): the tenant log's cursor
    position: int
    #: the stable event type name and the schema version the fields are given in
    type: str
    schema_version: int
    #: the aggregate (originator) and its version: an aggregate history's cursor
    aggregate_id: str
    version: int
    #: per-aggregate and along-the-log hash chains (sha1 hex), as stored
    hash: str
    chain: str
    #: personal fields shown as ``[erased]`` (the subject's key is gone)
    erased: list[str]
    #: the event's fields, JSON
    event: msgspec.Raw


def erased_fields(event: DomainEvent) -> list[str]:
    """The personal fields of ``event`` that read back erased.

    The erasure hook (issue 7): erasure destroys the subject's key (``SubjectKeys.destroy``)
    and the codec then reads each sealed field as ``ERASED``; if erasure comes to record more
    (who erased, when), this is the one place an export learns of it.
    """
    found = []
    for name in type(event).personal:
        value = getattr(event, name)
        if value == ERASED or (isinstance(value, tuple) and ERASED in value):
            found.append(name)
    return found


def withhold_secrets(event: DomainEvent) -> DomainEvent:
    present = {name: WITHHELD for name in SECRET_FIELDS if getattr(event, name, None) is not None}
    return msgspec.structs.replace(event, **present) if present else event


def line(position: int, fields: dict[bytes, bytes], mapper: StructMapper) -> ExportedEvent:
    event = mapper.decode(fields[b"t"].decode(), fields[b"s"])
    return ExportedEvent(
        position=position,
        type=type(event).type_name,
        schema_version=type(event).type_version,
        aggregate_id=str(event.originator_id),
        version=event.originator_version,
        hash=fields[b"h"].decode(),
        chain=fields[b"c"].decode(),
        erased=erased_fields(event),
        event=msgspec.Raw(msgspec.json.encode(withhold_secrets(event))),
    )


def check_aggregate(kind: str, external_id: str | None) -> str:
    """The external id a history names ("" for a singleton kind), or a 400 naming the problem."""
    if kind in SINGLETONS:
        if external_id:
            raise BadRequest(f"the {kind} is one per tenant: give no id")
        return ""
    if not external_id:
        raise BadRequest(f"a {kind} history needs the {kind}'s id (parameter id)")
    return external_id


class Exporter:
    """Reads one tenant's history from its shard, in batches."""

    def __init__(self, client: redis.Redis, keys: ShardKeys, tenant: str, batch: int = BATCH) -> None:
        self.client = client
        self.keys = keys
        self.tenant = tenant
        self.batch = batch
        # a fresh key store per export: an erased subject's key is never served from a cache
        self.mapper = StructMapper(keys=SubjectKeys(client, keys.base_prefix))

    def entries(self, positions: Sequence[int]) -> list[tuple[int, dict[bytes, bytes]]]:
        """The log entries at these positions (archive then Redis, one round trip for Redis)."""
        found = entries_at(self.client, self.keys, positions)
        return [(n, found[n]) for n in positions if n in found]

    def _lines(self, positions: Sequence[int]) -> list[ExportedEvent]:
        return [line(n, fields, self.mapper) for n, fields in self.entries(positions)]

    def history(self, kind: str, external_id: str, after: int = 0, limit: int | None = None) -> Iterator[ExportedEvent]:
        """The aggregate's events after version ``after``; NotFound (before the first line) for
        an aggregate the tenant does not have."""
        stored = encode_originator_id(aggregate_id(self.tenant, kind, external_id))
        index = aggregate_index(self.client, self.keys, stored)  # its set, or its compact entry
        if not index:
            raise NotFound(f"{kind} {external_id!r} not found" if external_id else f"no {kind} recorded")
        return self._history(index, after, limit)

    def _history(self, index: Index, after: int, limit: int | None) -> Iterator[ExportedEvent]:
        def versions(after: int, count: int) -> list[tuple[int, int]]:
            return [(position, version) for version, position in index if version > after][:count]

        return self._paged(versions, after, limit)

    def log(self, after: int = 0, limit: int | None = None) -> Iterator[ExportedEvent]:
        """The tenant's events after log position ``after``, in log order."""
        index = self.keys.tenant_index(self.tenant)
        archive = Archive.of(self.client, self.keys)
        archived = archive.tenant_entries(self.tenant, after) if archive else iter(())

        def positions(after: int, count: int) -> list[tuple[int, int]]:
            # the tenant's archived positions first (the archive's tenant column), then its index
            found = [n for n, _ in itertools.islice(archived, count)]
            if not found:
                entries = xrange(self.client, index, f"({max(after, archive.through if archive else 0)}-0", "+", count)
                found = [int(entry_id.split(b"-")[0]) for entry_id, _ in entries]
            return [(n, n) for n in found]

        return self._paged(positions, after, limit)

    def _paged(
        self, read: Callable[[int, int], list[tuple[int, int]]], after: int, limit: int | None
    ) -> Iterator[ExportedEvent]:
        """Lines a batch at a time: ``read(after, count)`` gives (log position, cursor) pairs."""
        left = limit
        while left is None or left > 0:
            found = read(after, self.batch if left is None else min(self.batch, left))
            if not found:
                return
            yield from self._lines([position for position, _ in found])
            after = found[-1][1]
            left = None if left is None else left - len(found)


def ndjson(lines: Iterator[ExportedEvent], per_chunk: int = BATCH) -> Iterator[bytes]:
    """JSON lines, a chunk of lines at a time."""
    encoder = msgspec.json.Encoder()
    chunk = bytearray()
    count = 0
    for item in lines:
        chunk += encoder.encode(item)
        chunk += b"\n"
        count += 1
        if count == per_chunk:
            yield bytes(chunk)
            chunk.clear()
            count = 0
    if chunk:
        yield bytes(chunk)
