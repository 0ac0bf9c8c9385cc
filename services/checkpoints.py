"""Signed checkpoints of a shard's log chain (docs/audit.md).

A checkpoint says "at log position P the log chain hash was C, after N events", signed
with an Ed25519 key that is kept outside Redis. Someone who can write to Redis can
recompute every sha1 of the chains after editing an event; they cannot sign the new head.
``outcomes verify`` checks the signatures with the public keys and that the log at each
checkpoint's position still has that chain hash.

Checkpoints live on the shard's ``checkpoints`` stream, entry id ``<position>-0``: a stream
only accepts increasing ids, so two signers racing on one shard cannot write one twice.
The signer walks the log from its last checkpoint and signs only a chain it has recomputed
link by link itself, so a checkpoint never vouches for a log already broken.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import redis
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from events.archive import read_log
from events.chain import ZERO, link_hash
from events.keys import ShardKeys
from events.store import xrange
from services.config import Settings

log = logging.getLogger("outcomes.checkpoints")

#: domain separation: a signature over a checkpoint is good for nothing else
CONTEXT = "outcome-ledger checkpoint v1"


class Checkpoint(msgspec.Struct, frozen=True):
    shard: str
    #: log position (notification id) of the newest event covered
    position: int
    #: the log chain hash ``c`` at that position
    chain: str
    #: how many events the log held up to that position
    count: int
    #: when it was signed (UTC, ISO 8601)
    at: str
    #: which key signed it (``key_id`` of its public key)
    key_id: str
    #: Ed25519 signature of ``message()``, hex
    signature: str

    def message(self) -> bytes:
        return signed_message(self.shard, self.position, self.chain, self.count, self.at, self.key_id)

    def fields(self) -> dict[str, str]:
        return {
            "shard": self.shard,
            "n": str(self.position),
            "c": self.chain,
            "count": str(self.count),
            "at": self.at,
            "key": self.key_id,
            "sig": self.signature,
        }

    @staticmethod
    def from_fields(fields: dict[bytes, bytes]) -> Checkpoint:
        """A stored checkpoint; ValueError when a field is missing or malformed."""
        try:
            text = {k.decode(): v.decode() for k, v in fields.items()}
            return Checkpoint(
                shard=text["shard"],
                position=int(text["n"]),
                chain=text["c"],
                count=int(text["count"]),
                at=text["at"],
                key_id=text["key"],
                signature=text["sig"],
            )
        except (KeyError, ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"malformed checkpoint entry: {error}") from None


def signed_message(shard: str, position: int, chain: str, count: int, at: str, key_id: str) -> bytes:
    return "\n".join((CONTEXT, shard, str(position), chain, str(count), at, key_id)).encode()


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key: sha256 of its raw 32 bytes, 16 hex digits."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_key(path: Path) -> str:
    """Write a new private key to ``path`` (PEM, mode 0600, never overwritten) and its
    public key to ``path.pub``; returns the key id."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    Path(f"{path}.pub").write_bytes(_public_pem(private.public_key()))
    return key_id(private.public_key())


class Signer:
    """Signs checkpoints with a private key read from a file."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @staticmethod
    def from_file(path: str | Path) -> Signer:
        private = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return Signer(private)

    def sign(self, shard: str, position: int, chain: str, count: int, at: str) -> Checkpoint:
        signature = self._private.sign(signed_message(shard, position, chain, count, at, self.key_id))
        return Checkpoint(shard, position, chain, count, at, self.key_id, signature.hex())


class KeyRing:
    """The public keys checkpoints are verified with, by key id (current and retired)."""

    def __init__(self, keys: list[Ed25519PublicKey]) -> None:
        self.keys = {key_id(k): k for k in keys}

    @staticmethod
    def from_files(paths: list[str]) -> KeyRing:
        keys = []
        for path in paths:
            public = serialization.load_pem_public_key(Path(path).read_bytes())
            if not isinstance(public, Ed25519PublicKey):
                raise ValueError(f"{path}: not an Ed25519 public key")
            keys.append(public)
        return KeyRing(keys)

    @staticmethod
    def from_settings(settings: Settings, extra: tuple[str, ...] = ()) -> KeyRing:
        """The configured public keys, plus the signing key's own when it is readable here."""
        ring = KeyRing.from_files([*settings.checkpoint_public_keys, *extra])
        if settings.checkpoint_key and Path(settings.checkpoint_key).exists():
            public = Signer.from_file(settings.checkpoint_key).public
            ring.keys[key_id(public)] = public
        return ring

    def problem(self, checkpoint: Checkpoint) -> str | None:
        """Why the checkpoint's signature is not good, or None when it is."""
        public = self.keys.get(checkpoint.key_id)
        if public is None:
            return f"signed by unknown key {checkpoint.key_id!r}"
        try:
            public.verify(bytes.fromhex(checkpoint.signature), checkpoint.message())
        except (InvalidSignature, ValueError):
            return f"signature does not verify with key {checkpoint.key_id}"
        return None


