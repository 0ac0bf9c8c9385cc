"""Prometheus metrics: requests per route and status with their durations, and, read from
Redis at scrape time, consumer lag per group, pending entries, and how far each view's
tracking position trails the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from litestar.enums import ScopeType
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from events.keys import ShardKeys

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from services.runtime import Runtime

_REQUESTS = Counter("outcomes_requests", "HTTP requests answered", ["method", "path", "status_code"])
_DURATION = Histogram(
    "outcomes_request_duration_seconds", "Time to answer an HTTP request", ["method", "path", "status_code"]
)
_UNMEASURED = {"/metrics", "/health"}


def request_metrics(app: ASGIApp) -> ASGIApp:
    """Count and time each request by route template, method and status. Lean on purpose:
    it runs on every request, so the labelled children are looked up once and kept."""
    children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in _UNMEASURED:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            # no route matched: one label, not one per path a scanner tries
            labels = (scope["method"], scope.get("path_template", "<unmatched>"), status)
            child = children.get(labels)
            if child is None:
                child = children[labels] = (_REQUESTS.labels(*labels), _DURATION.labels(*labels))
            child[0].inc()
            child[1].observe(time.perf_counter() - started)

    return middleware


def _nid(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-")[0])


class StreamCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def shards(self) -> set[str]:
        client = self.runtime.client
        assigned = cast(dict[bytes, bytes], client.hgetall(self.runtime.registry.keys.tenant_shards))
        return {v.decode() for v in assigned.values()} | {self.runtime.settings.shard}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "outcomes_consumer_lag", "Log entries not yet delivered to a consumer group", labels=["shard", "group"]
        )
        pending = GaugeMetricFamily(
            "outcomes_consumer_pending", "Entries delivered but not acknowledged", labels=["shard", "group"]
        )
        view_lag = GaugeMetricFamily(
            "outcomes_view_lag", "Log entries a read model has not applied yet", labels=["shard", "view"]
        )
        head = GaugeMetricFamily("outcomes_log_head", "Last notification id of the shard log", labels=["shard"])
        client = self.runtime.client
        for shard in sorted(self.shards()):
            keys = ShardKeys(shard, self.runtime.settings.key_prefix)
            last = int(cast(bytes, client.hget(keys.head, "n")) or 0)
            head.add_metric([shard], last)
            try:
                groups: list[dict[str, Any]] = client.xinfo_groups(keys.log)
            except Exception:  # no log yet
                groups = []
            for group in groups:
                name = group["name"].decode() if isinstance(group["name"], bytes) else str(group["name"])
                # computed from ids: XINFO's own lag field needs Redis 7.0
                lag.add_metric([shard, name], max(0, last - _nid(group["last-delivered-id"])))
                pending.add_metric([shard, name], int(group["pending"]))
            positions = cast(dict[bytes, bytes], client.hgetall(keys.tracking))
            for view, position in positions.items():
                view_lag.add_metric([shard, view.decode()], max(0, last - int(position)))
        yield from (lag, pending, view_lag, head)


_registered: dict[str, StreamCollector] = {}


def register_collector(runtime: Runtime) -> None:
    """Point the (process-wide) collector at this runtime."""
    existing = _registered.get("streams")
    if existing is not None:
        existing.runtime = runtime
        return
    collector = StreamCollector(runtime)
    REGISTRY.register(collector)
    _registered["streams"] = collector
