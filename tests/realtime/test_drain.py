"""Draining one node (what SIGTERM starts; tests/e2e/test_drain.py sends
the real signal): connected sockets are told ``session:ended {reason:
node_draining}`` and disconnected, new sockets are refused with
``node_draining``, /readyz answers 503 naming ``draining``, and a call the
node relays ends with reason ``node_draining``."""

from __future__ import annotations

import socketio

from server.keys import DRAIN, MEDIA_RELAY
from tests.support.calls import CallSocket, MediaPeer
from tests.support.realtime import SocketUser, open_direct, register_user


async def _node(make_client, **overrides):
    client = await make_client(**overrides)
    return client, str(client.make_url("")).rstrip("/")


async def test_draining_moves_sockets_away_and_refuses_new_ones(make_client):
    client, url = await _node(make_client, drain_timeout=5)
    alice = await register_user(url, "alice")
    socket = await SocketUser(url, alice["access_token"], name="alice").connect()
    assert (await client.get("/readyz")).status == 200

    await client.app[DRAIN].drain()

    ended = await socket.wait_for("session:ended", timeout=5)
    assert ended == {"reason": "node_draining"}
    await socket.wait_disconnected(timeout=5)

    resp = await client.get("/readyz")
    assert resp.status == 503
    assert "draining" in (await resp.json())["error"]["details"]["failing"]

    late = socketio.AsyncClient(reconnection=False)
    refused: dict = {}
    late.on("connect_error", lambda data: refused.setdefault("data", data))
    try:
        await late.connect(url, auth={"token": alice["access_token"]}, transports=["websocket"],
                           wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        pass
    finally:
        await late.disconnect()
    assert refused["data"]["data"]["code"] == "node_draining"


async def test_draining_ends_the_calls_this_node_relays(make_client):
    client, url = await _node(make_client, drain_timeout=5, call_relay_allow_private=True)
    alice = await register_user(url, "alice")
    bob = await register_user(url, "bob")
    await open_direct(url, alice["access_token"], bob["id"])
    a = await CallSocket(url, alice["access_token"], name="alice").connect()
    b = await CallSocket(url, bob["access_token"], name="bob").connect()
    peer = MediaPeer((320, 240))
    try:
        invite = await a.ok("call:invite", {"user_id": bob["id"], "media": {"audio": True, "video": True}})
        await b.wait_for("call:incoming")
        await b.ok("call:accept", {"call_id": invite["call_id"]})
        ack = await a.ok("call:relay", {"call_id": invite["call_id"], "sdp": await peer.offer()})
        await peer.accept_answer(ack["sdp"])
        assert client.app[MEDIA_RELAY].active_calls == 1

        await client.app[DRAIN].drain()

        for socket in (a, b):
            ended = await socket.wait_for("call:ended", timeout=5)
            assert ended["call_id"] == invite["call_id"] and ended["reason"] == "node_draining"
        assert client.app[MEDIA_RELAY].active_calls == 0
    finally:
        await peer.close()
