"""The stored event: stable names, versions and upcasting; personal data sealed per subject."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import redis

from events.codec import ERASED, DomainEvent, StructMapper, SubjectKeys, event_type, registered_types, upcaster
from events.types import CallStarted, OutcomeSelected


def _call_started(**overrides: Any) -> CallStarted:
    fields: dict[str, Any] = dict(
        originator_id=uuid.uuid4(),
        originator_version=1,
        recorded_at=datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
        tenant_id="acme",
        actor="agent:anna",
        call_id="c-1",
        project_id="winter",
        direction="outbound",
        occurred_at=datetime(2026, 11, 22, 7, 59, 58, tzinfo=UTC),
        contact_id="k-9",
        contact_number="+358401234567",
    )
    fields.update(overrides)
    return CallStarted(**fields)


def test_topics_are_stable_type_names_not_module_paths(redis_client: redis.Redis) -> None:
    mapper = StructMapper(keys=SubjectKeys(redis_client, prefix="t" + uuid.uuid4().hex))
    stored = mapper.to_stored_event(_call_started())
    assert stored.topic == "CallStarted"
    assert all(":" not in name and "." not in name for name in registered_types())


def test_occurred_at_and_recorded_at_are_separate_fields() -> None:
    fields = set(CallStarted.__struct_fields__)
    assert {"occurred_at", "recorded_at"} <= fields
    assert {"occurred_at", "recorded_at"} <= set(OutcomeSelected.__struct_fields__)


def test_personal_data_is_sealed_and_reads_back(redis_client: redis.Redis) -> None:
    keys = SubjectKeys(redis_client, prefix="t" + uuid.uuid4().hex)
    mapper = StructMapper(keys=keys)
    event = _call_started()
    stored = mapper.to_stored_event(event)
    assert b"+358401234567" not in stored.state
    assert b"401234567" not in stored.state
    assert mapper.to_domain_event(stored) == event


def test_destroying_the_subject_key_erases_the_field_only(redis_client: redis.Redis) -> None:
    keys = SubjectKeys(redis_client, prefix="t" + uuid.uuid4().hex)
    mapper = StructMapper(keys=keys)
    event = _call_started()
    stored = mapper.to_stored_event(event)
    keys.destroy("acme", "contact:k-9")
    # a fresh process (no cached key) sees the same
    fresh = StructMapper(keys=SubjectKeys(redis_client, prefix=keys.prefix))
    for m in (mapper, fresh):
        erased = m.to_domain_event(stored)
        assert erased.contact_number == ERASED
        assert erased.call_id == "c-1" and erased.occurred_at == event.occurred_at


def test_another_process_cached_key_lapses_after_its_ttl(redis_client: redis.Redis) -> None:
    prefix = "t" + uuid.uuid4().hex
    stored = StructMapper(keys=SubjectKeys(redis_client, prefix=prefix)).to_stored_event(_call_started())
    other = StructMapper(keys=SubjectKeys(redis_client, prefix=prefix, ttl=0.2))  # another process
    assert other.to_domain_event(stored).contact_number == "+358401234567"  # its key now cached
    SubjectKeys(redis_client, prefix=prefix).destroy("acme", "contact:k-9")  # erased elsewhere
    assert other.to_domain_event(stored).contact_number == "+358401234567"  # still within the TTL
    time.sleep(0.3)
    assert other.to_domain_event(stored).contact_number == ERASED


def test_personal_data_without_a_key_store_is_refused() -> None:
    with pytest.raises(RuntimeError, match="personal data"):
        StructMapper().to_stored_event(_call_started())


# A versioned type with an upcaster, as a later schema change would add one.
@event_type("TestNoteTaken", 2)
class NoteTaken(DomainEvent, frozen=True, kw_only=True):
    text: str
    language: str  # new in v2


@upcaster("TestNoteTaken", 1)
def _note_v1_to_v2(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "language": "und"}


def test_old_versions_are_upcast_on_read() -> None:
    mapper = StructMapper()
    # a v1 body as it was stored before the type gained 'language'
    body = {
        "originator_id": str(uuid.uuid4()),
        "originator_version": 1,
        "recorded_at": "2026-01-01T00:00:00Z",
        "tenant_id": "acme",
        "actor": "system",
        "text": "hello",
    }
    state = msgspec.msgpack.encode([1, msgspec.Raw(msgspec.msgpack.encode(body))])
    event = mapper.decode("TestNoteTaken", state)
    assert isinstance(event, NoteTaken)
    assert event.language == "und" and event.text == "hello"
    # the current version round-trips untouched
    again = mapper.to_domain_event(mapper.to_stored_event(event))
    assert again == event


def test_unknown_type_names_are_refused() -> None:
    with pytest.raises(LookupError, match="unknown event type"):
        StructMapper().decode("NoSuchEvent", b"")


def test_tuples_of_personal_texts_are_sealed_element_by_element(redis_client: redis.Redis) -> None:
    from events.types import ContactSaved

    keys = SubjectKeys(redis_client, prefix="t" + uuid.uuid4().hex)
    mapper = StructMapper(keys=keys)
    event = ContactSaved(
        originator_id=uuid.uuid4(),
        originator_version=1,
        recorded_at=datetime(2026, 11, 22, tzinfo=UTC),
        tenant_id="acme",
        actor="system",
        contact_id="k1",
        name="Ann Example",
        numbers=("+358401234567", "+358501234567"),
        time_zone="Europe/Helsinki",
    )
    stored = mapper.to_stored_event(event)
    assert b"401234567" not in stored.state and b"Ann" not in stored.state
    assert mapper.to_domain_event(stored) == event
    keys.destroy("acme", "contact:k1")
    erased = StructMapper(keys=SubjectKeys(redis_client, prefix=keys.prefix)).to_domain_event(stored)
    assert erased.numbers == (ERASED, ERASED) and erased.name == ERASED and erased.time_zone == "Europe/Helsinki"
