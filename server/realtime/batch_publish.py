"""``BatchPublisher``: sharded fan-out publishes in the background, a queue
per master (``server/realtime/shard_publish.py`` says where a channel lives)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from redis.exceptions import SlotNotCoveredError

from ..tasks import cancel_and_wait
from .shard_publish import CLOSE_TIMEOUT_S, PUBLISH_TIMEOUT_S, ShardMap

# Publishes waiting for one master (or for the slot map) at most; past it the
# oldest are dropped and counted, since the node keeps serving while a master
# is down. The busiest node measured was offered 2,700 deliveries/s, at most
# one publish each (docs/scaling.md "Numbers"): this holds ~4 s of that, ~10 MB
# at ~1 KB a publish, which covers a failover with a short node timeout (2 s in
# the tests, then PUBLISH_TIMEOUT_S); through a longer one the oldest go first.
# They would reach clients late anyway; the clients catch up with ``room:sync``.
QUEUE_LIMIT = 10_000

Sent = Callable[[list[tuple[bytes, int]]], None]  # (channel, receivers) per publish


@dataclass(slots=True)
class _Publish:
    seq: int  # queue order across the node's queues
    channel: bytes
    data: bytes | str
    retried: bool = False


class _Queue:
    """Publishes oldest first (by ``seq``) and the task sending them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: deque[_Publish] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.overflowing = False  # dropping since the last batch was taken

    def add(self, items: list[_Publish]) -> None:
        """``items`` in order; older ones than some queued (a retry, a
        rerouted queue) go in their place."""
        if not self.items or self.items[-1].seq < items[0].seq:
            self.items.extend(items)
        else:
            self.items = deque(heapq.merge(self.items, items, key=lambda p: p.seq))


@dataclass(slots=True)
class _Hold:
    """Publishes to ``channels`` made while a batch holding some is retried
    (for as long as the slot map takes to read, PUBLISH_TIMEOUT_S at most)."""

    channels: set[bytes]
    items: list[_Publish] = field(default_factory=list)


