"""The Redis bus between nodes (server/realtime/redis_manager.py): a node's
own emits come back to it from Redis and are dropped without being decoded
(they were delivered locally when emitted), and the bus stays python-socketio's
JSON message format, so stock python-socketio publishers and subscribers
interoperate with our nodes. Delivery across nodes (once, in order,
``skip_sid``) is in test_fanout.py."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis
import socketio

from server.keys import SIO
from server.realtime.redis_manager import BUS_JSON
from tests.support.realtime import SocketUser, register_user

CHANNEL = "skillshare:socketio"


def _url(client) -> str:
    return str(client.make_url("")).rstrip("/")


class _DecodeSpy:
    """Wraps a manager's JSON module and keeps what ``loads`` decoded."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.decoded: list[dict] = []

    def dumps(self, *args, **kwargs):
        return self.inner.dumps(*args, **kwargs)

    def loads(self, data, *args, **kwargs):
        value = self.inner.loads(data, *args, **kwargs)
        if isinstance(value, dict):
            self.decoded.append(value)
        return value


async def test_a_node_drops_its_own_emits_from_the_bus_without_decoding_them(make_client,
                                                                             redis_url):
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    user = await register_user(_url(node_a), "member")
    on_a = await SocketUser(_url(node_a), user["access_token"], name="on a").connect()
    on_b = await SocketUser(_url(node_b), user["access_token"], name="on b").connect()
    manager_a = node_a.app[SIO].manager
    spy = _DecodeSpy(manager_a.json)
    manager_a.json = spy
    try:
        await node_a.app[SIO].enter_room(on_a.sio.get_sid(), "r")
        await node_b.app[SIO].enter_room(on_b.sio.get_sid(), "r")
        for n in range(3):
            await node_a.app[SIO].emit("message", {"body": f"from a {n}"}, to="r")
        # node a hears its own emits on the bus before this later one from b
        await node_b.app[SIO].emit("message", {"body": "from b"}, to="r")
        for s in (on_a, on_b):
            for body in ("from a 2", "from b"):
                await s.wait_for("message", lambda m, body=body: m["body"] == body, timeout=10)
        await asyncio.sleep(0.2)
        for s in (on_a, on_b):  # once each, a's in emit order (b's may come first on b)
            bodies = [m["body"] for m in s.received("message")]
            assert sorted(bodies) == ["from a 0", "from a 1", "from a 2", "from b"], s.name
            assert [b for b in bodies if b.startswith("from a")] == \
                ["from a 0", "from a 1", "from a 2"], s.name
        decoded_emits = [m for m in spy.decoded if m.get("method") == "emit"]
        assert [m["host_id"] for m in decoded_emits] == [node_b.app[SIO].manager.host_id]
    finally:
        for s in (on_a, on_b):
            await s.close()


async def test_stock_python_socketio_reads_and_writes_our_bus(make_client, redis_url):
    node = await make_client(redis_url=redis_url)
    user = await register_user(_url(node), "member")
    sock = await SocketUser(_url(node), user["access_token"], name="member").connect()
    listener = aioredis.Redis.from_url(redis_url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.ssubscribe(CHANNEL + "#/#r#")  # room emits go on the room's sharded channel
    stock = socketio.AsyncRedisManager(redis_url, channel=CHANNEL, write_only=True)
    try:
        await node.app[SIO].enter_room(sock.sio.get_sid(), "r")
        # a stock write-only emitter (another service) reaches our sockets
        await stock.emit("message", {"body": "from a stock emitter", "text": "héllo ✓"},
                         room="r")
        got = await sock.wait_for("message", lambda m: m["body"] == "from a stock emitter",
                                  timeout=10)
        assert got["text"] == "héllo ✓"
        # and what our node publishes is python-socketio's message, plain JSON, on the
        # room's channel (stock python-socketio subscribers read only the broadcast one)
        await node.app[SIO].emit("message", {"body": "ours", "text": "héllo ✓"}, to="r")
        ours = None
        async with asyncio.timeout(10):
            while ours is None:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                decoded = json.loads(message["data"])
                if decoded.get("method") == "emit" and decoded["data"][0]["body"] == "ours":
                    ours = decoded
        assert ours["event"] == "message" and ours["room"] == "r" and ours["namespace"] == "/"
        assert ours["data"] == [{"body": "ours", "text": "héllo ✓"}]
        assert ours["host_id"] == node.app[SIO].manager.host_id
        assert ours["skip_sid"] is None and ours["callback"] is None
    finally:
        await sock.close()
        await pubsub.aclose()
        await listener.aclose()
        if stock.redis is not None:
            await stock.redis.aclose()


def test_the_bus_json_carries_what_the_standard_library_would():
    value = {"big": 2**70, "neg": -(2**65), "text": "héllo ✓", "nested": [1.5, None, True],
             1: "an integer key"}
    decoded = BUS_JSON.loads(BUS_JSON.dumps(value))
    assert json.dumps(decoded) == json.dumps(json.loads(json.dumps(value)))  # ints stay ints
    plain = {"method": "emit", "data": [{"n": 2**70}]}
    decoded = BUS_JSON.loads(json.dumps(plain))  # a stock node's message
    assert json.dumps(decoded) == json.dumps(plain)


async def test_a_node_has_one_id_on_the_control_bus_and_the_fanout_channel(make_client, redis_url):
    from server.keys import NODE_ID, NODE_WATCH

    node = await make_client(redis_url=redis_url)
    other = await make_client(redis_url=redis_url)
    node_id = node.app[NODE_ID]
    assert node.app[NODE_WATCH].node_id == node_id  # heartbeats, presence, relay placement
    assert node.app[SIO].manager.host_id == node_id  # the Socket.IO fan-out's host_id
    assert other.app[SIO].manager.host_id == other.app[NODE_ID] != node_id
