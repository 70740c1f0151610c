"""Where sharded fan-out channels live and how publishes reach them
(``ShardMap``: one Redis or a Sentinel's master, ``SingleShard``; a Redis
Cluster, ``ClusterShards``). Publishing in the background is
``server/realtime/batch_publish.py``, subscriptions
``server/realtime/shards.py``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import SlotNotCoveredError

from ..redis_client import PUBSUB_CONNECT_TIMEOUT_S

CLOSE_TIMEOUT_S = 2.0
# A master that does not answer a pipeline of SPUBLISHes (milliseconds when
# healthy) within this long is taken as gone: the batch fails, the slot map is
# re-read and the batch retried (on the promoted replica once the cluster
# failed over), so fan-out resumes well within issue 10's 10 s of a promotion.
# A master that was only slow may then get the retried publishes twice.
PUBLISH_TIMEOUT_S = 5.0


class ShardMap(Protocol):
    """Where a sharded channel lives and how to reach it."""

    def node_for(self, channel: bytes) -> str: ...

    def masters(self) -> list[str]:
        """The nodes channels live on, as far as known (none before a
        cluster's slot map was first read)."""

    def client_for(self, node: str) -> redis.Redis: ...

    async def prepare(self) -> None:
        """Read the slot map if it was never read (before the first ``node_for``)."""

    async def publish_on(self, node: str, items: list[tuple[bytes, bytes | str]]) -> list[int]:
        """``SPUBLISH`` each on ``node`` in one round trip; the receivers of
        each, in order. A channel that moved off ``node`` fails the call."""

    async def refresh(self) -> None:
        """Re-read the slot map; drop every connection."""

    async def reroute(self, failed: str | None = None) -> None:
        """Re-read the slot map for publishing (a publish to ``failed``
        failed: its publishing connection is dropped too)."""

    async def close(self) -> None: ...


class SingleShard:
    """One Redis (or the master a Sentinel names): every channel on it."""

    NODE = "main"

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def node_for(self, channel: bytes) -> str:
        return self.NODE

    def masters(self) -> list[str]:
        return [self.NODE]

    def client_for(self, node: str) -> redis.Redis:
        return self._client

    async def prepare(self) -> None:
        return None

    async def publish_on(self, node: str, items: list[tuple[bytes, bytes | str]]) -> list[int]:
        return await _pipelined(self._client, items)

    async def refresh(self) -> None:
        return None

    async def reroute(self, failed: str | None = None) -> None:
        return None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.aclose(), CLOSE_TIMEOUT_S)


class ClusterShards:
    """A Redis Cluster: a channel lives on the master owning its slot."""

    def __init__(self, cluster: RedisCluster, password: str | None = None) -> None:
        self._cluster = cluster
        self._password = password
        self._clients: dict[str, redis.Redis] = {}  # subscriptions
        self._publishers: dict[str, redis.Redis] = {}
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await self._cluster.initialize()
            self._ready = True

    def node_for(self, channel: bytes) -> str:
        # redis-py hashes bytes keys as it does str (its stub says str only)
        node = self._cluster.get_node_from_key(channel)  # type: ignore[arg-type]
        if node is None:
            raise SlotNotCoveredError(f"no cluster node serves the slot of {channel!r}")
        return node.name

    def masters(self) -> list[str]:
        # empty until the slot map was first read (subscribing or publishing)
        return sorted(node.name for node in self._cluster.get_primaries())

    def client_for(self, node: str) -> redis.Redis:
        return self._client(self._clients, node)

    async def prepare(self) -> None:
        await self._ensure()

    def _client(self, clients: dict[str, redis.Redis], node: str,
                timeout: float | None = None) -> redis.Redis:
        client = clients.get(node)
        if client is None:
            host, _, port = node.rpartition(":")
            client = clients[node] = redis.Redis(
                host=host, port=int(port), password=self._password, socket_keepalive=True,
                socket_connect_timeout=PUBSUB_CONNECT_TIMEOUT_S, socket_timeout=timeout)
        return client

    async def publish_on(self, node: str, items: list[tuple[bytes, bytes | str]]) -> list[int]:
        """A slot that moved off ``node`` meanwhile (MOVED) fails the call: the caller retries."""
        return await _pipelined(self._client(self._publishers, node, PUBLISH_TIMEOUT_S), items)

    async def refresh(self) -> None:
        await self.reroute()
        await _close_all(self._clients)
        await _close_all(self._publishers)

    async def reroute(self, failed: str | None = None) -> None:
        if not self._ready:
            await self._ensure()
        else:
            await self._cluster.nodes_manager.initialize()
        if failed is not None and (client := self._publishers.pop(failed, None)) is not None:
            await _close_all({failed: client})

    async def close(self) -> None:
        await _close_all(self._clients)
        await _close_all(self._publishers)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._cluster.aclose(), CLOSE_TIMEOUT_S)


async def _pipelined(client: redis.Redis, items: list[tuple[bytes, bytes | str]]) -> list[int]:
    async with client.pipeline(transaction=False) as pipe:
        for channel, data in items:
            pipe.spublish(channel, data)
        return await pipe.execute()


async def _close_all(clients: dict[str, redis.Redis]) -> None:
    closing = list(clients.values())
    clients.clear()
    for client in closing:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.aclose(), CLOSE_TIMEOUT_S)
