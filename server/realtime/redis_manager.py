"""python-socketio's Redis manager, connected the way the rest of the node
connects (``server/redis_client.py``), for every ``SKILLSHARE_REDIS_URL`` form:

- ``redis+sentinel://h:26379/<service>/<db>``: python-socketio parses sentinel
  URLs as ``/<db>/<service>`` (and defaults the service to the channel name),
  so our documented form made every publish and subscribe fail — cross-node
  fan-out silently stopped. The node's own sentinel client is used instead;
  it follows the master through failovers.
- ``redis+cluster://h1:7000,h2:7001/`` (which python-socketio does not parse):
  classic pub/sub is cluster-wide — a PUBLISH on any node reaches the
  subscribers of every node — so the manager publishes and subscribes through
  one node of the URL at a time (``ClusterPubSubNodes``); each reconnect
  moves to the next node, so after a failover it stops retrying the dead one.
- anything else: python-socketio's own connection."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio

from ..redis_client import ClusterPubSubNodes, connect_redis, is_cluster_url, is_sentinel_url


class UrlAwareRedisManager(socketio.AsyncRedisManager):
    _cluster_nodes: ClusterPubSubNodes | None = None

    def _redis_connect(self) -> None:
        if is_cluster_url(self.redis_url):
            if self._cluster_nodes is None:
                self._cluster_nodes = ClusterPubSubNodes(self.redis_url)
            client = self._cluster_nodes.client()
        elif is_sentinel_url(self.redis_url):
            client = connect_redis(self.redis_url)
        else:
            return super()._redis_connect()
        old, self.redis = self.redis, client
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True
        if old is not None:
            task = asyncio.get_running_loop().create_task(_close_quietly(old))
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        return None


_closing: set[asyncio.Task[None]] = set()


async def _close_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()
