"""How a domain event becomes a stored event, and back. Decided once; it lasts forever.

* Every event type is a frozen msgspec Struct registered under a **stable name** and a
  **schema version** (``@event_type("CallStarted", 1)``) -- never a Python module path.
  The stored event's topic is that name; the version sits in the stored envelope.
* An **upcaster** turns the stored body of version N into version N+1
  (``@upcaster("CallStarted", 1)``); old events are upcast on read, never rewritten.
* ``occurred_at`` (when the platform says it happened) and ``recorded_at`` (when we
  stored it) are separate fields of every event.
* **Personal data** fields (names, numbers, message bodies; declared per type in
  ``personal``) are encrypted with the key of the event's data subject, kept outside the
  log (``SubjectKeys``). Erasure destroys the key; the event, and the hash chain over
  its ciphertext, stay intact, and the field reads back as ``ERASED``.
* The state is msgpack: an envelope ``[schema version, body]``.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import msgspec
import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder

from events.keys import DEFAULT_PREFIX, subject_key

ERASED = "[erased]"
_SEALED = "enc1:"  # marks a personal field's ciphertext inside a str field


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every stored event."""

    originator_id: UUID
    originator_version: int
    #: when Outcome Ledger recorded the event (ours, UTC)
    recorded_at: datetime
    tenant_id: str
    #: who caused it: "<role>:<key id>", "agent:<id>", "supervisor:<id>" or "system"
    actor: str
    #: the API key (or "ingest") through which it came, when not the same as the actor
    key_id: str | None = None

    type_name: ClassVar[str] = ""
    type_version: ClassVar[int] = 1
    #: names of fields holding personal data (a str, or a tuple of str), encrypted per data subject
    personal: ClassVar[tuple[str, ...]] = ()

    def data_subject(self) -> str | None:
        """The data subject whose key encrypts this event's personal fields."""
        return None


E = TypeVar("E", bound=type[DomainEvent])

_TYPES: dict[str, type[DomainEvent]] = {}
_UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def event_type(name: str, version: int = 1) -> Callable[[E], E]:
    """Register an event Struct under a stable type name and schema version."""

    def register(cls: E) -> E:
        if name in _TYPES and _TYPES[name] is not cls:
            raise ValueError(f"event type name {name!r} is already registered")
        cls.type_name = name
        cls.type_version = version
        _TYPES[name] = cls
        return cls

    return register


def upcaster(name: str, from_version: int) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Any]:
    """Register a function turning a stored body of ``from_version`` into ``from_version + 1``."""

    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        _UPCASTERS[(name, from_version)] = fn
        return fn

    return register


def registered_types() -> dict[str, type[DomainEvent]]:
    return dict(_TYPES)


def registered_upcasters() -> dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]:
    """(type name, from version) -> upcaster."""
    return dict(_UPCASTERS)


def resolve(name: str) -> type[DomainEvent]:
    try:
        return _TYPES[name]
    except KeyError:
        raise LookupError(f"unknown event type {name!r}") from None


def now() -> datetime:
    return datetime.now(UTC)


class _Envelope(msgspec.Struct, array_like=True):
    v: int
    body: msgspec.Raw


_encoder = msgspec.msgpack.Encoder()
_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)
_dict_decoder = msgspec.msgpack.Decoder(dict[str, Any])
#: type name -> (the type, a decoder of the whole envelope ``[version, body]`` as that type):
#: one msgspec call per event instead of the envelope's and then the body's (half the cost)
_stored_decoders: dict[str, tuple[type[DomainEvent], msgspec.msgpack.Decoder[tuple[int, Any]]]] = {}


def _stored_decoder(topic: str) -> tuple[type[DomainEvent], msgspec.msgpack.Decoder[tuple[int, Any]]]:
    found = _stored_decoders.get(topic)
    if found is None:
        cls = resolve(topic)
        found = _stored_decoders[topic] = (cls, msgspec.msgpack.Decoder(tuple[int, cls]))  # type: ignore[valid-type]
    return found


