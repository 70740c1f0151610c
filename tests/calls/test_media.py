"""One node, in process: two aiortc clients call each other through the
real server — peer-to-peer over ``call:signal``, and through the server's
media relay over ``call:relay`` — and count the frames that arrive."""

from __future__ import annotations

import pytest

from server.keys import MEDIA_RELAY
from tests.support.calls import CallSocket, MediaPeer, wait_until
from tests.support.realtime import register_user

ALICE_SIZE, BOB_SIZE = (160, 120), (176, 144)
FRAMES = 10
MEDIA_TIMEOUT = 30.0
GRACE = 1.0  # call_reconnect_grace here: a participant gone this long ends the call


@pytest.fixture
async def node(make_client):
    # this host's interface addresses are in private ranges: let the relay reach them
    client = await make_client(max_relayed_calls=1, call_relay_allow_private=True,
                               call_reconnect_grace=GRACE)
    return str(client.make_url("")).rstrip("/"), client.server.app


@pytest.fixture
async def call(node):
    """Alice calls Bob, Bob accepts: (call_id, (alice, bob), (a, b), (pa, pb))."""
    url, _ = node
    alice, bob = await register_user(url, "alice"), await register_user(url, "bob")
    a = await CallSocket(url, alice["access_token"], name="alice").connect()
    b = await CallSocket(url, bob["access_token"], name="bob").connect()
    pa, pb = MediaPeer(ALICE_SIZE), MediaPeer(BOB_SIZE)
    try:
        ack = await a.ok("call:invite", {"user_id": bob["id"], "media": {"audio": True, "video": True}})
        call_id = ack["call_id"]
        await b.wait_for("call:incoming", lambda e: e["call_id"] == call_id)
        await b.ok("call:accept", {"call_id": call_id})
        await a.wait_for("call:accepted", lambda e: e["call_id"] == call_id)
        yield call_id, (alice, bob), (a, b), (pa, pb)
    finally:
        for peer in (pa, pb):
            await peer.close()
        for s in (a, b):
            await s.close()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_peer_to_peer_call_carries_video_and_audio(node, call):
    url, _ = node
    call_id, (alice, bob), (a, b), (pa, pb) = call
    await a.ok("call:signal", {"call_id": call_id, "to": bob["id"],
                               "data": {"type": "offer", "sdp": await pa.offer()}})
    offer = await b.wait_for("call:signal", lambda e: e["data"]["type"] == "offer")
    assert offer["from"] == alice["id"]
    await b.ok("call:signal", {"call_id": call_id, "to": alice["id"],
                               "data": {"type": "answer", "sdp": await pb.answer(offer["data"]["sdp"])}})
    answer = await a.wait_for("call:signal", lambda e: e["data"]["type"] == "answer")
    await pa.accept_answer(answer["data"]["sdp"])

    await pa.wait_media(video_size=BOB_SIZE, frames=FRAMES, timeout=MEDIA_TIMEOUT)
    await pb.wait_media(video_size=ALICE_SIZE, frames=FRAMES, timeout=MEDIA_TIMEOUT)
    for s in (a, b):
        assert (await s.ok("call:stats", {"call_id": call_id, "path": "p2p", "connected": True,
                                          "setup_ms": 420}))["counted"] is True
    assert (await a.ok("call:stats", {"call_id": call_id, "path": "p2p", "connected": True,
                                      "setup_ms": 1}))["counted"] is False  # once per participant

    await a.ok("call:end", {"call_id": call_id})
    await b.wait_for("call:ended", lambda e: e["reason"] == "hangup")
    async_text = await _metrics_text(url)
    assert _metric(async_text, 'skillshare_calls_connected_total{path="p2p"}') == 2
    assert _metric(async_text, "skillshare_calls_started_total") == 1
    assert _metric(async_text, 'skillshare_call_setup_seconds_count{path="p2p"}') == 2
    assert _metric(async_text, 'skillshare_calls_ended_total{reason="hangup"}') == 1


async def test_relayed_call_carries_media_both_ways_and_closes(node, call):
    url, app = node
    relay = app[MEDIA_RELAY]
    call_id, (alice, bob), (a, b), (pa, pb) = call
    for socket, peer in ((a, pa), (b, pb)):
        ack = await socket.ok("call:relay", {"call_id": call_id, "sdp": await peer.offer()})
        await peer.accept_answer(ack["sdp"])
    assert relay.active_calls == 1 and relay.peer_connection_count == 2

    await pa.wait_media(video_size=BOB_SIZE, frames=FRAMES, timeout=MEDIA_TIMEOUT)
    await pb.wait_media(video_size=ALICE_SIZE, frames=FRAMES, timeout=MEDIA_TIMEOUT)
    assert not a.received("call:signal") and not b.received("call:signal")  # media went via the server
    await a.ok("call:stats", {"call_id": call_id, "path": "relay", "connected": True, "setup_ms": 800})

    # the relay is full (max_relayed_calls=1): a second relayed call is refused
    carol, dave = await register_user(url, "carol"), await register_user(url, "dave")
    c = await CallSocket(url, carol["access_token"], name="carol").connect()
    d = await CallSocket(url, dave["access_token"], name="dave").connect()
    pc_ = MediaPeer(ALICE_SIZE)
    try:
        other = (await c.ok("call:invite", {"user_id": dave["id"]}))["call_id"]
        await d.wait_for("call:incoming")
        await d.ok("call:accept", {"call_id": other})
        full = await c.refused("call:relay", {"call_id": other, "sdp": await pc_.offer()})
        assert full["code"] == "unavailable"
    finally:
        await pc_.close()
        await c.close()
        await d.close()

    await b.ok("call:end", {"call_id": call_id})
    await a.wait_for("call:ended", lambda e: e["call_id"] == call_id)
    await wait_until(lambda: relay.peer_connection_count == 0 and relay.active_calls == 0, timeout=5,
                     what=lambda: f"relay closed ({relay.active_calls} calls, {relay.peer_connection_count} pcs)")
    text = await _metrics_text(url)
    assert _metric(text, 'skillshare_calls_connected_total{path="relay"}') == 1
    assert _metric(text, "skillshare_relay_peer_connections") == 0
    assert _metric(text, "skillshare_relay_cpu_seconds_total") >= 0


async def test_relay_legs_close_when_a_participant_disconnects(node, call):
    _, app = node
    relay = app[MEDIA_RELAY]
    call_id, _, (a, b), (pa, pb) = call
    for socket, peer in ((a, pa), (b, pb)):
        ack = await socket.ok("call:relay", {"call_id": call_id, "sdp": await peer.offer()})
        await peer.accept_answer(ack["sdp"])
    await pb.wait_media(video_size=ALICE_SIZE, frames=3, timeout=MEDIA_TIMEOUT)
    await b.close()
    await a.wait_for("call:peer_reconnecting", timeout=2)  # the call waits GRACE for bob
    ended = await a.wait_for("call:ended", timeout=GRACE + 2)
    assert ended["reason"] == "disconnected"
    await wait_until(lambda: relay.peer_connection_count == 0 and relay.active_calls == 0, timeout=5,
                     what="relay closed")


async def _metrics_text(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        return await resp.text()
