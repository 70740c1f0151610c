"""Two node processes on a real Redis Cluster (3 masters, 1 replica each;
``SKILLSHARE_REDIS_URL=redis+cluster://…``): chat, presence, revocation,
calls and shared rate limits across the nodes; then the master serving the
recipient's sharded fan-out channel (``user:<id>``) is killed and fan-out comes back by
itself once its replica is promoted, with nothing acknowledged lost."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as redis

from server.keys import SIO
from server.realtime.batch_publish import BatchPublisher
from server.realtime.shard_publish import ClusterShards
from server.redis_client import connect_cluster
from tests.conftest import TEST_SECRET
from tests.support.calls import CallSocket
from tests.support.realtime import SocketUser, http_json, new_client_id, open_direct, register_user
from tests.support.services import (NodeProcess, RedisClusterProcess, RedisProcess, cluster_node_env,
                                    running_nodes)
import contextlib

QUIET_S = 0.6  # a stopped master, well within its 2 s failover timeout
RESUME_DEADLINE_S = 10.0  # issue 10: fan-out resumes within 10 s of the promotion
FANOUT_CHANNEL = "skillshare:socketio"


def user_channel(user_id: str) -> str:
    """The sharded channel of a user's sockets (``server/realtime/sharded_manager.py``)."""
    return f"{FANOUT_CHANNEL}#/#user:{user_id}#"


def shard_channels(cluster: RedisClusterProcess, node) -> set[str]:
    return set(cluster._info(node, "pubsub", "shardchannels").split())


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcess]:
    cluster = RedisClusterProcess(tmp_path_factory.mktemp("rcluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def nodes(mongo_url: str, redis_cluster: RedisClusterProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    workdir = tmp_path_factory.mktemp("rcluster-nodes")
    env = cluster_node_env(mongo_url=mongo_url, db=f"rc_{uuid.uuid4().hex[:10]}",
                           redis_url=redis_cluster.url, data_dir=workdir / "data",
                           secret_key=TEST_SECRET, node_ttl=3.0,
                           login_account_limit="4/15minutes")
    with running_nodes(env, workdir, 2) as procs:
        yield procs


async def test_chat_presence_revocation_calls_and_limits_across_nodes(nodes):
    one, two = (n.url for n in nodes)
    alice, bob = await register_user(one, "alice"), await register_user(two, "bob")
    room = await open_direct(one, alice["access_token"], bob["id"])
    await open_direct(two, bob["access_token"], alice["id"])  # both sides: presence is shared
    a = await CallSocket(one, alice["access_token"], name="alice@1").connect()
    b = None
    try:
        for url in (one, two):
            status, ready = await http_json("GET", f"{url}/readyz")
            assert status == 200, ready
        ack = await a.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["ok"], ack
        assert ack["presence"][bob["id"]]["status"] == "offline"
        b = await CallSocket(two, bob["access_token"], name="bob@2").connect()
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "online",
                         timeout=5)

        for s in (a, b):
            assert (await s.call("room:join", {"room_id": room["id"]}))["ok"]
        sent = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "hello over the cluster"})
        assert sent["ok"], sent
        await b.wait_for("message", lambda m: m["id"] == sent["message"]["id"], timeout=5)

        invite = await a.ok("call:invite", {"user_id": bob["id"], "media": {"audio": True, "video": False}})
        await b.wait_for("call:incoming", lambda c: c["call_id"] == invite["call_id"], timeout=5)
        await b.ok("call:reject", {"call_id": invite["call_id"]})
        await a.wait_for("call:rejected", lambda c: c["call_id"] == invite["call_id"], timeout=5)

        # one login throttle for both nodes (rate limits in the cluster)
        for url in (one, two, one, two):
            status, _ = await http_json("POST", f"{url}/api/v1/auth/login",
                                        json={"email": bob["email"], "password": "wrong password 1"})
            assert status == 401
        status, body = await http_json("POST", f"{one}/api/v1/auth/login",
                                       json={"email": bob["email"], "password": bob["password"]})
        assert status == 429, body

        # logging out everywhere on node 2 drops alice's socket on node 1
        status, _ = await http_json("POST", f"{two}/api/v1/auth/logout-all", token=alice["access_token"])
        assert status in (200, 204)
        ended = await a.wait_for("session:ended", timeout=5)
        assert ended["reason"] == "token_revoked"
    finally:
        for s in (a, b):
            if s is not None:
                await s.close()


