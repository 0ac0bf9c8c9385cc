"""eventsourcing's own recorder conformance suite, run against a real Redis.

Every case of ``eventsourcing/tests/persistence.py`` for aggregate, application
(including the concurrency cases and the optional subscribe case), tracking and
process recorders, non-interleaving notification ids and the infrastructure factory.
"""

from __future__ import annotations

import uuid

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from events.store import (
    RedisAggregateRecorder,
    RedisApplicationRecorder,
    RedisFactory,
    RedisProcessRecorder,
    RedisTrackingRecorder,
)


@pytest.fixture(autouse=True)
def _redis_env(request: pytest.FixtureRequest, redis_url: str) -> None:
    request.cls.redis_url = redis_url


class _OnRedis:
    """Each recorder gets a fresh shard: tests start from an empty log."""

    redis_url: str

    def factory(self, **extra: str) -> RedisFactory:
        env = {
            "PERSISTENCE_MODULE": "events.store",
            "REDIS_URL": self.redis_url,
            "REDIS_SHARD": "c" + uuid.uuid4().hex[:12],
            **extra,
        }
        return RedisFactory(Environment(env=env))


class TestRedisAggregateRecorder(_OnRedis, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory().aggregate_recorder()


class TestRedisApplicationRecorder(_OnRedis, ApplicationRecorderTestCase[RedisApplicationRecorder]):
    def create_recorder(self) -> RedisApplicationRecorder:
        recorder = self.factory().application_recorder()
        assert isinstance(recorder, RedisApplicationRecorder)
        return recorder

    def test_insert_subscribe(self) -> None:
        # Not collected by pytest unless a test method calls it.
        self.optional_test_insert_subscribe()


class TestRedisTrackingRecorder(_OnRedis, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.factory().tracking_recorder()


class TestRedisProcessRecorder(_OnRedis, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.factory().process_recorder()


class TestRedisNonInterleavingNotificationIDs(_OnRedis, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()


class _TrackingSubclass(RedisTrackingRecorder):
    pass


class TestRedisInfrastructureFactory(_OnRedis, InfrastructureFactoryTestCase[RedisFactory]):
    def setUp(self) -> None:
        self.env = Environment(
            "TestCase",
            {
                "PERSISTENCE_MODULE": "events.store",
                "REDIS_URL": self.redis_url,
                "REDIS_SHARD": "f" + uuid.uuid4().hex[:12],
            },
        )
        super().setUp()

    def expected_factory_class(self) -> type[RedisFactory]:
        return RedisFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return RedisAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return RedisApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return RedisTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return _TrackingSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return RedisProcessRecorder
