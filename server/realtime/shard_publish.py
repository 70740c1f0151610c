"""Where sharded fan-out channels live and how publishes reach them
(``ShardMap``: one Redis or a Sentinel's master, ``SingleShard``; a Redis
Cluster, ``ClusterShards``), and ``BatchPublisher``, which sends every
publish queued meanwhile in one pipeline per Redis node. Subscriptions are
``server/realtime/shards.py``."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis
from loguru import logger
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import SlotNotCoveredError

from ..redis_client import PUBSUB_CONNECT_TIMEOUT_S
from ..tasks import cancel_and_wait

CLOSE_TIMEOUT_S = 2.0

Sent = Callable[[list[tuple[bytes, int]]], None]  # (channel, receivers) per publish


class ShardMap(Protocol):
    """Where a sharded channel lives and how to reach it."""

    def node_for(self, channel: bytes) -> str: ...

    def masters(self) -> list[str]:
        """The nodes channels live on, as far as known (none before a
        cluster's slot map was first read)."""

    def client_for(self, node: str) -> redis.Redis: ...

    async def prepare(self) -> None:
        """Read the slot map if it was never read (before the first ``node_for``)."""

    async def publish_many(self, items: list[tuple[bytes, bytes | str]]) -> list[int]:
        """``SPUBLISH`` each; the receivers of each, in order."""

    async def refresh(self) -> None:
        """Re-read the slot map; drop every connection."""

    async def reroute(self) -> None:
        """Re-read the slot map for publishing (a publish failed)."""

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

    async def publish_many(self, items: list[tuple[bytes, bytes | str]]) -> list[int]:
        """One round trip (a pipeline) for several channels."""
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, data in items:
                pipe.spublish(channel, data)
            return await pipe.execute()

    async def refresh(self) -> None:
        return None

    async def reroute(self) -> None:
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

    def _client(self, clients: dict[str, redis.Redis], node: str) -> redis.Redis:
        client = clients.get(node)
        if client is None:
            host, _, port = node.rpartition(":")
            client = clients[node] = redis.Redis(
                host=host, port=int(port), password=self._password, socket_keepalive=True,
                socket_connect_timeout=PUBSUB_CONNECT_TIMEOUT_S)
        return client

    async def publish_many(self, items: list[tuple[bytes, bytes | str]]) -> list[int]:
        """One pipeline per master owning some of the channels, all at once;
        a slot that moved meanwhile (MOVED) fails the call: the caller retries."""
        await self._ensure()
        by_node: dict[str, list[int]] = defaultdict(list)
        for i, (channel, _data) in enumerate(items):
            by_node[self.node_for(channel)].append(i)
        counts = [0] * len(items)

        async def send(node: str, indexes: list[int]) -> None:
            async with self._client(self._publishers, node).pipeline(transaction=False) as pipe:
                for i in indexes:
                    pipe.spublish(*items[i])
                for i, count in zip(indexes, await pipe.execute(), strict=True):
                    counts[i] = count

        await asyncio.gather(*(send(node, indexes) for node, indexes in by_node.items()))
        return counts

    async def refresh(self) -> None:
        await self.reroute()
        await _close_all(self._clients)

    async def reroute(self) -> None:
        if not self._ready:
            await self._ensure()
        else:
            await self._cluster.nodes_manager.initialize()
        await _close_all(self._publishers)

    async def close(self) -> None:
        await _close_all(self._clients)
        await _close_all(self._publishers)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._cluster.aclose(), CLOSE_TIMEOUT_S)


async def _close_all(clients: dict[str, redis.Redis]) -> None:
    closing = list(clients.values())
    clients.clear()
    for client in closing:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.aclose(), CLOSE_TIMEOUT_S)


class BatchPublisher:
    """Publishes in the background, everything queued meanwhile in one round
    trip (a pipeline per Redis node): an emit costs its sender a list append,
    not a connection and a round trip each (a busy node had a hundred
    publishes in flight and ran out of pooled connections). One batch at a
    time, in queue order, so each channel keeps the emit order. A batch that
    fails is retried once after re-reading a cluster's slot map, then
    dropped and counted (python-socketio's rule for a failed publish)."""

    def __init__(self, shards: ShardMap, *, on_error: Callable[[], None] | None = None,
                 on_sent: Sent | None = None) -> None:
        self._shards = shards
        self._on_error = on_error
        self._on_sent = on_sent
        self._pending: list[tuple[bytes, bytes | str]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def publish(self, items: list[tuple[bytes, bytes | str]]) -> None:
        self._pending.extend(items)
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="socketio-shard-publisher")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send(batch)
            self._idle.set()

    async def _send(self, batch: list[tuple[bytes, bytes | str]]) -> None:
        for attempt in range(2):
            try:
                counts = await self._shards.publish_many(batch)
                if self._on_sent is not None:
                    self._on_sent([(c, n) for (c, _d), n in zip(batch, counts, strict=True)])
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt:
                    if self._on_error is not None:
                        self._on_error()
                    logger.error("socket.io sharded fan-out: {} publishes dropped ({!r})",
                                 len(batch), exc)
                else:
                    with contextlib.suppress(Exception):
                        await self._shards.reroute()

    async def flush(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Until everything queued so far went out (at most ``timeout`` s)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        await self.flush()
        await cancel_and_wait([self._task])
        await self._shards.close()