async def test_fan_out_resumes_after_the_master_of_its_channel_dies(nodes, redis_cluster):
    one, two = (n.url for n in nodes)
    alice, bob = await register_user(one, "carol"), await register_user(two, "dave")
    room = await open_direct(one, alice["access_token"], bob["id"])
    a = await SocketUser(one, alice["access_token"], name="carol@1").connect()
    b = await SocketUser(two, bob["access_token"], name="dave@2").connect()
    acked: list[dict] = []

    async def send(body: str) -> dict | None:
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                            "body": body})
        if ack.get("ok"):
            acked.append(ack["message"])
            return ack["message"]
        return None

    try:
        for s in (a, b):
            assert (await s.call("room:join", {"room_id": room["id"]}))["ok"]
        first = await send("before")
        assert first is not None
        await b.wait_for("message", lambda m: m["id"] == first["id"], timeout=5)

        # chat messages reach dave through his user channel: kill the master that owns it
        channel = user_channel(bob["id"])
        owner = redis_cluster.master_of(channel)
        # subscribed on the master owning the channel's slot, nowhere else
        assert channel in shard_channels(redis_cluster, owner)
        assert not any(channel in shard_channels(redis_cluster, m)
                       for m in redis_cluster.masters() if m is not owner)
        masters = len(redis_cluster.masters())
        redis_cluster.kill(owner)
        await asyncio.to_thread(redis_cluster.wait_failover, masters)

        promoted = time.monotonic()
        delivered = None
        while delivered is None and time.monotonic() - promoted < RESUME_DEADLINE_S:
            message = await send(f"after {len(acked)}")
            if message is not None:
                with contextlib.suppress(AssertionError):
                    delivered = await b.wait_for("message", lambda m, mid=message["id"]: m["id"] == mid,
                                                 timeout=0.5)
            else:
                await asyncio.sleep(0.2)
        assert delivered is not None, f"no live delivery within {RESUME_DEADLINE_S}s of the promotion"
        deadline = time.monotonic() + RESUME_DEADLINE_S  # subscribed on the new owner
        while channel not in shard_channels(redis_cluster, redis_cluster.master_of(channel)):
            assert time.monotonic() < deadline, "the channel was not subscribed again"
            await asyncio.sleep(0.2)

        synced = await b.call("room:sync", {"room_id": room["id"], "after_seq": 0, "limit": 100})
        assert {m["id"] for m in acked} <= {m["id"] for m in synced["messages"]}

        # the control bus hears itself again on both nodes (canary), Redis answers
        for url in (one, two):
            deadline = time.monotonic() + RESUME_DEADLINE_S
            status, body = await http_json("GET", f"{url}/readyz")
            while status != 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                status, body = await http_json("GET", f"{url}/readyz")
            assert status == 200, body
    finally:
        for s in (a, b):
            await s.close()


async def test_a_node_hears_its_canary_on_every_master_and_notices_one_gone_deaf(
        make_client, redis_cluster):
    """Issue 10, item 3, on a cluster: a subscription connection to any one
    master can go quiet while staying open. The node's canary goes out on a
    channel of its own on every master, so a quiet one is not hidden by the
    others still answering. (After the tests of the module's node processes:
    stopping a master must not disturb them.)"""
    # the test sends the canaries itself; the node's own watch must not
    # re-subscribe everything meanwhile (a master an earlier test killed can
    # leave the broadcast canary unanswered for its 10 s timeout)
    client = await make_client(redis_url=redis_cluster.url, bus_canary_timeout=600)
    manager = client.app[SIO].manager
    masters = redis_cluster.masters()
    url = str(client.make_url("")).rstrip("/")
    user = await register_user(url, "erin")
    sock = await SocketUser(url, user["access_token"], name="erin").connect()  # sharded channels in use
    try:
        await _hears_on_every_master(manager, redis_cluster, masters)
    finally:
        await sock.close()


