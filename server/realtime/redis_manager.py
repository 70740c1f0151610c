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
- anything else: python-socketio's own connection.

It also carries its own canary (``NodeWatch`` sends one every
``SKILLSHARE_BUS_CANARY_INTERVAL``): a subscriber that stays connected but
hears nothing (python-socketio #1581, #826) stops cross-node fan-out without
any error, so the node watches for its own canary on the fan-out channel,
reports ``fanout`` on ``/readyz`` and re-subscribes when it does not come back.

The bus itself is python-socketio's message format, written with orjson
(``BUS_JSON``: the same JSON, so stock python-socketio nodes and
write-only emitters interoperate), and a node's own emits — which come back
to it from Redis and which python-socketio would decode only to drop — are
recognised by their first bytes and dropped undecoded (``_publish`` writes
``method`` and ``host_id`` first)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import orjson
import socketio
from loguru import logger

from ..redis_client import ClusterPubSubNodes, connect_redis, is_cluster_url, is_sentinel_url


CANARY_METHOD = "skillshare_canary"
_CANARY_MARK = CANARY_METHOD.encode()
CLOSE_TIMEOUT_S = 2.0
LISTEN_RETRY_FIRST_S = 0.5
LISTEN_RETRY_MAX_S = 10.0  # python-socketio waits up to 60 s between attempts


class BusJson:
    """The JSON module of the bus: writes with orjson, falling back to the
    standard library for what orjson refuses (non-string keys, integers
    beyond 64 bits); reads with the standard library (orjson would read
    such integers as floats), so the bus carries what python-socketio's own
    JSON would."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> bytes | str:
        try:
            return orjson.dumps(obj)
        except TypeError:
            return json.dumps(obj, **kwargs)

    loads = staticmethod(json.loads)


BUS_JSON = BusJson()


class UrlAwareRedisManager(socketio.AsyncRedisManager):
    _cluster_nodes: ClusterPubSubNodes | None = None
    redis: Any  # python-socketio's client (set by _redis_connect)
    last_heard: float = 0.0  # monotonic; the NodeWatch Channel protocol
    _remote_listeners: dict[str, list[Callable[[Any], None]]] | None = None

    def on_remote_emit(self, event: str, listener: Callable[[Any], None]) -> None:
        """Call ``listener(data)`` for every ``event`` another node emits
        that reaches this node, before it is delivered here."""
        if self._remote_listeners is None:
            self._remote_listeners = {}
        self._remote_listeners.setdefault(event, []).append(listener)

    async def _handle_emit(self, message):
        listeners = self._remote_listeners and self._remote_listeners.get(message.get("event"))
        if listeners:
            for listener in listeners:
                try:
                    listener(message.get("data"))
                except Exception:
                    logger.exception("a listener of remote {} emits failed", message.get("event"))
        await super()._handle_emit(message)

    def set_server(self, server: Any) -> None:
        super().set_server(server)
        self.json = BUS_JSON  # python-socketio would use the server's packet JSON
        self._own_emit = b'{"method":"emit","host_id":' + orjson.dumps(self.host_id) + b","

    async def _publish(self, data):
        if data.get("method") == "emit" and data.get("host_id") == self.host_id:
            data = {"method": "emit", "host_id": self.host_id, **data}  # see _listen
        return await super()._publish(data)

    async def send_canary(self) -> None:
        if getattr(self, "thread", None) is None:  # not listening before the first socket
            self.last_heard = time.monotonic()
            return
        await self._publish({"method": CANARY_METHOD, "host_id": self.host_id})

    def _heard_broadcast(self) -> None:
        self.last_heard = time.monotonic()

    _listening: Any = None  # the PubSub the listener reads (self.pubsub may be newer)

    def resubscribe(self) -> None:
        """Make the listener subscribe again on a new connection: its socket
        is dropped, the read fails, and ``_redis_listen_with_retries``
        connects anew."""
        connection = getattr(self._listening, "connection", None)
        if connection is not None:
            task = asyncio.get_running_loop().create_task(_disconnect_quietly(connection))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    async def _redis_listen_with_retries(self):
        """python-socketio's loop (5.18), keeping the PubSub it listens on
        and with a shorter first retry; a read that ends without an error
        (a closed PubSub) counts as a failure instead of spinning."""
        retry_sleep = LISTEN_RETRY_FIRST_S
        while True:
            pubsub = None
            try:
                self._redis_connect()
                pubsub = self._listening = self.pubsub
                await pubsub.subscribe(self.channel)
                retry_sleep = LISTEN_RETRY_FIRST_S
                async for message in pubsub.listen():
                    yield message
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._get_logger().error(
                    "Cannot receive from redis... retrying in %.1f secs (%s)", retry_sleep, exc)
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(pubsub.aclose(), CLOSE_TIMEOUT_S)
                await asyncio.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, LISTEN_RETRY_MAX_S)

    async def _listen(self):
        async for data in self._listen_broadcast():
            yield data

    async def _listen_broadcast(self):
        own_emit = getattr(self, "_own_emit", None)
        async for data in super()._listen():
            if own_emit is not None and isinstance(data, (bytes, bytearray)) \
                    and data.startswith(own_emit):
                continue  # delivered locally when it was emitted
            if isinstance(data, (bytes, bytearray)) and _CANARY_MARK in data:
                with contextlib.suppress(Exception):
                    message = self.json.loads(data)
                    if message.get("method") == CANARY_METHOD and \
                            message.get("host_id") == self.host_id:
                        self._heard_broadcast()
                continue
            yield data

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


async def _disconnect_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.disconnect(), CLOSE_TIMEOUT_S)


async def _close_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.aclose(), CLOSE_TIMEOUT_S)
