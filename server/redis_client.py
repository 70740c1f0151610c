"""Redis client construction for redis://, rediss:// and redis+sentinel://
URLs (``redis+sentinel://host:26379,host2:26379/<service>/<db>``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis
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


def connect_redis(url: str) -> redis.Redis:
    if not url.startswith("redis+sentinel://"):
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
