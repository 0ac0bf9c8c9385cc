"""Redis clients from a URL: the one switch between a single Redis and a Redis Cluster.

``redis://`` (or ``rediss://``, ``unix://``) is one server; ``redis+cluster://host:port``
(or ``rediss+cluster://``) is a Redis Cluster reached through any of its masters, and gives
redis-py's ``RedisCluster``, which routes each command and script call to the master owning
its keys' slot. Every key of a shard carries the shard's hash tag (``events.keys``), so a
shard's scripts and streams live on one master; FastStream has no cluster broker, so a
worker's broker connects to the master that owns its shard's slot (``node_url``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster(url: str) -> bool:
    return urlsplit(url).scheme in _CLUSTER_SCHEMES


def server_url(url: str) -> str:
    """The URL with the cluster marker taken off (what redis-py's ``from_url`` reads)."""
    parts = urlsplit(url)
    scheme = _CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, *parts[1:]))


def redis_client(url: str) -> redis.Redis:
    """A client for ``url``: ``RedisCluster`` for a cluster URL.

    Typed as ``redis.Redis``: ``RedisCluster`` offers the same commands (routed by key);
    the few places that need a single server's connection ask ``node_client`` for it.
    """
    if is_cluster(url):
        return cast(redis.Redis, RedisCluster.from_url(server_url(url)))
    return redis.Redis.from_url(url)


def async_redis_client(url: str) -> redis.asyncio.Redis:
    """The asyncio twin of ``redis_client``."""
    if is_cluster(url):
        return cast(redis.asyncio.Redis, AsyncRedisCluster.from_url(server_url(url)))
    return redis.asyncio.Redis.from_url(url)


def node_client(client: redis.Redis, key: str) -> redis.Redis:
    """The single-server client that holds ``key``: ``client`` itself, or for a cluster the
    client of the master owning the key's slot (for raw connections, e.g. group commit)."""
    if isinstance(client, RedisCluster):
        return client.get_redis_connection(client.get_node_from_key(key))  # type: ignore[no-untyped-call]
    return client


def node_url(url: str, key: str) -> str:
    """A plain server URL that reaches ``key``: ``url`` itself, or for a cluster the URL of
    the master owning the key's slot (FastStream's RedisBroker speaks to one server)."""
    if not is_cluster(url):
        return url
    client = RedisCluster.from_url(server_url(url))
    try:
        node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        parts = urlsplit(server_url(url))
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit((parts.scheme, f"{netloc}{node.host}:{node.port}", parts.path, parts.query, ""))
    finally:
        client.close()


def server_clients(client: redis.Redis) -> list[redis.Redis]:
    """One client per server that holds data: ``[client]``, or each master of a cluster
    (server settings such as the AOF's fsync policy are per server)."""
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def slot_groups(client: redis.Redis, keys: Sequence[str]) -> list[list[str]]:
    """``keys`` in groups that one multi-key command (e.g. XREADGROUP) may take: all
    together on one server; by hash slot on a cluster (CROSSSLOT otherwise)."""
    if not isinstance(client, RedisCluster):
        return [list(keys)] if keys else []
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(client.keyslot(key), []).append(key)  # type: ignore[no-untyped-call]
    return list(groups.values())
