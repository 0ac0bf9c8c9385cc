"""Erasing a contact (PRODUCT.md §5 "Erasure"; docs/erasure.md): ``outcomes contact erase`` and
``POST /v1/contacts/{id}/erase``.

The log is never rewritten. The contact's personal fields in it are sealed with the contact's
subject key (events/codec.py); destroying that key (crypto-shredding) turns every one of them
into ``[erased]`` for every reader, while the ciphertext -- and the hash chains and signed
checkpoints over it -- stay as they were, so ``outcomes verify`` still passes. What sits
outside the log is purged: ingest and rejection entries, dead letters, stored idempotency
results, the published contact-list and flow stream entries. The numbers stay suppressed as
keyed hashes (services/suppressions.py), and the erasure is an event, ``ContactErased``,
recorded once however often it is asked for.

The steps, in an order that a crash at any point and a second run complete:

1. find the contact's footprint in the log: every aggregate whose events name the contact
   (its record, its dialing record, its calls and conversations, its SMS) and, read with the
   key while it still exists, the personal texts they hold (numbers, name, message bodies);
2. suppress the numbers (the hashes) and record ``ContactErased`` with them;
3. purge what sits outside the log, matched by the footprint's ids and texts;
4. destroy the subject keys (the contact's, and those of its calls and conversations).

A second run finds no text to read (the key is gone) but the same ids, purges whatever
arrived meanwhile, and records nothing new.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast
from uuid import UUID

import msgspec
import redis

from events.archive import entries_at, log_entries
from events.codec import ERASED, DomainEvent, StructMapper, registered_types, stored_body
from events.compact import aggregate_indexes
from events.keys import IngestKeys, ShardKeys, decode_originator_id, subject_key
from events.store import RedisFactory, xrange
from events.types import CallStarted, ConversationStarted, MessageRecorded
from services.dialing import STREAM as CONTACT_LIST_STREAM
from services.errors import NotFound
from services.ledger import Ledger
from services.rules import Context

#: the fields of events that hold a number (E.164), personal or not
NUMBER_FIELDS = ("numbers", "contact_number", "to_number", "number")
#: entry fields naming an interaction or a contact, in the streams outside the log
ID_FIELDS = (b"target", b"contact_id", b"call_id", b"conversation_id", b"interaction_id")
#: shorter texts would match by chance (a name "Al" inside any word); numbers and names are longer
MIN_TEXT = 4
BATCH = 1000


def _contact_types() -> frozenset[bytes]:
    """The stored types that may name a contact (they have a ``contact_id``)."""
    return frozenset(name.encode() for name, cls in registered_types().items() if "contact_id" in cls.__struct_fields__)


@dataclass
class Footprint:
    """What the log says about one contact."""

    contact_id: str
    #: stored originator ids of the aggregates whose events name the contact
    aggregates: set[str] = field(default_factory=set)
    #: the notification ids of all their events
    nids: set[int] = field(default_factory=set)
    #: external ids that name the contact or its interactions in entries outside the log
    ids: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    conversations: set[str] = field(default_factory=set)
    #: personal texts read back from the log (empty once the key is destroyed)
    texts: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)

    def add_event(self, event: DomainEvent) -> None:
        if isinstance(event, CallStarted):
            self.calls.add(event.call_id)
        if isinstance(event, ConversationStarted | MessageRecorded):
            self.conversations.add(event.conversation_id)
        for name in type(event).personal:
            value = getattr(event, name)
            values = (value,) if isinstance(value, str) else tuple(value or ())
            kept = {v for v in values if v and v != ERASED}
            self.texts |= kept
            if name in NUMBER_FIELDS:
                self.numbers |= kept
        for name in NUMBER_FIELDS:  # a number that is not sealed (none today) is one all the same
            value = getattr(event, name, None)
            if isinstance(value, str) and value != ERASED:
                self.numbers.add(value)

    def mentions(self, fields: dict[bytes, bytes]) -> bool:
        """Does a stream entry (or a string value, as ``{b"": value}``) carry the contact?"""
        for name in ID_FIELDS:
            value = fields.get(name)
            if value is not None and value.decode(errors="replace") in self.ids:
                return True
        body = fields.get(b"body")
        if body is not None and _names_any(body, self.ids):
            return True
        texts = [t.encode() for t in self.texts if len(t) >= MIN_TEXT]
        return any(t in value for value in fields.values() for t in texts)


def _names_any(body: bytes, ids: set[str]) -> bool:
    """A JSON body (an ingest entry's) whose contact or interaction id is one of ``ids``."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    if not isinstance(parsed, dict):
        return False
    return any(isinstance(parsed.get(k.decode()), str) and parsed[k.decode()] in ids for k in ID_FIELDS)


def footprint(ledger: Ledger, tenant_id: str, contact_id: str) -> Footprint:
    """Walk the shard's log for the contact's aggregates, then read their events.

    Bodies are read sealed (``stored_body``): the walk reads no one's key. Erasure is rare;
    the walk is linear in the shard's log (docs/erasure.md)."""
    keys, client = _keys(ledger), _client(ledger)
    found = Footprint(contact_id, ids={contact_id})
    wanted, tenant = _contact_types(), tenant_id.encode()
    for _eid, f in log_entries(client, keys, count=BATCH):  # archive then Redis
        if (
            f.get(b"n") == tenant
            and f[b"t"] in wanted
            and stored_body(f[b"t"].decode(), f[b"s"]).get("contact_id") == contact_id
        ):
            found.aggregates.add(f[b"o"].decode())
    for index in aggregate_indexes(client, keys, sorted(found.aggregates)):
        found.nids |= {position for _, position in index}
    mapper = cast(StructMapper, ledger.mapper)
    for f in entries_at(client, keys, sorted(found.nids)).values():
        found.add_event(mapper.decode(f[b"t"].decode(), f[b"s"]))
    found.ids |= found.calls | found.conversations | {str(decode_originator_id(a)) for a in found.aggregates}
    return found


# -- purging what sits outside the log --------------------------------------------------------------


def purge_stream(client: redis.Redis, stream: str, doomed: Callable[[bytes, dict[bytes, bytes]], bool]) -> list[bytes]:
    """Delete the stream's entries ``doomed`` picks, and acknowledge them in every consumer
    group (a deleted entry must not stay pending). Returns their ids."""
    deleted: list[bytes] = []
    position = "-"
    while entries := xrange(client, stream, position, "+", BATCH):
        deleted += [eid for eid, f in entries if doomed(eid, f)]
        position = "(" + entries[-1][0].decode()
    if deleted:
        groups = client.xinfo_groups(stream)
        pipe = client.pipeline(transaction=False)
        for group in groups:
            pipe.xack(stream, group["name"], *deleted)
        pipe.xdel(stream, *deleted)
        pipe.execute()
    return deleted


def _purge_idempotency(client: redis.Redis, keys: ShardKeys, tenant_id: str, found: Footprint) -> int:
    """The stored results of requests that wrote the contact's events, or name it."""
    purged = 0
    for name in client.scan_iter(match=keys.idempotency(tenant_id, "*"), count=BATCH):
        value = cast(bytes | None, client.get(name))
        if value is None:
            continue
        try:
            _digest, receipt, first, count = msgspec.msgpack.decode(value)
            wrote = set(range(int(first), int(first) + int(count)))
            named = msgspec.json.decode(receipt).get("id") if receipt else None
        except (msgspec.DecodeError, ValueError, TypeError, AttributeError):
            wrote, named = set(), None
        if wrote & found.nids or named in found.ids or found.mentions({b"": name, b"v": value}):
            purged += int(client.delete(name))
    return purged


def purge_outside_log(ledger: Ledger, tenant_id: str, found: Footprint) -> dict[str, int]:
    """Remove the contact from every store outside the log; counts per store."""
    keys, client = _keys(ledger), _client(ledger)
    ingest = IngestKeys(tenant_id, keys.base_prefix)
    gone_inputs = purge_stream(client, ingest.ingest, lambda _id, f: found.mentions(f))
    inputs = {i.decode() for i in gone_inputs}
    rejected = purge_stream(
        client, ingest.rejections, lambda _id, f: f.get(b"input", b"").decode() in inputs or found.mentions(f)
    )
    dead = purge_stream(
        client, keys.dead_letters, lambda _id, f: int(f.get(b"nid", b"0")) in found.nids or found.mentions(f)
    )
    published = purge_stream(client, keys.published(CONTACT_LIST_STREAM, tenant_id), lambda _id, f: found.mentions(f))
    flows = 0
    for stream in client.scan_iter(match=keys.flow(tenant_id, "*"), count=BATCH):
        flows += len(purge_stream(client, cast(bytes, stream).decode(), lambda _id, f: found.mentions(f)))
    return {
        "ingest": len(gone_inputs),
        "rejections": len(rejected),
        "dead_letters": len(dead),
        "idempotency_results": _purge_idempotency(client, keys, tenant_id, found),
        "contact_list_changes": len(published),
        "flow_entries": flows,
    }


# -- the command ------------------------------------------------------------------------------------


class Erasure(msgspec.Struct, frozen=True, kw_only=True):
    """What one run of the erasure did."""

    contact_id: str
    #: this run recorded ``ContactErased``; False: it was recorded before
    recorded: bool
    #: numbers suppressed by this run (as keyed hashes; none on a second run)
    suppressed_numbers: int
    #: the subject keys destroyed
    keys_destroyed: int
    #: entries removed from each store outside the log
    purged: dict[str, int]


def erase_contact(ledger: Ledger, ctx: Context, contact_id: str) -> Erasure:
    """Erase the contact (module docstring); NotFound when the log never named it."""
    tenant_id = ctx.tenant_id
    found = footprint(ledger, tenant_id, contact_id)
    if not found.aggregates:
        raise NotFound(f"contact {contact_id!r} not found")
    suppressed = ledger.suppressions.suppress(tenant_id, found.numbers)
    receipt = ledger.erase_contact(ctx, contact_id=contact_id, suppressed=suppressed)
    purged = purge_outside_log(ledger, tenant_id, found)
    subjects = [f"contact:{contact_id}", *(f"call:{c}" for c in found.calls)]
    subjects += [f"conversation:{c}" for c in found.conversations]
    destroyed = _destroy_keys(ledger, tenant_id, subjects)
    _forget_cached(ledger, found.aggregates)
    return Erasure(
        contact_id=contact_id,
        recorded=bool(receipt.events),
        suppressed_numbers=len(suppressed),
        keys_destroyed=destroyed,
        purged=purged,
    )


def _destroy_keys(ledger: Ledger, tenant_id: str, subjects: list[str]) -> int:
    """Crypto-shredding: the subjects' keys deleted, here and in this process's cache (another
    process's cached copy lapses within ``OUTCOMES_SUBJECT_KEY_TTL``: docs/erasure.md)."""
    keys = ledger.subject_keys
    destroyed = int(_client(ledger).delete(*(subject_key(keys.prefix, tenant_id, s) for s in subjects)))
    for subject in subjects:
        keys.forget_cached(tenant_id, subject)
    return destroyed


def _forget_cached(ledger: Ledger, aggregates: Iterable[str]) -> None:
    """This process's cached states of the contact's aggregates held its texts in clear."""
    cache = ledger.repository.cache
    if cache is None:
        return
    for aggregate in aggregates:
        originator = decode_originator_id(aggregate)
        if isinstance(originator, UUID):
            with contextlib.suppress(KeyError):
                cache.get(originator, evict=True)


def _keys(ledger: Ledger) -> ShardKeys:
    assert isinstance(ledger.factory, RedisFactory)
    return ledger.factory.connection.keys


def _client(ledger: Ledger) -> redis.Redis:
    assert isinstance(ledger.factory, RedisFactory)
    return ledger.factory.client
