"""The split of one action follower's work by partition (workers/partitions.py): which unit
an entry is, and changing the number of partitions only on a drained log."""

from __future__ import annotations

import pytest
import redis

from events.keys import ShardKeys, encode_originator_id
from services.config import Settings
from services.interactions import aggregate_id
from services.sms_gateway import gateway_from_env
from workers.actions import FOLLOW_UPS, PLANNER, SENDER, follower, followers
from workers.contact_lists import PLANNER as LISTS
from workers.partitions import SEALED, LayoutChanged, adopt, follower_of, partition_of, unit_name
from workers.webhooks import DISPATCHER


def test_unit_names_and_a_stable_partition_per_aggregate() -> None:
    assert unit_name(PLANNER, 0, 1) == PLANNER  # unpartitioned: the follower's own position
    assert unit_name(PLANNER, 1, 3) == f"{PLANNER}#1" and follower_of(f"{PLANNER}#1") == PLANNER
    key = encode_originator_id(aggregate_id("t", "call", "c1")).encode()
    # crc32, not hash(): the same in every process
    assert partition_of(key, 4) == partition_of(key, 4) == __import__("zlib").crc32(key) % 4
    spread = {partition_of(encode_originator_id(aggregate_id("t", "call", f"c{n}")).encode(), 4) for n in range(100)}
    assert spread == {0, 1, 2, 3}


def test_followers_are_split_into_units_where_their_order_is_per_aggregate(redis_url: str, shard: str) -> None:
    settings = Settings(redis_url=redis_url, shard=shard, key_prefix="part", action_partitions=3)
    units = followers(settings, gateway_from_env())
    try:
        names = [u.name for u in units]
        split = [PLANNER, SENDER, FOLLOW_UPS, DISPATCHER]
        assert all(unit_name(f, p, 3) in names for f in split for p in range(3))
        assert LISTS in names  # a contact's effects build on one another across interactions: whole
        assert len(names) == 4 * 3 + 2
    finally:
        for u in units:
            u.close()
    unit = follower(f"{PLANNER}#2", settings, gateway_from_env())  # as `outcomes dlq requeue` builds it
    assert (unit.name, unit.partition, unit.partitions) == (f"{PLANNER}#2", 2, 3)
    unit.close()


def test_the_number_of_partitions_changes_only_on_a_drained_log(redis_client: redis.Redis, shard: str) -> None:
    keys = ShardKeys(shard, "part")

    def at(*names: str) -> list[int | None]:
        return [int(v) if v is not None else None for v in redis_client.hmget(keys.tracking, list(names))]

    redis_client.hset(keys.tracking, "f", 40)  # the unpartitioned follower's position so far
    adopt(redis_client, keys, "f", 2)
    assert at("f#0", "f#1", "f") == [40, 40, SEALED]  # both start where it was; the old one sealed
    adopt(redis_client, keys, "f", 2)  # the same layout again: nothing moves
    redis_client.hset(keys.tracking, "f#0", 55)  # unit 0 went on, unit 1 not yet
    with pytest.raises(LayoutChanged, match=r"2 partitions at \[55, 40\]"):
        adopt(redis_client, keys, "f", 3)
    assert at("f#0", "f#1", "f#2") == [55, 40, None]  # refused: nothing written
    redis_client.hset(keys.tracking, "f#1", 55)  # drained
    adopt(redis_client, keys, "f", 3)
    assert at("f#0", "f#1", "f#2") == [55, 55, 55]
    adopt(redis_client, keys, "f", 1)
    assert at("f", "f#0") == [55, SEALED]
    with pytest.raises(ValueError):
        adopt(redis_client, keys, "f", 0)