async def _hears_on_every_master(manager, redis_cluster: RedisClusterProcess, masters) -> None:

    async def canaries_on_every_master() -> bool:
        await manager.send_canary()
        return len({manager._shards.node_for(c) for c in manager._canaries}) == len(masters)

    await _eventually(canaries_on_every_master, "a canary channel on each master")

    async def subscribed_on_every_master() -> bool:
        return all(any(c.decode() in shard_channels(redis_cluster, m) for c in manager._canaries)
                   for m in masters)

    await _eventually(subscribed_on_every_master, "subscribed on each master")
    sent = time.monotonic()
    await manager.send_canary()
    await _eventually(lambda: _is(manager.last_heard > sent), "every canary heard")

    # a master whose connection goes quiet (stopped, well within the cluster's
    # failover timeout), not the one of the node's first canary channel, nor
    # the node the broadcast channel goes through: its canary is published
    # first and, through a stopped node, held up the sharded ones for a minute
    bus_port = manager.redis.connection_pool.connection_kwargs["port"]
    quiet = next(master for c in manager._canaries if c != manager._node_channel()
                 if (master := redis_cluster.master_of(c.decode())).port != bus_port)
    quiet.proc.send_signal(signal.SIGSTOP)
    try:
        sent = time.monotonic()
        await manager.send_canary()
        await asyncio.sleep(QUIET_S)
        assert manager.last_heard < sent  # one master did not answer
        assert manager._canaries[manager._node_channel()] > sent  # the others did
    finally:
        quiet.proc.send_signal(signal.SIGCONT)
    sent = time.monotonic()
    await manager.send_canary()
    await _eventually(lambda: _is(manager.last_heard > sent), "heard again once it answers")


async def _is(value: bool) -> bool:
    return value


