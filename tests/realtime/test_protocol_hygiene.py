"""Protocol hygiene with raw frames (docs/realtime.md, "Protocol hygiene"):
reserved event names, repeated CONNECT packets, binary packets and
malformed frames close the connection; nothing reaches the connection
handlers; the refusal is in the contract's error shape."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.rawsocket import PollingSocket, RawSocket, acks_in, events_in
from tests.support.market import new_admin
from tests.support.realtime import SocketUser, http_json, new_client_id, open_direct, register_user


async def _node(make_client, **overrides) -> str:
    client = await make_client(**overrides)
    return str(client.make_url("")).rstrip("/")


def _ended(frames) -> dict:
    ended = events_in(frames, "session:ended")
    assert ended, frames
    return ended[0][1]


@pytest.mark.parametrize("frame", [
    '421["disconnect",{}]',
    '42["disconnect"]',
    '421["connect",{},{"token":"TOKEN"}]',
    '42["connect_error",{"message":"x"}]',
    '421["disconnecting",{}]',
    '421["*",{}]',
])
async def test_reserved_event_names_close_the_socket(make_client, frame):
    node = await _node(make_client)
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    raw = await RawSocket(node).open(alice["access_token"])
    sender = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        await raw.send(frame.replace("TOKEN", alice["access_token"]))
        frames = await raw.until_closed(timeout=5)
        ended = _ended(frames)
        assert ended["reason"] == "protocol_error"
        assert ended["error"]["code"] == "bad_request" and ended["error"]["message"]
        assert raw.close_code == 1008  # policy violation
        if frame.startswith("421"):
            ack = acks_in(frames)[1]
            assert ack["ok"] is False and ack["error"]["code"] == "bad_request"
        ack = await sender.call("message:send", {"room_id": room["id"],
                                                 "client_id": new_client_id(), "body": "hi"})
        assert ack["ok"]
        assert not events_in(raw.frames, "message")
        status, _ = await http_json("POST", f"{node}/api/v1/auth/logout-all",
                                    token=alice["access_token"])
        assert status == 204
    finally:
        await raw.close()
        await sender.close()


@pytest.mark.parametrize("then", ["logout_all", "ban", "token_expiry"])
async def test_a_disconnect_event_does_not_leave_a_socket_that_outlives_the_session(
        make_client, then):
    """The reproduced defect: ``421["disconnect",{}]`` used to run the
    server's disconnect handler (user shown offline) while the socket stayed
    open, still receiving chat after logout-all, a ban or token expiry."""
    ttl = 10  # the shortest access token lifetime the settings allow
    client = await make_client(access_token_ttl=ttl, socket_expiry_warning=1)
    node = str(client.make_url("")).rstrip("/")
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    raw = await RawSocket(node).open(alice["access_token"])
    watcher = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        ack = await watcher.call("presence:subscribe", {"user_ids": [alice["id"]]})
        assert ack["presence"][alice["id"]]["status"] == "online"
        await raw.send('421["disconnect",{}]')
        offline = await watcher.wait_for("presence", lambda p: p["user_id"] == alice["id"])
        assert offline["status"] == "offline"
        if then == "logout_all":
            await http_json("POST", f"{node}/api/v1/auth/logout-all", token=alice["access_token"])
        elif then == "ban":
            admin = await new_admin(client)
            resp = await client.post(f"/api/v1/admin/users/{alice['id']}/ban", json={},
                                     headers=admin["headers"])
            assert resp.status == 200
        else:
            await asyncio.sleep(ttl + 0.5)  # bob's token expires too: nobody sends
        if then != "token_expiry":
            ack = await watcher.call("message:send", {"room_id": room["id"],
                                                      "client_id": new_client_id(), "body": "x"})
            assert ack["ok"]
        frames = await raw.until_closed(timeout=5)
        assert not events_in(frames, "message") and not events_in(frames, "session:expiring")
        assert _ended(frames)["reason"] == "protocol_error"
    finally:
        await raw.close()
        await watcher.close()


async def test_fake_connect_events_neither_fake_presence_nor_pass_the_socket_cap(make_client):
    node = await _node(make_client, socket_max_per_user=2)
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    status, _ = await http_json("PATCH", f"{node}/api/v1/users/me", token=alice["access_token"],
                                json={"presence_visibility": "public"})
    assert status == 200
    watcher = await SocketUser(node, bob["access_token"], name="bob").connect()
    raw = await RawSocket(node).open(alice["access_token"])
    try:
        subscribed = await watcher.call("presence:subscribe", {"user_ids": [alice["id"]]})
        assert subscribed["ok"] and not subscribed.get("hidden"), subscribed
        for _ in range(5):
            if not await raw.send('42["connect",{},' + json.dumps({"token": alice["access_token"]}) + "]"):
                break
        frames = await raw.until_closed(timeout=5)
        assert _ended(frames)["reason"] == "protocol_error"
        offline = await watcher.wait_for("presence", lambda p: p["user_id"] == alice["id"]
                                         and p["status"] == "offline")
        assert offline["last_seen"]
        # The user's socket count was not inflated: two real sockets fit, a third does not.
        first = await SocketUser(node, alice["access_token"], name="a1").connect()
        second = await SocketUser(node, alice["access_token"], name="a2").connect()
        third = await RawSocket(node).open()
        await third.send("40" + json.dumps({"token": alice["access_token"]}))
        refusal = await third.recv()
        assert refusal.startswith("44"), refusal
        assert json.loads(refusal[2:])["data"]["code"] == "rate_limited"
        await third.close()
        await first.close()
        await second.close()
    finally:
        await raw.close()
        await watcher.close()


async def test_a_second_connect_packet_on_a_connected_namespace_closes_the_socket(make_client):
    node = await _node(make_client)
    alice = await register_user(node, "alice")
    raw = await RawSocket(node).open(alice["access_token"])
    try:
        await raw.send("40" + json.dumps({"token": alice["access_token"]}))
        frames = await raw.until_closed(timeout=5)
        assert _ended(frames)["reason"] == "protocol_error"
    finally:
        await raw.close()


async def test_connect_to_another_namespace_is_refused_in_the_contract_shape(make_client):
    node = await _node(make_client)
    alice = await register_user(node, "alice")
    raw = await RawSocket(node).open()
    try:
        await raw.send("40/admin," + json.dumps({"token": alice["access_token"]}))
        refusal = await raw.recv()
        assert refusal.startswith("44/admin,"), refusal
        body = json.loads(refusal[len("44/admin,"):])
        assert body["message"] == body["data"]["code"] == "bad_request"
        assert await raw.until_closed(timeout=5) == ["1"]  # engine.io CLOSE, then the socket ends
    finally:
        await raw.close()


async def test_a_client_disconnect_then_connect_on_one_connection_still_works(make_client):
    """Socket.IO allows leaving the namespace and joining it again over the
    same engine.io connection; that is not a repeated CONNECT."""
    node = await _node(make_client)
    alice = await register_user(node, "alice")
    raw = await RawSocket(node).open(alice["access_token"])
    try:
        await raw.send("41")
        await asyncio.sleep(0.1)
        await raw.send("40" + json.dumps({"token": alice["access_token"]}))
        reply = await raw.recv()
        assert reply.startswith("40{"), reply
        await raw.send('421["presence:set",{"status":"away"}]')
        assert acks_in([await raw.recv()])[1]["ok"] is True
    finally:
        await raw.close()


@pytest.mark.parametrize("frames", [
    ['451-["message:send",{"_placeholder":true,"num":0}]', b"\x00" * 10],
    ['451000000-["message:send",{"_placeholder":true,"num":0}]'],
    ['461-[{"_placeholder":true,"num":0}]'],
    [b"\x04binary engine.io frame"],
    ["bAAAA"],
])
async def test_binary_packets_and_frames_close_the_socket(make_client, frames):
    node = await _node(make_client)
    alice = await register_user(node, "alice")
    raw = await RawSocket(node).open(alice["access_token"])
    try:
        for frame in frames:
            await raw.send(frame)
        seen = await raw.until_closed(timeout=5)
        assert _ended(seen)["reason"] == "protocol_error"
    finally:
        await raw.close()


@pytest.mark.parametrize("frame", [
    "4{", '42["message:send",', "42{}", '42"x"', "42[]", "42[5]", "4x", "49", "44{}",
    "431[{}]", "x", "2", "2ping", "",
])
async def test_malformed_frames_close_the_socket(make_client, frame):
    node = await _node(make_client)
    alice = await register_user(node, "alice")
    raw = await RawSocket(node).open(alice["access_token"])
    try:
        await raw.send(frame)
        seen = await raw.until_closed(timeout=5)
        assert _ended(seen)["reason"] == "protocol_error"
    finally:
        await raw.close()


async def test_events_before_connect_close_the_connection(make_client):
    node = await _node(make_client)
    raw = await RawSocket(node).open()
    try:
        await raw.send('421["presence:set",{"status":"online"}]')
        assert await raw.until_closed(timeout=5) == ["1"]
    finally:
        await raw.close()


@pytest.mark.parametrize("body, status", [
    ('421["disconnect",{}]', 200),       # a socket.io violation inside a valid engine.io body
    (b"\xff\xfe not utf-8", 400),         # an engine.io violation: the POST itself is refused
    ("\x1e".join(["3"] * 17), 400),       # more packets than engine.io decodes from one body
])
async def test_polling_clients_get_the_refusal_then_the_session_is_gone(make_client, body, status):
    node = await _node(make_client)
    alice = await register_user(node, "alice")
    polling = await PollingSocket(node).open(alice["access_token"])
    try:
        pending = asyncio.ensure_future(polling.get())  # like real clients, a poll in flight
        await asyncio.sleep(0.2)
        assert await polling.post(body) == status
        packets = await pending
        assert packets is not None, packets
        ended = _ended(packets)
        assert ended["reason"] == "protocol_error" and ended["error"]["code"] == "bad_request"
        if status == 200:
            assert acks_in(packets)[1]["error"]["code"] == "bad_request"
        assert await polling.get() is None
        assert await polling.post(VALID := '42["presence:set",{"status":"away"}]') == 400, VALID
    finally:
        await polling.close()
