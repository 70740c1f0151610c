"""Redis client construction for redis://, rediss:// and redis+sentinel://
URLs (``redis+sentinel://host:26379,host2:26379/<service>/<db>``)."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.sentinel import Sentinel


def connect_redis(url: str) -> redis.Redis:
    if not url.startswith("redis+sentinel://"):
        return redis.from_url(url, health_check_interval=15, socket_keepalive=True)
    parts = urlsplit(url)
    hosts = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.partition(":")
        hosts.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    service = path[0] if path else "mymaster"
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(hosts, password=parts.password, socket_timeout=5)
    return sentinel.master_for(service, db=db, password=parts.password)
