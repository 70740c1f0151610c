"""Fan-out that reaches only the nodes with a recipient (issue 10 item 1,
server/realtime/redis_manager.py ``ShardedRedisManager`` and
server/realtime/shards.py): a node holds a sharded subscription (Redis 7
``SSUBSCRIBE``) for a room only while a local socket is in it, a node with
no socket in a room reads nothing of that room's events, and delivery
across nodes still reaches every socket once."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import redis.asyncio as aioredis

from server.keys import SIO
from tests.support.realtime import SocketUser, register_user

CHANNEL = "skillshare:socketio"


def _url(client) -> str:
    return str(client.make_url("")).rstrip("/")


def _room(room: str) -> bytes:
    return f"{CHANNEL}#/#{room}#".encode()


async def _shard_channels(redis_url: str) -> set[bytes]:
    """What Redis itself says is subscribed (``PUBSUB SHARDCHANNELS``)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        return set(await client.execute_command("PUBSUB", "SHARDCHANNELS"))
    finally:
        await client.aclose()


async def _eventually(check, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def _metric(client, name: str, labels: str = "") -> float:
    text = await (await client.get("/metrics")).text()
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def _connected(client, name: str) -> SocketUser:
    user = await register_user(_url(client), name)
    return await SocketUser(_url(client), user["access_token"], name=name).connect()


async def test_a_node_subscribes_on_the_first_local_join_and_unsubscribes_after_the_last(
        make_client, redis_url):
    node = await make_client(redis_url=redis_url)
    first, second = await _connected(node, "first"), await _connected(node, "second")
    sio = node.app[SIO]
    try:
        assert _room("r") not in await _shard_channels(redis_url)
        await sio.enter_room(first.sio.get_sid(), "r")
        # confirmed by Redis by the time enter_room returns
        assert _room("r") in await _shard_channels(redis_url)
        await sio.enter_room(second.sio.get_sid(), "r")
        await sio.leave_room(first.sio.get_sid(), "r")
        await asyncio.sleep(0.2)
        assert _room("r") in await _shard_channels(redis_url)  # second is still in it
        assert await _metric(node, "skillshare_fanout_channels") >= 1
        second_sid = second.sio.get_sid()
        assert _room(second_sid) in await _shard_channels(redis_url)  # its own sid room
        await second.close()  # the last one leaves by disconnecting

        async def gone() -> bool:
            channels = await _shard_channels(redis_url)
            return _room("r") not in channels and _room(second_sid) not in channels

        await _eventually(gone)
    finally:
        await first.close()
        await second.close()


async def test_a_node_without_a_socket_in_a_room_reads_none_of_its_events(make_client,
                                                                          redis_url):
    busy = await make_client(redis_url=redis_url)
    idle = await make_client(redis_url=redis_url)
    sender, member = await _connected(busy, "sender"), await _connected(busy, "member")
    bystander = await _connected(idle, "bystander")  # on the idle node, not in the room
    try:
        for sock in (sender, member):
            await busy.app[SIO].enter_room(sock.sio.get_sid(), "busy-room")
        before = await _metric(idle, "skillshare_fanout_received_total", '{channel="room"}')
        for n in range(20):
            await busy.app[SIO].emit("message", {"body": f"m{n}"}, to="busy-room")
        await member.wait_for("message", lambda m: m["body"] == "m19", timeout=10)
        # an event for the idle node's bystander still arrives, after all of those
        await busy.app[SIO].emit("message", {"body": "for the bystander"},
                                 to=f"user:{bystander_id(idle, bystander)}")
        await bystander.wait_for("message", lambda m: m["body"] == "for the bystander",
                                 timeout=10)
        after = await _metric(idle, "skillshare_fanout_received_total", '{channel="room"}')
        assert after - before == 1  # the bystander's event only
        assert [m["body"] for m in bystander.received("message")] == ["for the bystander"]
        assert _room("busy-room") not in idle.app[SIO].manager._shards.wanted
    finally:
        for sock in (sender, member, bystander):
            await sock.close()


def bystander_id(client, sock: SocketUser) -> str:
    """The user id behind a connected socket (it sits in ``user:<id>``)."""
    manager = client.app[SIO].manager
    rooms = manager.get_rooms(sock.sio.get_sid(), "/")
    return next(r for r in rooms if isinstance(r, str) and r.startswith("user:"))[5:]


async def test_an_emit_to_several_rooms_reaches_a_remote_socket_in_two_of_them_once(
        make_client, redis_url):
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    on_b = await _connected(node_b, "in-both")
    only_x = await _connected(node_b, "in-x-only")
    try:
        for room in ("x", "y"):
            await node_b.app[SIO].enter_room(on_b.sio.get_sid(), room)
        await node_b.app[SIO].enter_room(only_x.sio.get_sid(), "x")
        await node_a.app[SIO].emit("message", {"body": "to x and y"}, to=["y", "x", "nobody"])
        await node_a.app[SIO].emit("message", {"body": "after"}, to="x")
        for sock in (on_b, only_x):
            await sock.wait_for("message", lambda m: m["body"] == "after", timeout=10)
            assert [m["body"] for m in sock.received("message")] == ["to x and y", "after"]
    finally:
        await on_b.close()
        await only_x.close()


async def test_an_emit_to_a_room_nobody_holds_costs_one_publish_and_reaches_no_node(
        make_client, redis_url):
    quiet = {"bus_canary_interval": 60, "bus_canary_timeout": 120}  # no canary SPUBLISH meanwhile
    node_a = await make_client(redis_url=redis_url, **quiet)
    node_b = await make_client(redis_url=redis_url, **quiet)
    socks = [await _connected(node_a, "a"), await _connected(node_b, "b")]
    spy = aioredis.Redis.from_url(redis_url)
    try:
        await spy.config_resetstat()
        received = [await _metric(n, "skillshare_fanout_received_total", '{channel="room"}')
                    for n in (node_a, node_b)]
        await node_a.app[SIO].emit("message", {"body": "into the void"}, to="user:nobody")
        await node_a.app[SIO].manager._publisher.flush()  # publishes go out in the background
        stats = await spy.info("commandstats")
        assert stats["cmdstat_spublish"]["calls"] == 1
        assert "cmdstat_publish" not in stats
        await asyncio.sleep(0.3)
        assert [await _metric(n, "skillshare_fanout_received_total", '{channel="room"}')
                for n in (node_a, node_b)] == received
        for sock in socks:
            assert sock.received("message") == []
    finally:
        await spy.aclose()
        for sock in socks:
            await sock.close()


async def test_broadcast_mode_keeps_every_emit_on_the_shared_channel(make_client, redis_url):
    """``SKILLSHARE_FANOUT_MODE=broadcast``: the previous behaviour, for a
    rolling upgrade from nodes that only read the shared channel."""
    node_a = await make_client(redis_url=redis_url, fanout_mode="broadcast")
    node_b = await make_client(redis_url=redis_url, fanout_mode="broadcast")
    on_b = await _connected(node_b, "member")
    listener = aioredis.Redis.from_url(redis_url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    try:
        await node_b.app[SIO].enter_room(on_b.sio.get_sid(), "r")
        assert await _shard_channels(redis_url) == set()
        await node_a.app[SIO].emit("message", {"body": "old style"}, to="r")
        await on_b.wait_for("message", lambda m: m["body"] == "old style", timeout=10)
        seen: list[Any] = []
        async with asyncio.timeout(10):
            while not any(b"old style" in m for m in seen):
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    seen.append(message["data"])
    finally:
        await on_b.close()
        await pubsub.aclose()
        await listener.aclose()


async def test_a_lost_sharded_subscription_is_made_again_and_the_canary_checks_it(
        make_client, redis_url):
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    on_b = await _connected(node_b, "member")
    admin = aioredis.Redis.from_url(redis_url)
    manager_b = node_b.app[SIO].manager
    try:
        await node_b.app[SIO].enter_room(on_b.sio.get_sid(), "r")
        # the node's own canary channel is subscribed and its canary comes back there
        assert manager_b._node_channel() in await _shard_channels(redis_url)
        heard = manager_b._canaries[manager_b._node_channel()]
        await manager_b.send_canary()
        await _eventually(lambda: _true(manager_b._canaries[manager_b._node_channel()] > heard))

        killed = 0
        for client in await admin.client_list():
            if int(client.get("ssub", 0)) > 0:
                await admin.client_kill_filter(_id=client["id"])
                killed += 1
        assert killed >= 1
        delivered = False
        async with asyncio.timeout(10):
            while not delivered:
                await node_a.app[SIO].emit("message", {"body": "again"}, to="r")
                try:
                    await on_b.wait_for("message", lambda m: m["body"] == "again", timeout=0.5)
                    delivered = True
                except AssertionError:
                    pass
        # (redis-py reconnects a plain Redis by itself; on a cluster failover the
        # subscriptions are rebuilt on the new owner: tests/e2e/test_redis_cluster.py)
        assert _room("r") in await _shard_channels(redis_url)
    finally:
        await admin.aclose()
        await on_b.close()


async def _true(value: bool) -> bool:
    return value


async def test_leaving_and_joining_again_at_once_keeps_the_subscription(make_client, redis_url):
    """A SUNSUBSCRIBE answered after the room was joined again is ours, not
    Redis moving the channel away: no re-subscription of everything."""
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    on_b = await _connected(node_b, "member")
    sio_b = node_b.app[SIO]
    try:
        for _ in range(5):
            await sio_b.enter_room(on_b.sio.get_sid(), "r")
            await sio_b.leave_room(on_b.sio.get_sid(), "r")
        await sio_b.enter_room(on_b.sio.get_sid(), "r")
        await asyncio.sleep(0.5)
        assert sio_b.manager._shards.rebuilds == 0
        assert _room("r") in await _shard_channels(redis_url)
        await node_a.app[SIO].emit("message", {"body": "still there"}, to="r")
        await on_b.wait_for("message", lambda m: m["body"] == "still there", timeout=10)
    finally:
        await on_b.close()


async def test_a_room_held_on_one_node_only_is_not_published_until_another_node_joins(
        make_client, redis_url):
    quiet = {"bus_canary_interval": 60, "bus_canary_timeout": 120}  # no canary SPUBLISH meanwhile
    node_a = await make_client(redis_url=redis_url, **quiet)
    node_b = await make_client(redis_url=redis_url, **quiet)
    on_a, on_b = await _connected(node_a, "on-a"), await _connected(node_b, "on-b")
    manager_a = node_a.app[SIO].manager
    try:
        await node_a.app[SIO].enter_room(on_a.sio.get_sid(), "r")
        await node_a.app[SIO].emit("message", {"body": "first"}, to="r")
        await _eventually(lambda: _true(_room("r") in manager_a._solo))  # one receiver: itself
        received = await _metric(node_a, "skillshare_fanout_received_total", '{channel="room"}')
        spy = aioredis.Redis.from_url(redis_url)
        await spy.config_resetstat()
        for n in range(5):
            await node_a.app[SIO].emit("message", {"body": f"local {n}"}, to="r")
        await on_a.wait_for("message", lambda m: m["body"] == "local 4", timeout=10)
        await manager_a._publisher.flush()
        assert "cmdstat_spublish" not in await spy.info("commandstats")  # not published
        await spy.aclose()
        # another node joins: it announces its subscription, the room stops being solo
        await node_b.app[SIO].enter_room(on_b.sio.get_sid(), "r")
        await _eventually(lambda: _true(_room("r") not in manager_a._solo))
        await node_a.app[SIO].emit("message", {"body": "for both"}, to="r")
        await on_b.wait_for("message", lambda m: m["body"] == "for both", timeout=10)
        assert [m["body"] for m in on_b.received("message")] == ["for both"]
        assert await _metric(node_a, "skillshare_fanout_received_total",
                             '{channel="room"}') == received
    finally:
        await on_a.close()
        await on_b.close()


async def test_an_emit_to_many_remote_user_rooms_goes_once_on_the_broadcast_channel(
        make_client, redis_url):
    """A big group room spread over nodes: once this node knows the members'
    user rooms are held elsewhere, one PUBLISH carries the message instead of
    one SPUBLISH per member (each then decoded separately on the other node);
    every member still gets every message once, in order."""
    quiet = {"bus_canary_interval": 60, "bus_canary_timeout": 120}  # no canary SPUBLISH meanwhile
    node_a = await make_client(redis_url=redis_url, **quiet)
    node_b = await make_client(redis_url=redis_url, **quiet)
    members = [await _connected(node_b, f"member{i}") for i in range(6)]
    spy = aioredis.Redis.from_url(redis_url)
    try:
        rooms = [f"user:{bystander_id(node_b, sock)}" for sock in members]
        manager = node_a.app[SIO].manager
        await node_a.app[SIO].emit("message", {"body": "first"}, to=rooms)
        await manager._publisher.flush()  # and its results: which rooms are held elsewhere
        await spy.config_resetstat()
        await node_a.app[SIO].emit("message", {"body": "second"}, to=rooms)
        await node_a.app[SIO].emit("message", {"body": "third"}, to=rooms)
        for sock in members:
            await sock.wait_for("message", lambda m: m["body"] == "third", timeout=10)
        stats = await spy.info("commandstats")
        assert "cmdstat_spublish" not in stats
        assert stats["cmdstat_publish"]["calls"] == 2
        for sock in members:
            assert [m["body"] for m in sock.received("message")] == ["first", "second", "third"]
    finally:
        await spy.aclose()
        for sock in members:
            await sock.close()