async def _eventually(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


# The publisher on its own (issue 10, item 2): a master that stops answering
# holds up the publishes to its own channels only. These stop a master too, so
# they come after the node processes' tests as well.

async def test_publishes_to_the_other_masters_go_out_in_order_while_one_is_stopped(redis_cluster):
    errors: list[None] = []
    sent: list[tuple[bytes, int]] = []
    count = 20
    async with _publisher(redis_cluster, on_sent=sent.extend,
                          on_error=lambda: errors.append(None)) as (shards, publisher):
        quiet_channel, live_channel = _channels_on_two_masters(shards)
        quiet = _process_of(redis_cluster, shards.node_for(quiet_channel))
        async with _subscribed(shards.node_for(quiet_channel), quiet_channel) as quiet_sub, \
                _subscribed(shards.node_for(live_channel), live_channel) as live_sub:
            quiet.proc.send_signal(signal.SIGSTOP)
            try:
                for i in range(count):
                    publisher.publish([(quiet_channel, f"q{i}"), (live_channel, f"l{i}")])
                    await asyncio.sleep(0.005)  # a batch each, or a few
                live = await _received(live_sub, count, QUIET_S)
                assert live == [f"l{i}".encode() for i in range(count)]
                await _eventually(lambda: _is(len(sent) >= count), "the live ones reported",
                                  timeout=QUIET_S)
                assert sent == [(live_channel, 1)] * count
            finally:
                quiet.proc.send_signal(signal.SIGCONT)
            await publisher.flush(timeout=5.0)
            assert await _received(quiet_sub, count, 5.0) == [f"q{i}".encode() for i in range(count)]
    assert sorted(sent) == sorted([(quiet_channel, 1)] * count + [(live_channel, 1)] * count)
    assert errors == []


async def test_a_stopped_masters_queue_keeps_its_newest_publishes_up_to_its_bound(redis_cluster):
    errors: list[None] = []
    async with _publisher(redis_cluster, on_error=lambda: errors.append(None),
                          queue_limit=5) as (shards, publisher):
        quiet_channel, _live = _channels_on_two_masters(shards)
        quiet = _process_of(redis_cluster, shards.node_for(quiet_channel))
        async with _subscribed(shards.node_for(quiet_channel), quiet_channel) as quiet_sub:
            quiet.proc.send_signal(signal.SIGSTOP)
            try:
                publisher.publish([(quiet_channel, "first")])
                await asyncio.sleep(0.1)  # its batch is in flight, waiting for the master
                for i in range(12):
                    publisher.publish([(quiet_channel, f"q{i}")])
            finally:
                quiet.proc.send_signal(signal.SIGCONT)
            await publisher.flush(timeout=5.0)
            newest = [f"q{i}".encode() for i in range(7, 12)]
            assert await _received(quiet_sub, 6, 5.0) == [b"first", *newest]
        assert publisher.dropped == 7
    assert len(errors) == 7


async def test_a_publish_whose_slot_moved_is_retried_on_its_new_master_in_order(redis_cluster):
    errors: list[None] = []
    async with _publisher(redis_cluster, on_error=lambda: errors.append(None)) as (shards, publisher):
        channel, elsewhere = _channels_on_two_masters(shards)
        old, new = shards.node_for(channel), shards.node_for(elsewhere)
        _move_slot(redis_cluster, channel, old=old, new=new)
        try:
            assert shards.node_for(channel) == old  # the publisher's slot map is stale
            async with _subscribed(new, channel) as sub:
                for i in range(10):
                    publisher.publish([(channel, f"m{i}")])
                    await asyncio.sleep(0.005)
                await publisher.flush(timeout=5.0)
                assert await _received(sub, 10, 5.0) == [f"m{i}".encode() for i in range(10)]
            assert shards.node_for(channel) == new
        finally:
            _move_slot(redis_cluster, channel, old=new, new=old)
    assert errors == []


async def test_publishes_made_before_the_slot_map_was_read_go_out_in_order(redis_cluster):
    async with _publisher(redis_cluster) as (shards, _publisher_):
        channels = _channels_on_two_masters(shards)
        nodes = [shards.node_for(c) for c in channels]
    sent: list[tuple[bytes, int]] = []
    async with _publisher(redis_cluster, prepare=False, on_sent=sent.extend) as (_shards, publisher), \
            _subscribed(nodes[0], channels[0]) as first, _subscribed(nodes[1], channels[1]) as second:
        for i in range(10):
            publisher.publish([(c, f"m{i}") for c in channels])
        await publisher.flush(timeout=5.0)
        expected = [f"m{i}".encode() for i in range(10)]
        assert await _received(first, 10, 5.0) == expected
        assert await _received(second, 10, 5.0) == expected
    assert sorted(sent) == sorted([(c, 1) for c in channels] * 10)
    assert publisher.dropped == 0


@contextlib.asynccontextmanager
async def _publisher(cluster: RedisClusterProcess, *, prepare: bool = True, **options):
    shards = ClusterShards(connect_cluster(cluster.url))
    publisher = BatchPublisher(shards, **options)
    try:
        if prepare:
            await shards.prepare()
        yield shards, publisher
    finally:
        await publisher.close()


def _channels_on_two_masters(shards: ClusterShards) -> tuple[bytes, bytes]:
    by_node: dict[str, bytes] = {}
    for i in range(1000):
        channel = f"skillshare:test#publish#{i}#".encode()
        by_node.setdefault(shards.node_for(channel), channel)
        if len(by_node) == 2:
            break
    first, second = by_node.values()
    return first, second


def _process_of(cluster: RedisClusterProcess, node: str) -> RedisProcess:
    return next(n for n in cluster.nodes if n.port == int(node.rpartition(":")[2]))


@contextlib.asynccontextmanager
async def _subscribed(node: str, channel: bytes):
    host, _, port = node.rpartition(":")
    client = redis.Redis(host=host, port=int(port))
    pubsub = client.pubsub()
    try:
        await pubsub.ssubscribe(channel)
        yield pubsub
    finally:
        await pubsub.aclose()
        await client.aclose()


async def _received(pubsub, count: int, timeout: float) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and (left := deadline - time.monotonic()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None and message["type"] == "smessage":
            got.append(message["data"])
    return got


def _move_slot(cluster: RedisClusterProcess, channel: bytes, *, old: str, new: str) -> None:
    """Migrates the (keyless) slot of ``channel`` from master ``old`` to ``new``
    as ``redis-cli --cluster reshard`` does, and waits until every master agrees."""
    masters = cluster.masters()
    slot = int(cluster._info(masters[0], "cluster", "keyslot", channel.decode()).strip())
    source, target = _process_of(cluster, old), _process_of(cluster, new)
    source_id, target_id = (cluster._info(n, "cluster", "myid").strip() for n in (source, target))
    others = [m for m in masters if m is not source and m is not target]
    steps = [(target, "importing", source_id), (source, "migrating", target_id),
             *((n, "node", target_id) for n in [target, source, *others])]
    for node, *args in steps:
        assert cluster._info(node, "cluster", "setslot", str(slot), *args).strip() == "OK", args
    deadline = time.monotonic() + 10
    while not all(_slot_owner(cluster, m, slot) == target_id for m in masters):
        assert time.monotonic() < deadline, "the masters did not agree on the slot's move"
        time.sleep(0.1)


def _slot_owner(cluster: RedisClusterProcess, node: RedisProcess, slot: int) -> str:
    for row in cluster._info(node, "cluster", "nodes").splitlines():
        for part in row.split()[8:]:
            lo, _, hi = part.partition("-")
            if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                return row.split()[0]
    return ""
