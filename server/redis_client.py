"""Redis client construction for redis://, rediss://, redis+sentinel://
(``redis+sentinel://host:26379,host2:26379/<service>/<db>``) and
redis+cluster:// URLs (``redis+cluster://[:password@]h1:7000,h2:7001/``: any
reachable nodes of a Redis Cluster; the others are discovered).

On a cluster every multi-key script and transaction of the server names keys
of one hash slot: each keyspace that needs one carries a hash tag in its
prefix (``{presence}:``, ``{calls}:``); see docs/scaling.md."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

# A connection pooled before Redis restarted fails its next command with
# "Connection closed by server" (nothing was executed); redis-py's URL
# constructor retries nothing, so without this every such connection turned
# one request into a 503, however long after the restart. Only connection
# errors are retried (not timeouts), as redis-py's own default client does:
# a command is run twice only if the connection broke after Redis ran it and
# before the reply arrived.
CONNECTION_RETRIES = 3
RETRY_BACKOFF_BASE_S = 0.05
RETRY_BACKOFF_CAP_S = 1.0


def retry_options() -> dict[str, Any]:
    """Client options shared by every Redis client of a node (ours and the
    rate limiter's): reconnect and retry a command on a connection error."""
    return {"retry": Retry(ExponentialBackoff(cap=RETRY_BACKOFF_CAP_S, base=RETRY_BACKOFF_BASE_S),
                           CONNECTION_RETRIES, supported_errors=(RedisConnectionError,))}


CLUSTER_SCHEME = "redis+cluster://"
PUBSUB_CONNECT_TIMEOUT_S = 2.0  # a dead node is skipped quickly
DEFAULT_CLUSTER_PORT = 6379


SENTINEL_SCHEME = "redis+sentinel://"


def is_sentinel_url(url: str | None) -> bool:
    return bool(url) and url.startswith(SENTINEL_SCHEME)  # type: ignore[union-attr]


def is_cluster_url(url: str | None) -> bool:
    return bool(url) and url.startswith(CLUSTER_SCHEME)  # type: ignore[union-attr]


def cluster_nodes(url: str) -> tuple[list[tuple[str, int]], str | None]:
    """(host, port) pairs and the password of a ``redis+cluster://`` URL."""
    parts = urlsplit(url)
    hosts = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        if host:
            hosts.append((host, int(port or DEFAULT_CLUSTER_PORT)))
    if not hosts:
        raise ValueError("a redis+cluster:// URL names at least one host:port")
    return hosts, parts.password


def connect_cluster(url: str) -> RedisCluster:
    hosts, password = cluster_nodes(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in hosts], password=password,
        socket_keepalive=True, health_check_interval=15, **retry_options(),
    )


def connect_redis(url: str) -> redis.Redis:
    if is_cluster_url(url):
        return connect_cluster(url)  # type: ignore[return-value]  # same commands we use
    if not is_sentinel_url(url):
        return redis.from_url(url, health_check_interval=15, socket_keepalive=True,
                              **retry_options())
    parts = urlsplit(url)
    hosts = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.partition(":")
        hosts.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    service = path[0] if path else "mymaster"
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(hosts, password=parts.password, socket_timeout=5)
    return sentinel.master_for(service, db=db, password=parts.password, **retry_options())


class ClusterPubSubNodes:
    """Pub/sub on a Redis Cluster, one node at a time.

    Classic pub/sub is cluster-wide (a PUBLISH on any node reaches the
    subscribers of every node), so a subscriber needs a connection to any
    one live node, master or replica. Each call to ``client()`` returns a
    plain client for the next node of the URL, so a subscriber that lost its
    node (killed, failed over) moves on to another; list every node of the
    cluster in the URL, or at least one per shard."""

    def __init__(self, url: str) -> None:
        self._hosts, self._password = cluster_nodes(url)
        self._next = 0

    def client(self) -> redis.Redis:
        host, port = self._hosts[self._next % len(self._hosts)]
        self._next += 1
        return redis.Redis(host=host, port=port, password=self._password,
                           socket_keepalive=True, socket_connect_timeout=PUBSUB_CONNECT_TIMEOUT_S)