class BatchPublisher:
    """Publishes in the background, each master's from a queue of its own:
    an emit costs its sender a list append, not a connection and a round
    trip each (a busy node had a hundred publishes in flight and ran out of
    pooled connections). Each publish is routed to its channel's master when
    it is queued; per master, everything queued while the previous batch was
    in flight goes in one pipeline, one batch at a time, so each channel
    keeps the emit order, and a master that stops answering holds up only
    its own channels. A batch that fails is retried once after re-reading a
    cluster's slot map (a channel that moved goes to its new master's queue,
    in its place), then dropped and counted (python-socketio's rule for a
    failed publish). Publishes wait in one more queue while the slot map is
    not read yet or does not cover their slot."""

    def __init__(self, shards: ShardMap, *, on_error: Callable[[], None] | None = None,
                 on_sent: Sent | None = None, queue_limit: int = QUEUE_LIMIT) -> None:
        self._shards = shards
        self._on_error = on_error
        self._on_sent = on_sent
        self._limit = queue_limit
        self._queues: dict[str, _Queue] = {}
        self._unrouted = _Queue("slot map")
        self._holds: list[_Hold] = []  # channels whose publishes wait for a retry
        self._seq = itertools.count()
        self._outstanding = 0  # queued or in flight
        self._idle = asyncio.Event()
        self._idle.set()
        self.dropped = 0  # publishes given up on

    def publish(self, items: list[tuple[bytes, bytes | str]]) -> None:
        if not items:
            return
        self._outstanding += len(items)
        self._idle.clear()
        self._route(_Publish(next(self._seq), channel, data) for channel, data in items)

    def _route(self, items: Iterable[_Publish]) -> None:
        """Onto their masters' queues, in order; while some wait for the slot
        map, everything newer waits behind them."""
        by_node: dict[str, list[_Publish]] = {}
        unrouted: list[_Publish] = []
        for item in items:
            if self._holds and self._held(item):
                continue
            node = None
            if not self._unrouted.items and not unrouted:
                with contextlib.suppress(SlotNotCoveredError):
                    node = self._shards.node_for(item.channel)
            if node is None:
                unrouted.append(item)
            else:
                by_node.setdefault(node, []).append(item)
        for node, queued in by_node.items():
            queue = self._queues.get(node)
            if queue is None:
                queue = self._queues[node] = _Queue(node)
            self._add(queue, queued, self._send_loop)
        if unrouted:
            self._add(self._unrouted, unrouted, self._route_loop)

    def _held(self, item: _Publish) -> bool:
        for hold in self._holds:
            if item.channel in hold.channels:
                hold.items.append(item)
                return True
        return False

    def _add(self, queue: _Queue, items: list[_Publish],
             run: Callable[[_Queue], Coroutine[Any, Any, None]]) -> None:
        queue.add(items)
        excess = len(queue.items) - self._limit
        if excess > 0:
            if not queue.overflowing:
                logger.warning("socket.io sharded fan-out: more than {} publishes wait for {};"
                               " dropping the oldest", self._limit, queue.name)
            queue.overflowing = True
            for _ in range(excess):
                queue.items.popleft()
            self._drop(excess)
        queue.wake.set()
        if queue.task is None or queue.task.done():
            queue.task = asyncio.get_running_loop().create_task(
                run(queue), name=f"socketio-shard-publisher-{queue.name}")

    async def _send_loop(self, queue: _Queue) -> None:
        while True:
            await queue.wake.wait()
            queue.wake.clear()
            while queue.items:
                batch, queue.items = list(queue.items), deque()
                queue.overflowing = False
                await self._send(queue, batch)
            if queue.name not in self._shards.masters() and self._queues.get(queue.name) is queue:
                del self._queues[queue.name]  # failed over or moved away: no more publishes
                return

    async def _send(self, queue: _Queue, batch: list[_Publish]) -> None:
        try:
            counts = await self._shards.publish_on(queue.name, [(p.channel, p.data) for p in batch])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._retry(queue, batch, exc)
            return
        self._settled(len(batch))
        if self._on_sent is not None:
            self._on_sent([(p.channel, n) for p, n in zip(batch, counts, strict=True)])

    async def _retry(self, queue: _Queue, batch: list[_Publish], exc: Exception) -> None:
        """Re-reads the slot map, then routes the batch's first tries and the
        queue behind them again; second tries are given up. Meanwhile newer
        publishes to their channels are held, lest a channel that moved gets
        them on its new master first."""
        hold = _Hold({p.channel for p in batch} | {p.channel for p in queue.items})
        self._holds.append(hold)
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._shards.reroute(queue.name), PUBLISH_TIMEOUT_S)
        finally:
            self._holds.remove(hold)
        again = [p for p in batch if not p.retried]
        if len(again) < len(batch):
            logger.error("socket.io sharded fan-out: {} publishes to {} dropped ({!r})",
                         len(batch) - len(again), queue.name, exc)
            self._drop(len(batch) - len(again))
        for item in again:
            item.retried = True
        queued, queue.items = queue.items, deque()
        held = sorted(hold.items, key=lambda p: p.seq)  # another retry may have added older ones
        self._route(heapq.merge(again, queued, held, key=lambda p: p.seq))

    async def _route_loop(self, queue: _Queue) -> None:
        """Reads the slot map, then routes what waited for it; a publish
        whose slot is still not covered after a second read is given up."""
        read_map = self._shards.prepare
        while queue.items:
            try:
                await asyncio.wait_for(read_map(), PUBLISH_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("socket.io sharded fan-out: reading the slot map failed ({!r})", exc)
            read_map = self._shards.reroute
            waiting, queue.items = list(queue.items), deque()
            queue.overflowing = False
            routable: list[_Publish] = []
            stuck: list[_Publish] = []
            for item in waiting:
                if self._covered(item.channel):
                    routable.append(item)
                elif not item.retried:
                    item.retried = True
                    stuck.append(item)
            if len(routable) + len(stuck) < len(waiting):
                lost = len(waiting) - len(routable) - len(stuck)
                logger.error("socket.io sharded fan-out: {} publishes dropped (slot not covered)",
                             lost)
                self._drop(lost)
            self._route(routable)  # different slots than the stuck ones: not held up by them
            if stuck:
                queue.add(stuck)

    def _covered(self, channel: bytes) -> bool:
        try:
            self._shards.node_for(channel)
        except SlotNotCoveredError:
            return False
        return True

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self._on_error is not None:
            self._on_error()
        self._settled(count)

    def _settled(self, count: int) -> None:
        self._outstanding -= count
        if self._outstanding <= 0:
            self._idle.set()

    async def flush(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Until everything queued so far went out (at most ``timeout`` s)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        await self.flush()
        queues = [*self._queues.values(), self._unrouted]
        await cancel_and_wait([q.task for q in queues])
        await self._shards.close()