class _Recorded(msgspec.Struct):
    recorded_at: datetime


_recorded_decoder = msgspec.msgpack.Decoder(_Recorded)


def recorded_at(state: bytes) -> datetime:
    """When a stored event was recorded, read from its state without decoding the rest
    (every schema version of every type has the field: it is on ``DomainEvent``)."""
    return _recorded_decoder.decode(_envelope_decoder.decode(state).body).recorded_at


def upcast(name: str, version: int, body: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored body up to the registered version, one step at a time."""
    target = resolve(name).type_version
    while version < target:
        try:
            body = _UPCASTERS[(name, version)](body)
        except KeyError:
            raise LookupError(f"no upcaster for {name} v{version}") from None
        version += 1
    return body


#: how long a process keeps a subject's key after reading it (``OUTCOMES_SUBJECT_KEY_TTL``)
SUBJECT_KEY_TTL_SECONDS = float(os.environ.get("OUTCOMES_SUBJECT_KEY_TTL", "60"))


class SubjectKeys:
    """Per-data-subject AES-256 keys, one Redis key each, outside the log.

    Keys are cached in-process for ``ttl`` seconds (at most ``max_cached`` of them), so a
    worker reading the same contact's events again reads its key once. ``destroy`` deletes
    the key (crypto-shredding) and this process's copy; another process's copy lapses
    within ``ttl`` -- an erasure is complete for every process ``ttl`` seconds after it
    (docs/architecture.md). ``forget_cached`` drops a copy at once.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        *,
        ttl: float = SUBJECT_KEY_TTL_SECONDS,
        max_cached: int = 100_000,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.max_cached = max_cached
        #: (tenant, subject) -> (key, monotonic time it lapses)
        self._cache: dict[tuple[str, str], tuple[bytes, float]] = {}

    def name(self, tenant: str, subject: str) -> str:
        return subject_key(self.prefix, tenant, subject)

    def cached(self, tenant: str, subject: str) -> bool:
        """Whether this process holds the subject's key now (no round trip needed)."""
        found = self._cache.get((tenant, subject))
        return found is not None and found[1] > time.monotonic()

    def prime(self, tenant: str, subject: str, key: bytes | None) -> None:
        """Keep a key read ahead (in the round trip of the events it opens), as ``key_for`` would."""
        if key is not None:
            self._remember(tenant, subject, key)

    def key_for(self, tenant: str, subject: str, *, create: bool) -> bytes | None:
        cached = self._cache.get((tenant, subject))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        name = self.name(tenant, subject)
        if create:
            # SET NX then GET, in one round trip: two racing writers end up with the same key
            pipe = self.client.pipeline(transaction=False)
            pipe.set(name, AESGCM.generate_key(bit_length=256), nx=True)
            pipe.get(name)
            key = pipe.execute()[1]
        else:
            key = self.client.get(name)
        if key is None:
            return None
        return self._remember(tenant, subject, bytes(key))  # type: ignore[arg-type]

    def _remember(self, tenant: str, subject: str, key: bytes) -> bytes:
        if len(self._cache) >= self.max_cached:
            self._cache.clear()  # rare; cheaper than tracking recency on every read
        self._cache[(tenant, subject)] = (key, time.monotonic() + self.ttl)
        return key

    def destroy(self, tenant: str, subject: str) -> None:
        self.client.delete(subject_key(self.prefix, tenant, subject))
        self._cache.pop((tenant, subject), None)

    def forget_cached(self, tenant: str, subject: str) -> None:
        self._cache.pop((tenant, subject), None)


def seal(key: bytes, plaintext: str, context: bytes) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), context)
    return _SEALED + base64.b64encode(nonce + sealed).decode()


def unseal(key: bytes | None, value: str, context: bytes) -> str:
    if not value.startswith(_SEALED):
        return value
    if key is None:
        return ERASED
    raw = base64.b64decode(value[len(_SEALED) :])
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], context).decode()
    except InvalidTag:
        # sealed under a key since destroyed: the subject was erased and later given a new
        # key (new data for the same id); the old text is as gone as with no key at all
        return ERASED


