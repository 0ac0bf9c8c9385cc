"""The outcome-mix view's memory across batches (projections/outcome_mix.py ``Memory``) writes
exactly what reading the state back from Redis every batch writes: byte for byte, every key
of the view, whether the memory is complete (from position 0), forgotten past its cap, or
dropped because another runner committed first. Real Redis, random valid histories."""

from __future__ import annotations

from typing import cast

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.base import read_batch
from projections.outcome_mix import OutcomeMixView
from services.runtime import Runtime
from tests.history_strategies import HistoryPlan, histories, new_tenant, play
from tests.test_outcome_mix import mix_view

BATCH = 5


def stored(client: redis.Redis, view: OutcomeMixView) -> dict[bytes, dict[bytes, bytes]]:
    """Every key of the view (all hashes) with its fields, and the view's position."""
    keys = sorted(cast(list[bytes], list(client.scan_iter(match=view.keys.view(view.name) + "*"))))
    found = {key: cast(dict[bytes, bytes], client.hgetall(key)) for key in keys}
    found[b"position"] = {b"": str(view.position()).encode()}
    return found


def one_batch(view: OutcomeMixView) -> bool:
    """Apply the next batch after the view's position; False at the end of the log."""
    position = view.position()
    batch = read_batch(view, position, None, view.topics)
    if batch is None:
        return False
    assert view.apply(position, batch)
    return True


def forgetful_rebuild(runtime: Runtime, tenant: str) -> dict[bytes, dict[bytes, bytes]]:
    """The reference: a new view for every batch, so each reads its state from Redis."""
    view = mix_view(runtime, tenant, BATCH)
    view.drop()
    while one_batch(mix_view(runtime, tenant, BATCH)):
        pass
    return stored(runtime.client, view)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=histories(max_calls=8, max_conversations=4), cap=st.sampled_from([0, 10, 10_000]))
def test_a_view_remembering_its_state_writes_what_reading_it_back_writes(
    redis_url: str, plan: HistoryPlan, cap: int
) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        expected = forgetful_rebuild(d.runtime, d.tenant)
        view = mix_view(d.runtime, d.tenant, BATCH)
        view.memory_cap = cap  # 0: forgets after every batch; 10: now and then; 10,000: never
        view.drop()
        view.catch_up()
        assert stored(d.runtime.client, view) == expected
    finally:
        d.runtime.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=histories(max_calls=8, max_conversations=4))
def test_a_view_whose_commit_was_refused_or_overtaken_forgets_what_it_remembered(
    redis_url: str, plan: HistoryPlan
) -> None:
    d = new_tenant(redis_url)
    try:
        play(d, plan)
        expected = forgetful_rebuild(d.runtime, d.tenant)
        first, second = mix_view(d.runtime, d.tenant, BATCH), mix_view(d.runtime, d.tenant, BATCH)
        first.drop()
        one_batch(first)  # first remembers the state at its position
        position = first.position()
        batch = read_batch(first, position, None, first.topics)
        if batch is not None:
            assert one_batch(second)  # another runner moves the position on
            assert not first.apply(position, batch)  # refused: first's memory is stale
        while one_batch(first) and one_batch(second):  # each overtakes the other batch after batch
            pass
        first.catch_up()
        assert stored(d.runtime.client, first) == expected
    finally:
        d.runtime.close()
