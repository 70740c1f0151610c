"""Calls across node processes sharing one redis-server and one database:
a relayed call whose participants are on different nodes (the second
offer is forwarded to the node that owns the call's relay), busy across
nodes, a participant's node killed with SIGKILL (the call waits the
reconnect grace, then ends), and a relayed call whose relay node is killed
moving to another node's relay."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import TEST_SECRET
from tests.support.calls import CallSocket, MediaPeer
from tests.support.realtime import register_user
from tests.support.services import NodeProcess, RedisProcess, cluster_node_env, running_nodes

NODE_TTL = 2.0  # presence heartbeat TTL here (the contract's bound is 30 s)
SWEEP = 0.5
GRACE = 3.0  # call_reconnect_grace here
RELAY_TIMEOUT = 2.0  # call_relay_timeout here: a forward to a dead node gives up after this
FRAMES = 10
ALICE_SIZE, BOB_SIZE = (160, 120), (176, 144)


@pytest.fixture(scope="module")
def nodes(mongo_url: str, redis_process: RedisProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    if redis_process.proc is None or redis_process.proc.poll() is not None:
        redis_process.start()
    redis_process.flushall()
    workdir = tmp_path_factory.mktemp("calls-cluster")
    env = cluster_node_env(
        mongo_url=mongo_url, db=f"calls_{uuid.uuid4().hex[:10]}", redis_url=redis_process.url,
        data_dir=workdir / "data", secret_key=TEST_SECRET, node_ttl=NODE_TTL, sweep=SWEEP,
        call_relay_allow_private="true",  # this host's interface addresses are in private ranges
        call_reconnect_grace=str(GRACE), call_relay_timeout=str(RELAY_TIMEOUT),
    )
    with running_nodes(env, workdir, 3) as started:
        yield started


async def _metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _accepted_call(a: CallSocket, b: CallSocket, callee_id: str) -> str:
    call_id = (await a.ok("call:invite", {"user_id": callee_id}))["call_id"]
    await b.wait_for("call:incoming", lambda e: e["call_id"] == call_id)
    await b.ok("call:accept", {"call_id": call_id})
    await a.wait_for("call:accepted", lambda e: e["call_id"] == call_id)
    return call_id


async def test_relayed_call_across_nodes_and_busy(nodes):
    n0, n1, n2 = (n.url for n in nodes)
    alice, bob, carol = (await register_user(n0, "alice"), await register_user(n1, "bob"),
                         await register_user(n2, "carol"))
    a = await CallSocket(n0, alice["access_token"], name="alice@0").connect()
    b = await CallSocket(n1, bob["access_token"], name="bob@1").connect()
    c = await CallSocket(n2, carol["access_token"], name="carol@2").connect()
    pa, pb = MediaPeer(ALICE_SIZE), MediaPeer(BOB_SIZE)
    try:
        call_id = await _accepted_call(a, b, bob["id"])
        assert (await c.refused("call:invite", {"user_id": alice["id"]}))["code"] == "busy"

        # Alice's offer reaches node 0 first: the relay lives there. Bob's
        # offer arrives on node 1 and is answered by node 0's relay.
        ack = await a.ok("call:relay", {"call_id": call_id, "sdp": await pa.offer()})
        await pa.accept_answer(ack["sdp"])
        ack = await b.ok("call:relay", {"call_id": call_id, "sdp": await pb.offer()})
        await pb.accept_answer(ack["sdp"])
        await pa.wait_media(video_size=BOB_SIZE, frames=FRAMES, timeout=30)
        await pb.wait_media(video_size=ALICE_SIZE, frames=FRAMES, timeout=30)
        assert await _metric(n0, "skillshare_relay_peer_connections") == 2
        assert await _metric(n1, "skillshare_relay_peer_connections") == 0
        assert await _metric(n1, 'skillshare_call_relay_forwards_total{outcome="answered"}') == 1

        await b.ok("call:end", {"call_id": call_id})  # ended on node 1, relay closed on node 0
        await a.wait_for("call:ended", lambda e: e["reason"] == "hangup")
        for url in (n0, n1):
            peers = 1.0
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and peers:
                peers = await _metric(url, "skillshare_relay_peer_connections")
            assert peers == 0 and await _metric(url, "skillshare_relay_active_calls") == 0
        await _accepted_call(c, a, alice["id"])  # Alice is free again
    finally:
        for peer in (pa, pb):
            await peer.close()
        for s in (a, b, c):
            await s.close()


async def test_participant_node_killed_ends_the_call(nodes):
    n0, _, n2 = nodes
    alice, bob = await register_user(n0.url, "alice"), await register_user(n2.url, "bob")
    a = await CallSocket(n0.url, alice["access_token"], name="alice@0").connect()
    b = await CallSocket(n2.url, bob["access_token"], name="bob@2").connect()
    try:
        call_id = await _accepted_call(a, b, bob["id"])
        n2.kill()
        killed = time.monotonic()
        # bob's presence goes offline once node 2's heartbeat expires and a
        # sweeper sees it (NODE_TTL + sweep); the contract allows 30 s. The
        # call then waits GRACE for him to come back before it ends.
        away = await a.wait_for("call:peer_reconnecting", timeout=NODE_TTL + 8)
        assert away == {"call_id": call_id, "user_id": bob["id"], "grace": GRACE}
        ended = await a.wait_for("call:ended", timeout=GRACE + 8)
        assert ended == {"call_id": call_id, "by": bob["id"], "reason": "disconnected"}
        assert time.monotonic() - killed < 30 + GRACE
    finally:
        await a.close()
        await b.close()


async def _offer_until_answered(sock: CallSocket, call_id: str, sdp: str, *, within: float) -> str:
    """What the SDK does when its relay connection fails: offer again until a
    live relay answers (a dead owner's mark expires within RELAY_NODE_TTL_S)."""
    deadline = time.monotonic() + within
    while True:
        ack = await sock.call("call:relay", {"call_id": call_id, "sdp": sdp}, timeout=RELAY_TIMEOUT + 5)
        if ack.get("ok"):
            return ack["sdp"]
        assert ack["error"]["code"] == "unavailable", ack
        assert time.monotonic() < deadline, f"no relay answered within {within}s: {ack}"
        await asyncio.sleep(0.5)


async def test_relay_moves_when_its_node_dies(nodes):
    for node in nodes:  # an earlier test may have killed one
        if node.proc is None or node.proc.poll() is not None:
            node.start()
    n0, n1, n2 = nodes
    alice, bob = await register_user(n0.url, "alice"), await register_user(n1.url, "bob")
    a = await CallSocket(n0.url, alice["access_token"], name="alice@0").connect()
    b = await CallSocket(n1.url, bob["access_token"], name="bob@1").connect()
    a2: CallSocket | None = None
    peers = [MediaPeer(ALICE_SIZE), MediaPeer(BOB_SIZE)]
    try:
        call_id = await _accepted_call(a, b, bob["id"])
        pa, pb = peers
        await pa.accept_answer((await a.ok("call:relay", {"call_id": call_id, "sdp": await pa.offer()}))["sdp"])
        await pb.accept_answer((await b.ok("call:relay", {"call_id": call_id, "sdp": await pb.offer()}))["sdp"])
        await pb.wait_media(video_size=ALICE_SIZE, frames=FRAMES, timeout=30)

        n0.kill()  # the relay's node, and Alice's socket with it
        a2 = await CallSocket(n2.url, alice["access_token"], name="alice@2").connect()
        assert (await a2.ok("call:resume", {"call_id": call_id}))["state"] == "active"
        pa2, pb2 = MediaPeer(ALICE_SIZE), MediaPeer(BOB_SIZE)
        peers += [pa2, pb2]
        await pa2.accept_answer(await _offer_until_answered(a2, call_id, await pa2.offer(), within=20))
        await pb2.accept_answer(await _offer_until_answered(b, call_id, await pb2.offer(), within=20))
        await pa2.wait_media(video_size=BOB_SIZE, frames=FRAMES, timeout=30)
        await pb2.wait_media(video_size=ALICE_SIZE, frames=FRAMES, timeout=30)
        assert await _metric(n2.url, "skillshare_call_relay_moves_total") == 1
        assert await _metric(n2.url, "skillshare_relay_peer_connections") == 2
        assert not b.received("call:ended")
        await b.ok("call:end", {"call_id": call_id})
        await a2.wait_for("call:ended", lambda e: e["reason"] == "hangup")
    finally:
        for peer in peers:
            await peer.close()
        for s in (a, b, a2):
            if s is not None:
                await s.close()
        n0.start()
