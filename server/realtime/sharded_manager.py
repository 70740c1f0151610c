"""``ShardedRedisManager``: the Socket.IO fan-out per room on Redis 7
sharded pub/sub (issue 10; docs/scaling.md "Fan-out per room")."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from ..redis_client import cluster_nodes, connect_cluster, connect_redis, is_cluster_url
from .redis_manager import CANARY_METHOD, UrlAwareRedisManager
from .batch_publish import BatchPublisher
from .shard_publish import ClusterShards, ShardMap, SingleShard
from .shards import SUBSCRIBE_WAIT_S, ShardChannels

_CANARY_PREFIX = b'{"method":"' + CANARY_METHOD.encode() + b'"'
INTEREST_METHOD = "skillshare_interest"
_INTEREST_PREFIX = b'{"method":"' + INTEREST_METHOD.encode() + b'"'


def room_channel(channel: str, namespace: str, room: str) -> bytes:
    """The sharded channel of one room (python-socketio room: a chat room,
    a user's room, a socket's own sid room)."""
    return f"{channel}#{namespace}#{room}#".encode()


BROADCAST_ABOVE_REMOTE_ROOMS = 4
"""An emit naming more rooms than this that are held on other nodes goes out
once on the broadcast channel instead of once per room: a chat message of a
group room spread over nodes names each member's ``user:`` room, and ~50
SPUBLISHes, each decoded on its own on the other node, cost 1.5x the CPU per
delivery of one broadcast (docs/benchmarks.md, 2 nodes + Redis)."""

REMOTE_ROOMS_TRACKED = 100_000  # bound on ``_remote`` (cleared when passed)
CANARY_CHANNEL_SEARCH = 1_000  # node channel names tried to find one on each master


class ShardedRedisManager(UrlAwareRedisManager):
    """Fan-out that reaches only the nodes with a recipient (issue 10).

    An emit to one room (chat room, ``user:<id>``, ``presence:<id>``, a
    socket's sid) is ``SPUBLISH``ed on that room's sharded channel
    (``room_channel``); a node ``SSUBSCRIBE``s to a room's channel when the
    room gets its first local socket and unsubscribes after the last one
    leaves. An emit to a local sid is not published at all (a sid lives on
    one node). An emit to a list of rooms is published once per room, each
    copy naming the rooms before it (``skip_rooms``) so a socket in two of
    them still gets it once. Everything else — broadcasts to a whole
    namespace, emits with an ack callback, ``disconnect``/``enter_room``/
    ``leave_room``/``close_room`` of remote sids, ack returns, the canary —
    stays on the broadcast channel (``skillshare:socketio``), which every
    node still subscribes: nodes of the previous version keep being heard.

    ``sharded = False`` (``SKILLSHARE_FANOUT_MODE=broadcast``) is the
    previous behaviour: every emit on the broadcast channel."""

    sharded = True
    shard_metrics: Any = None  # RealtimeMetrics, for the channel gauge and counters
    _shards: ShardChannels | None = None
    _queue: asyncio.Queue | None = None
    _broadcast_heard: float = 0.0

    # Channels only this node subscribes to ("solo"): an emit to one of them
    # was delivered locally already, so it is not published at all (the
    # sender of a chat message in a room whose members' sockets are all on
    # this node would otherwise publish one copy per member and read every
    # copy back). A channel becomes solo when an SPUBLISH to it reached one
    # subscriber and this node holds a confirmed subscription to it; it stops
    # being solo when another node subscribes (each node announces every
    # confirmed subscription with an ``skillshare_interest`` message on it),
    # when this node leaves it, and when the subscriptions are made again.
    _solo: set[bytes]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._solo = set()
        # channels whose last publish reached another node (from SPUBLISH's
        # receiver count): what an emit to many rooms weighs before it picks
        # the broadcast channel
        self._remote: set[bytes] = set()
        # another node's announcements heard so far, and how many had been heard when
        # the last publish to each subscribed channel was queued: a publish result
        # that raced with an announcement does not make its channel solo
        self._interest_seq = 0
        self._seq_at_publish: dict[bytes, int] = {}
        self._announced: dict[bytes, asyncio.Event] = {}  # set when our announcement came back
        self._canaries: dict[bytes, float] = {}  # canary channel -> when it was last heard
        self._canary_masters: tuple[str, ...] | None = None

    # The canary goes out on the broadcast channel and on this node's own
    # sharded channels, one on each shard (``_canary_channels``): the fan-out
    # counts as heard only while all come back, so a subscription connection
    # that went deaf on any master of a cluster is noticed.
    @property
    def last_heard(self) -> float:
        if self._shards is None or not self._canaries:
            return self._broadcast_heard
        return min(self._broadcast_heard, *self._canaries.values())

    @last_heard.setter
    def last_heard(self, value: float) -> None:
        self._broadcast_heard = value
        for channel in self._canaries:
            self._canaries[channel] = value

    def _heard_broadcast(self) -> None:
        self._broadcast_heard = time.monotonic()

    def _node_channel(self, index: int = 0) -> bytes:
        return room_channel(self.channel, "node", self.host_id if index == 0
                            else f"{self.host_id}.{index}")

    def _canary_channels(self) -> list[bytes]:
        """One of this node's own channels on each shard (each the first
        ``_node_channel(i)`` whose slot that master owns), subscribed;
        worked out again when the masters change (a failover)."""
        shards = self._shards
        if shards is None:
            return []
        masters = tuple(shards.masters())
        if masters == self._canary_masters:
            return list(self._canaries)
        chosen: dict[str, bytes] = {}
        for index in range(CANARY_CHANNEL_SEARCH):
            if len(chosen) == len(masters):
                break
            channel = self._node_channel(index)
            chosen.setdefault(shards.node_for(channel), channel)
        channels = [chosen[m] for m in masters if m in chosen] or [self._node_channel()]
        now = time.monotonic()
        for channel in list(self._canaries):
            if channel not in channels:
                del self._canaries[channel]
                shards.drop(channel)
        for channel in channels:
            if channel not in self._canaries:
                self._canaries[channel] = now  # a new shard's canary: heard as of now
                shards.want(channel)
        self._canary_masters = masters
        return channels

    async def send_canary(self) -> None:
        # The sharded ones first: they are only queued, while the broadcast
        # publish goes through one node of the URL and waits on it if it hangs.
        for channel in self._canary_channels():
            await self._spublish(channel, {"method": CANARY_METHOD, "host_id": self.host_id})
        await super().send_canary()

    def _shard_channels(self) -> ShardChannels | None:
        if not self.sharded or getattr(self, "write_only", False):
            return None
        if self._shards is None:
            self._shards = ShardChannels(self._shard_map(), self._deliver_sharded,
                                         on_change=self._channels_changed,
                                         on_error=self._shard_error,
                                         on_confirmed=self._announce_interest,
                                         on_reset=self._solo.clear)
            self._canaries[self._node_channel()] = time.monotonic()
            self._shards.want(self._node_channel())
        return self._shards

    def _shard_map(self) -> ShardMap:
        if is_cluster_url(self.redis_url):
            return ClusterShards(connect_cluster(self.redis_url),
                                 password=cluster_nodes(self.redis_url)[1])
        return SingleShard(connect_redis(self.redis_url))  # one Redis, or a Sentinel's master

    def _channels_changed(self, count: int) -> None:
        if self.shard_metrics is not None:
            self.shard_metrics.fanout_channels.set(count)

    def _shard_error(self) -> None:
        if self.shard_metrics is not None:
            self.shard_metrics.bus_errors.inc()

    # -- subscriptions follow local room membership ------------------------------

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        new = room is not None and room not in self.rooms.get(namespace, {})
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        shards = self._shard_channels() if new else None
        if shards is not None:
            shards.want(room_channel(self.channel, namespace, room))

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        if room is None or room in self.rooms.get(namespace, {}) or self._shards is None:
            return
        channel = room_channel(self.channel, namespace, room)
        self._solo.discard(channel)
        self._seq_at_publish.pop(channel, None)
        self._announced.pop(channel, None)
        self._shards.drop(channel)

    async def enter_room(self, sid, namespace, room, eio_sid=None):
        """Returns once the room's subscription is confirmed and this node's
        announcement of it came back from Redis (so Redis has handed it to
        every other node holding the room, which stop treating it as solo):
        an event published right after a join reaches the socket. At most
        ``SUBSCRIBE_WAIT_S`` in all."""
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if self._shards is None or room is None:
            return
        channel = room_channel(self.channel, namespace or "/", room)
        started = time.monotonic()
        await self._shards.ready(channel)
        announced = self._announced.get(channel)
        if announced is not None:
            left = SUBSCRIBE_WAIT_S - (time.monotonic() - started)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(announced.wait(), max(left, 0.0))

    # -- publishing --------------------------------------------------------------

    async def _publish(self, data):
        if not self.sharded or data.get("method") != "emit" or data.get("callback") is not None:
            return await super()._publish(data)
        room = data.get("room")
        namespace = data.get("namespace") or "/"
        if isinstance(room, str):
            if data.get("host_id") == self.host_id and self.is_sid_room(namespace, room):
                return True  # a local socket: delivered already
            return await self._spublish(room_channel(self.channel, namespace, room), data)
        if isinstance(room, list) and room and all(isinstance(r, str) for r in room):
            return await self._spublish_rooms(namespace, room, data)
        return await super()._publish(data)

    async def _spublish(self, channel: bytes, data: dict) -> Any:
        return await self._spublish_many([(channel, data)])

    async def _spublish_rooms(self, namespace: str, rooms: list[str], data: dict) -> Any:
        """One copy per room, in one round trip per Redis node. Copies after
        the first name the rooms before them (``skip_rooms``) unless every
        room is a ``disjoint_room_prefix`` room (a socket is in one of them
        at most: ``user:<id>``), so no socket gets the event twice."""
        channels = [room_channel(self.channel, namespace, name) for name in rooms]
        if sum(channel in self._remote for channel in channels) > BROADCAST_ABOVE_REMOTE_ROOMS:
            return await super()._publish(data)
        disjoint = self.disjoint_room_prefix is not None and all(
            r.startswith(self.disjoint_room_prefix) for r in rooms)
        items = []
        for i, (name, channel) in enumerate(zip(rooms, channels, strict=True)):
            part = {**data, "room": name}
            if i and not disjoint:
                part["skip_rooms"] = rooms[:i]
            items.append((channel, part))
        return await self._spublish_many(items)

    disjoint_room_prefix: str | None = None

    async def _spublish_many(self, items: list[tuple[bytes, dict]]) -> Any:
        payloads = []
        for channel, data in items:
            if channel in self._solo and data.get("method") == "emit":
                continue  # only this node holds it: delivered locally already
            if self._shards is not None and channel in self._shards.wanted:
                self._seq_at_publish[channel] = self._interest_seq
            if data.get("host_id") == self.host_id and data.get("method") == "emit":
                data = {"method": "emit", "host_id": self.host_id, **data}  # see _listen
            payloads.append((channel, self.json.dumps(data)))
        if payloads:
            self._batch_publisher().publish(payloads)
        return True

    _publisher: BatchPublisher | None = None

    def _batch_publisher(self) -> BatchPublisher:
        if self._publisher is None:
            # its own connection (a Sentinel's master, a cluster's masters): subscriptions
            # and publishes never wait for each other's pooled connections
            self._publisher = BatchPublisher(self._shard_map(), on_error=self._shard_error,
                                             on_sent=self._sent)
        return self._publisher

    def _sent(self, results: list[tuple[bytes, int]]) -> None:
        shards = self._shards
        if len(self._remote) > REMOTE_ROOMS_TRACKED:
            self._remote.clear()
        for channel, receivers in results:
            if receivers > (1 if shards is not None and shards.confirmed(channel) else 0):
                self._remote.add(channel)
            else:
                self._remote.discard(channel)
        if shards is None:
            return
        for channel, receivers in results:
            if receivers == 1 and channel not in self._canaries and shards.confirmed(channel) \
                    and self._seq_at_publish.get(channel) == self._interest_seq:
                self._solo.add(channel)

    def _announce_interest(self, channel: bytes) -> None:
        if channel in self._canaries:
            return
        self._announced.setdefault(channel, asyncio.Event()).clear()
        self._batch_publisher().publish(
            [(channel, self.json.dumps({"method": INTEREST_METHOD, "host_id": self.host_id}))])

    # -- receiving ---------------------------------------------------------------

    _room_received: Any = None
    _own_interest_prefix: bytes | None = None

    def _own_interest(self) -> bytes:
        if self._own_interest_prefix is None:
            dumped = self.json.dumps({"method": INTEREST_METHOD, "host_id": self.host_id})
            self._own_interest_prefix = dumped.encode() if isinstance(dumped, str) else dumped
        return self._own_interest_prefix

    def _deliver_sharded(self, channel: bytes, data: bytes) -> None:
        own_emit = getattr(self, "_own_emit", None)
        if own_emit is not None and data.startswith(own_emit):
            return  # an own emit back from Redis: delivered locally when it was emitted
        if data.startswith(_INTEREST_PREFIX):
            if not data.startswith(self._own_interest()):
                self._interest_seq += 1
                self._solo.discard(channel)  # another node subscribed to it
            elif (announced := self._announced.get(channel)) is not None:
                announced.set()
            return
        if data.startswith(_CANARY_PREFIX):
            with contextlib.suppress(Exception):
                if self.json.loads(data).get("host_id") == self.host_id \
                        and channel in self._canaries:
                    self._canaries[channel] = time.monotonic()
            return
        if self._room_received is None and self.shard_metrics is not None:
            self._room_received = self.shard_metrics.fanout_received.labels("room")
        if self._room_received is not None:
            self._room_received.inc()
        if self._queue is not None:
            self._queue.put_nowait(data)

    async def _handle_emit(self, message):
        skip_rooms = message.get("skip_rooms")
        if skip_rooms:
            namespace = message.get("namespace") or "/"
            skip = message.get("skip_sid")
            skip = set(skip if isinstance(skip, list) else [skip] if skip else [])
            for name in skip_rooms:
                skip.update(self.rooms.get(namespace, {}).get(name, {}))
            message = {**message, "skip_sid": list(skip)}
        await super()._handle_emit(message)

    async def _listen(self):
        """The broadcast channel and the node's sharded channels, merged."""
        if self._shard_channels() is None:
            async for data in self._listen_broadcast():
                yield data
            return
        queue = self._queue = asyncio.Queue()

        async def pump() -> None:
            async for item in self._listen_broadcast():
                if self.shard_metrics is not None:
                    self.shard_metrics.fanout_received.labels("broadcast").inc()
                queue.put_nowait(item)

        task = asyncio.get_running_loop().create_task(pump(), name="socketio-broadcast-listener")
        try:
            while True:
                yield await queue.get()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def resubscribe(self) -> None:
        super().resubscribe()
        if self._shards is not None:
            self._shards.resubscribe()

    async def close_shards(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()
        shards, self._shards = self._shards, None
        if shards is not None:
            await shards.close()
