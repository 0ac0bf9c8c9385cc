"""eventsourcing's notification log (``RedisApplicationRecorder.select_notifications``) reads
archive then Redis, as ``events.archive.read_log`` does: after an archive run it gives the same
notifications as before, for every start, stop, limit and topic filter, across the seam."""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import Notification

from tests.test_archive import World, first_redis_position
from tests.test_archive import world as world  # the fixture, found by pytest under its name


def _selections(w: World) -> dict[str, Sequence[Notification]]:
    recorder = w.runtime.ledger("acme").recorder
    head = w.last()
    topic = recorder.select_notifications(1, 1)[0].topic
    return {
        "all": recorder.select_notifications(1, head),
        "from 20, 30 of them": recorder.select_notifications(20, 30),
        "after 20 up to 60": recorder.select_notifications(20, 100, stop=60, inclusive_of_start=False),
        "one topic": recorder.select_notifications(1, head, topics=[topic]),
        "seam": recorder.select_notifications(49, 3),
        "none past the head": recorder.select_notifications(head + 1, 10),
    }


def test_the_notification_log_reads_the_archive_then_redis(world: World) -> None:
    world.calls_with_outcomes(15)  # 90 events after the 10 of the set-up
    world.checkpoint(every_events=20)
    before = _selections(world)
    world.archiver().run(before_position=51)
    assert first_redis_position(world) == 51  # positions 1..50 are only in the archive now

    after = _selections(world)
    assert after == before
    assert [n.id for n in after["all"]] == list(range(1, world.last() + 1))
    assert [n.id for n in after["seam"]] == [49, 50, 51]
    assert [n.id for n in after["after 20 up to 60"]] == list(range(21, 61))
    assert after["one topic"] and len(after["one topic"]) < len(after["all"])
    assert after["none past the head"] == []
