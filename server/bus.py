"""A tiny cross-node notification bus for control messages (session
revocations, presence changes, bans). Chat fan-out does not use it; that goes
through python-socketio's own Redis client manager.

Payloads are msgpack maps, never pickle. Delivery is at-most-once: a node that
is disconnected from Redis misses what was published meanwhile, so anything
that must survive (revocations, messages) is also stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import redis.asyncio as redis
from loguru import logger

from .redis_keys import RedisKeys
from .tasks import cancel_and_wait

Handler = Callable[[dict[str, Any]], Awaitable[None]]
ReconnectHandler = Callable[[], Awaitable[Any]]
CHANNEL_PREFIX = RedisKeys().bus  # with the default key prefix
RECONNECT_MAX_DELAY = 10.0
CLOSE_TIMEOUT_S = 2.0  # a deaf subscriber's connection is dropped, not waited on


class Bus:
    """In-process bus: one node, handlers called directly."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._reconnect_handlers: list[ReconnectHandler] = []

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    def on_reconnect(self, handler: ReconnectHandler) -> None:
        """Called after the bus got its connection back (Redis restarted or
        was unreachable): Redis may have lost what it held meanwhile."""
        self._reconnect_handlers.append(handler)

    async def reconnected(self) -> None:
        """The connection is back: run the reconnect handlers, in the order
        they were added."""
        logger.info("bus: redis connection is back")
        for handler in list(self._reconnect_handlers):
            try:
                await handler()
            except Exception:
                logger.exception("bus: reconnect handler failed")

    async def publish(self, topic: str, payload: dict[str, Any], *, log_errors: bool = True) -> None:
        """``log_errors=False``: the caller reports failures itself (a
        periodic publisher would log one traceback per period)."""
        await self._dispatch(topic, payload)

    async def _dispatch(self, topic: str, payload: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(topic, ())):
            try:
                await handler(payload)
            except Exception:
                logger.exception("bus handler for {} failed", topic)

    def resubscribe(self) -> None:
        """Drop the subscription and subscribe again on a fresh connection
        (``NodeWatch`` asks when this node stopped hearing its own canary)."""
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisBus(Bus):
    """Redis pub/sub bus shared by every node; reconnects with backoff."""

    def __init__(self, client: redis.Redis, *, on_error: Callable[[], None] | None = None,
                 subscriber: Callable[[], redis.Redis] | None = None,
                 channel_prefix: str = CHANNEL_PREFIX) -> None:
        """``subscriber``: a new client for each subscription (on a Redis
        Cluster, the next node: ``ClusterPubSubNodes.client``); by default
        the subscription uses ``client``'s pool. Topic ``t`` is the channel
        ``<channel_prefix>t``."""
        super().__init__()
        self._redis = client
        self._channel_prefix = channel_prefix
        self._subscriber = subscriber
        self._task: asyncio.Task[None] | None = None
        self._on_error = on_error
        self._subscribed = asyncio.Event()
        self._reconnect_tasks: set[asyncio.Task[None]] = set()

    async def publish(self, topic: str, payload: dict[str, Any], *, log_errors: bool = True) -> None:
        data = msgpack.packb(payload, use_bin_type=True)
        try:
            await self._redis.publish(self._channel_prefix + topic, data)
        except Exception:
            if self._on_error:
                self._on_error()
            if log_errors:
                logger.exception("bus publish to {} failed", topic)
            raise

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-bus-listener")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)

    async def stop(self) -> None:
        await cancel_and_wait([self._task, *self._reconnect_tasks])
        self._task = None

    def resubscribe(self) -> None:
        if self._task is None:
            return
        self._task = asyncio.create_task(self._relisten(self._task), name="redis-bus-listener")

    async def _relisten(self, deaf: asyncio.Task[None]) -> None:
        await cancel_and_wait([deaf])
        await self._listen(lost=True)  # what was published meanwhile was missed

    def _resubscribed(self, connection: Any) -> None:
        """redis-py reconnected the subscription by itself (its command
        retry) and the listener saw no error; Redis may still have restarted
        empty, so the reconnect handlers run all the same."""
        task = asyncio.get_running_loop().create_task(self.reconnected(),
                                                      name="redis-bus-reconnected")
        self._reconnect_tasks.add(task)
        task.add_done_callback(self._reconnect_tasks.discard)

    async def _listen(self, *, lost: bool = False) -> None:
        delay = 0.5
        while True:
            source = self._subscriber() if self._subscriber is not None else self._redis
            pubsub = source.pubsub(ignore_subscribe_messages=True)
            connection = None
            try:
                await pubsub.psubscribe(self._channel_prefix + "*")
                connection = pubsub.connection
                if connection is not None:
                    connection.register_connect_callback(self._resubscribed)
                self._subscribed.set()
                delay = 0.5
                if lost:
                    lost = False
                    await self.reconnected()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    topic = message["channel"].decode()[len(self._channel_prefix):]
                    try:
                        payload = msgpack.unpackb(message["data"], raw=False)
                    except Exception:
                        logger.warning("bus: undecodable message on {}", topic)
                        continue
                    await self._dispatch(topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                lost = True
                if self._on_error:
                    self._on_error()
                logger.warning("bus: redis listener lost ({}); retrying in {:.1f}s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
            finally:
                if connection is not None:
                    connection.deregister_connect_callback(self._resubscribed)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), CLOSE_TIMEOUT_S)
                if source is not self._redis:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(source.aclose(), CLOSE_TIMEOUT_S)