def _map_text(value: str | tuple[str, ...], fn: Callable[[str], str]) -> str | tuple[str, ...]:
    """Personal fields are a text or a tuple of texts (e.g. a contact's numbers)."""
    return fn(value) if isinstance(value, str) else tuple(fn(v) for v in value)


def _is_sealed(value: object) -> bool:
    if isinstance(value, str):
        return value.startswith(_SEALED)
    return isinstance(value, tuple) and any(isinstance(v, str) and v.startswith(_SEALED) for v in value)


def stored_body(topic: str, state: bytes) -> dict[str, Any]:
    """A stored event's body as a dict, upcast, personal fields left sealed: for scanning the
    log for a subject's events without reading anyone's key (services/erasure.py)."""
    envelope = _envelope_decoder.decode(state)
    return upcast(topic, envelope.v, _dict_decoder.decode(envelope.body))


class StructMapper(Mapper[UUID]):
    """eventsourcing Mapper for msgspec event Structs (see module docstring).

    The transcoder is not used: msgspec encodes. Personal fields are sealed with the
    subject's key when ``keys`` is given; without it they are refused, so personal data
    can never reach the log in clear.
    """

    def __init__(
        self,
        transcoder: Transcoder | None = None,
        compressor: Any = None,
        cipher: Any = None,
        keys: SubjectKeys | None = None,
    ) -> None:
        super().__init__(transcoder=transcoder, compressor=compressor, cipher=cipher)  # type: ignore[arg-type]
        self.keys = keys

    def _context(self, event: DomainEvent | dict[str, Any], subject: str) -> bytes:
        tenant = event.tenant_id if isinstance(event, DomainEvent) else event["tenant_id"]
        return f"{tenant}/{subject}".encode()

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: DomainEvent = domain_event
        cls = type(event)
        if not cls.type_name:
            raise TypeError(f"{cls.__name__} is not a registered event type")
        subject = event.data_subject()
        if cls.personal and subject is not None:
            values = {f: getattr(event, f) for f in cls.personal if getattr(event, f) is not None}
            if values:
                if self.keys is None:
                    raise RuntimeError(f"{cls.type_name} carries personal data but no subject key store is set")
                key = self.keys.key_for(event.tenant_id, subject, create=True)
                assert key is not None
                context = self._context(event, subject)
                event = msgspec.structs.replace(
                    event, **{f: _map_text(v, lambda t: seal(key, t, context)) for f, v in values.items()}
                )
        state = _encoder.encode(_Envelope(cls.type_version, msgspec.Raw(_encoder.encode(event))))
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=cls.type_name,
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.decode(stored_event.topic, stored_event.state)

    def decode(self, topic: str, state: bytes, *, unseal: bool = True) -> DomainEvent:
        """The event; ``unseal=False`` leaves personal fields sealed, for readers that never
        show them (the read models), which then fetch no subject key from Redis."""
        cls, decoder = _stored_decoder(topic)
        try:
            version, event = decoder.decode(state)
        except msgspec.ValidationError:
            version = -1  # an older schema's body that no longer fits the type: upcast below
        if version != cls.type_version:
            envelope = _envelope_decoder.decode(state)
            body = upcast(topic, envelope.v, _dict_decoder.decode(envelope.body))
            event = msgspec.convert(body, cls)
        return self._unseal(event) if unseal and cls.personal else event

    def _unseal(self, event: DomainEvent) -> DomainEvent:
        cls = type(event)
        subject = event.data_subject()
        if not cls.personal or subject is None:
            return event
        sealed = {f: getattr(event, f) for f in cls.personal if _is_sealed(getattr(event, f))}
        if not sealed:
            return event
        key = self.keys.key_for(event.tenant_id, subject, create=False) if self.keys else None
        context = self._context(event, subject)
        return msgspec.structs.replace(
            event, **{f: _map_text(v, lambda t: unseal(key, t, context)) for f, v in sealed.items()}
        )
