"""python-socketio's Redis manager on a Redis Cluster as well
(``redis+cluster://`` URLs, which python-socketio does not parse).

Classic pub/sub is cluster-wide: a message PUBLISHed on any node reaches the
subscribers of every node, so the manager publishes and subscribes through
one node of the URL at a time (``ClusterPubSubNodes``); each reconnect moves
to the next node, so after a failover it no longer retries the dead one."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio

from ..redis_client import ClusterPubSubNodes, is_cluster_url


class ClusterAwareRedisManager(socketio.AsyncRedisManager):
    _cluster_nodes: ClusterPubSubNodes | None = None

    def _redis_connect(self) -> None:
        if not is_cluster_url(self.redis_url):
            return super()._redis_connect()
        if self._cluster_nodes is None:
            self._cluster_nodes = ClusterPubSubNodes(self.redis_url)
        old = self.redis
        self.redis = self._cluster_nodes.client()
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