def read_checkpoints(client: redis.Redis, keys: ShardKeys, batch: int = 1000) -> list[tuple[str, dict[bytes, bytes]]]:
    """Every stored checkpoint entry of the shard, oldest first: (entry id, fields)."""
    found: list[tuple[str, dict[bytes, bytes]]] = []
    start = "-"
    while True:
        entries = xrange(client, keys.checkpoints, start, "+", batch)
        found.extend((entry_id.decode(), fields) for entry_id, fields in entries)
        if len(entries) < batch:
            return found
        start = "(" + entries[-1][0].decode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ChainBroken(Exception):
    """The log does not chain on from the last checkpoint: nothing is signed."""


@dataclass
class _Cursor:
    """How far the signer has recomputed the chain: position, chain hash, event count."""

    position: int
    chain: str
    count: int


class Checkpointer:
    """Writes a shard's checkpoints: at least every ``every_events`` events (at positions
    that many apart while it catches up), and at the newest event once ``every_seconds``
    have passed since the last checkpoint (or on ``force``)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: ShardKeys,
        signer: Signer,
        every_events: int = 1000,
        every_seconds: float = 60.0,
        batch: int = 1000,
    ) -> None:
        if every_events < 1 or every_seconds <= 0:
            raise ValueError("checkpoint interval: at least 1 event and more than 0 seconds")
        self.client = client
        self.keys = keys
        self.signer = signer
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.batch = batch
        self._cursor: _Cursor | None = None  # walked beyond the last checkpoint, kept between runs

    @staticmethod
    def for_settings(settings: Settings, client: redis.Redis, shard: str | None = None) -> Checkpointer | None:
        """The shard's checkpointer (default: the settings' shard), or None when no signing
        key is configured."""
        if not settings.checkpoint_key:
            return None
        return Checkpointer(
            client,
            ShardKeys(shard or settings.shard, settings.key_prefix),
            Signer.from_file(settings.checkpoint_key),
            settings.checkpoint_every_events,
            settings.checkpoint_every_seconds,
        )

    def last(self) -> Checkpoint | None:
        entries = xrange(self.client, self.keys.checkpoints, "-", "+", 1, desc=True)
        return Checkpoint.from_fields(entries[0][1]) if entries else None

    def run_once(self, *, force: bool = False) -> list[Checkpoint]:
        """Walk the log from the last checkpoint and write the checkpoints due; returns them.

        Raises ChainBroken when the log does not chain on (``outcomes verify`` says where)."""
        last = self.last()
        signed = last.position if last else 0
        cursor = self._cursor
        if cursor is None or cursor.position < signed:  # another signer moved on: start from its checkpoint
            cursor = _Cursor(last.position, last.chain, last.count) if last else _Cursor(0, ZERO, 0)
        written: list[Checkpoint] = []
        while True:
            entries = read_log(self.client, self.keys, cursor.position, None, self.batch)
            for entry_id, fields in entries:
                position = int(entry_id.split(b"-")[0])
                chain = fields.get(b"c", b"").decode()
                linked = link_hash(cursor.chain, position, fields.get(b"h", b"").decode()) == chain
                if position != cursor.position + 1 or not linked:
                    self._cursor = None
                    raise ChainBroken(
                        f"shard {self.keys.shard}: log entry {entry_id.decode()} does not chain on from position "
                        f"{cursor.position}; not signing (run `outcomes verify`)"
                    )
                cursor = _Cursor(position, chain, cursor.count + 1)
                if cursor.position - signed >= self.every_events:
                    if not self._write(cursor, written):
                        return written
                    signed = cursor.position
            if len(entries) < self.batch:
                break
        self._cursor = cursor
        newest = written[-1] if written else last
        due = (
            force or newest is None or time.time() - datetime.fromisoformat(newest.at).timestamp() >= self.every_seconds
        )
        if cursor.position > signed and due:
            self._write(cursor, written)
        return written

    def _write(self, cursor: _Cursor, written: list[Checkpoint]) -> bool:
        checkpoint = self.signer.sign(self.keys.shard, cursor.position, cursor.chain, cursor.count, _now())
        try:
            self.client.xadd(self.keys.checkpoints, checkpoint.fields(), id=f"{cursor.position}-0")  # type: ignore[arg-type]
        except redis.ResponseError:  # another signer wrote this or a later position first
            self._cursor = None
            return False
        written.append(checkpoint)
        return True
