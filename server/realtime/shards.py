"""Sharded pub/sub (Redis 7 ``SSUBSCRIBE``/``SPUBLISH``) for the Socket.IO
fan-out: one channel per room, subscribed by a node only while it holds a
local socket in that room.

``ShardChannels`` keeps the set of wanted channels; one worker task brings
the subscriptions in line with it (grouped by hash slot, as a cluster
refuses a multi-slot ``SSUBSCRIBE``), one reader task per Redis node reads
its connection. On a Redis Cluster a sharded subscription must be made on
the node that owns the channel's slot (``ClusterShards`` asks redis-py's
``RedisCluster`` for the slot map); on one Redis or Sentinel every channel
lives on the one master (``SingleShard``). When a connection fails or Redis
moves a channel away (a ``sunsubscribe`` we did not ask for: slot
migration, failover), every subscription is dropped, the slot map
refreshed and everything subscribed again; what was published meanwhile is
missed (clients catch up with ``room:sync``).

redis-py 8's asyncio ``ClusterPubSub`` does route ``SSUBSCRIBE`` by slot,
but it reads the nodes' connections in turn with a poll timeout
(``get_sharded_message``): either a busy loop or latency; here each node
connection has its own blocking reader."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from loguru import logger
from redis.crc import key_slot

from ..tasks import cancel_and_wait
from .shard_publish import ShardMap

SUBSCRIBE_WAIT_S = 2.0  # a join waits this long at most for its room's subscription
REBUILD_FIRST_S = 0.25
REBUILD_MAX_S = 2.0  # after a failover, subscribed again within ~2 s of the promotion
CLOSE_TIMEOUT_S = 2.0

Deliver = Callable[[bytes, bytes], None]  # (channel, data)


class ShardChannels:
    """The node's sharded subscriptions: ``want``/``drop`` are synchronous
    (called from python-socketio's room bookkeeping); ``ready`` waits until
    a wanted channel's subscription is confirmed by Redis."""

    def __init__(self, shards: ShardMap, deliver: Deliver, *,
                 on_change: Callable[[int], None] | None = None,
                 on_error: Callable[[], None] | None = None,
                 on_confirmed: Callable[[bytes], None] | None = None,
                 on_reset: Callable[[], None] | None = None) -> None:
        self._on_confirmed = on_confirmed
        self._on_reset = on_reset
        self._shards = shards
        self._deliver = deliver
        self._on_change = on_change
        self._on_error = on_error
        self.wanted: set[bytes] = set()
        self.subscribed: dict[bytes, str] = {}  # channel -> node it is subscribed on
        self._confirmed: set[bytes] = set()
        self._unsubscribing: dict[bytes, int] = defaultdict(int)  # SUNSUBSCRIBEs not yet answered
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = defaultdict(list)
        self._pubsubs: dict[str, Any] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._dirty = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._rebuild_delay = REBUILD_FIRST_S
        self._rebuilding = False
        self.rebuilds = 0

    def masters(self) -> list[str]:
        return self._shards.masters()

    def node_for(self, channel: bytes) -> str:
        return self._shards.node_for(channel)

    # -- the wanted set -----------------------------------------------------

    def want(self, channel: bytes) -> None:
        if channel not in self.wanted:
            self.wanted.add(channel)
            self._changed()

    def drop(self, channel: bytes) -> None:
        if channel in self.wanted:
            self.wanted.discard(channel)
            self._changed()
            for waiter in self._waiters.pop(channel, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def ready(self, channel: bytes, timeout: float = SUBSCRIBE_WAIT_S) -> bool:
        """Wait until ``channel``'s subscription is confirmed (at most
        ``timeout`` seconds: a join is not held up long by a Redis outage)."""
        if channel in self._confirmed or channel not in self.wanted:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[channel].append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            waiters = self._waiters.get(channel)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[channel]
            return False
        return True

    def _changed(self) -> None:
        self._dirty.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name="socketio-shard-subscriber")
        if self._on_change is not None:
            self._on_change(len(self.wanted))

    # -- bringing Redis in line ------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._sync()
                self._rebuild_delay = REBUILD_FIRST_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._rebuild(f"subscribing failed ({exc!r})")

    async def _sync(self) -> None:
        await self._shards.prepare()
        for channel in [c for c in self.subscribed if c not in self.wanted]:
            node = self.subscribed.pop(channel)
            self._confirmed.discard(channel)
            pubsub = self._pubsubs.get(node)
            if pubsub is not None:
                self._unsubscribing[channel] += 1
                await pubsub.sunsubscribe(channel)
        groups: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        for channel in self.wanted:
            if channel not in self.subscribed:
                groups[(self._shards.node_for(channel), key_slot(channel))].append(channel)
        for (node, _slot), channels in groups.items():
            pubsub = self._pubsubs.get(node)
            if pubsub is None:
                pubsub = self._pubsubs[node] = self._shards.client_for(node).pubsub()
            for channel in channels:
                self.subscribed[channel] = node
            await pubsub.ssubscribe(*channels)
            if node not in self._readers:
                self._readers[node] = asyncio.get_running_loop().create_task(
                    self._read(node, pubsub), name=f"socketio-shard-reader-{node}")

    async def _read(self, node: str, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "smessage":
                    self._deliver(message["channel"], message["data"])
                elif kind == "ssubscribe":
                    self._confirm(message["channel"])
                elif kind == "sunsubscribe":
                    channel = message["channel"]
                    if self._unsubscribing.get(channel):
                        self._unsubscribing[channel] -= 1  # ours (a leave, maybe re-joined since)
                        if not self._unsubscribing[channel]:
                            del self._unsubscribing[channel]
                    elif self.subscribed.get(channel) == node and channel in self.wanted:
                        raise ConnectionError(f"redis moved {channel!r} away (slot migrated)")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._readers.pop(node, None)
            task = asyncio.get_running_loop().create_task(
                self._rebuild(f"{node}: {exc!r}"), name="socketio-shard-rebuild")
            _background.add(task)
            task.add_done_callback(_background.discard)

    def confirmed(self, channel: bytes) -> bool:
        return channel in self._confirmed

    def _confirm(self, channel: bytes) -> None:
        self._confirmed.add(channel)
        if self._on_confirmed is not None and channel in self.wanted:
            self._on_confirmed(channel)
        for waiter in self._waiters.pop(channel, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def _rebuild(self, why: str) -> None:
        """Drop every subscription, refresh the slot map, subscribe again."""
        if self._rebuilding:
            return
        self._rebuilding = True
        try:
            await self._rebuild_now(why)
        finally:
            self._rebuilding = False

    async def _rebuild_now(self, why: str) -> None:
        self.rebuilds += 1
        if self._on_error is not None:
            self._on_error()
        logger.warning("socket.io sharded fan-out: {}; subscribing again in {:.2f}s",
                       why, self._rebuild_delay)
        await self._close_pubsubs()
        await asyncio.sleep(self._rebuild_delay)
        self._rebuild_delay = min(self._rebuild_delay * 2, REBUILD_MAX_S)
        with contextlib.suppress(Exception):
            await self._shards.refresh()
        self._dirty.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name="socketio-shard-subscriber")

    async def _close_pubsubs(self) -> None:
        readers = [t for t in self._readers.values() if t is not asyncio.current_task()]
        self._readers = {}
        await cancel_and_wait(readers)
        pubsubs, self._pubsubs = self._pubsubs, {}
        self.subscribed.clear()
        self._confirmed.clear()
        self._unsubscribing.clear()
        if self._on_reset is not None:
            self._on_reset()
        for pubsub in pubsubs.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), CLOSE_TIMEOUT_S)

    def resubscribe(self) -> None:
        """Subscribe everything again on new connections (the fan-out
        canary went unheard)."""
        task = asyncio.get_running_loop().create_task(
            self._rebuild("re-subscribing (canary)"), name="socketio-shard-rebuild")
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        await cancel_and_wait([worker, *_background])
        await self._close_pubsubs()
        await self._shards.close()


_background: set[asyncio.Task[None]] = set()
