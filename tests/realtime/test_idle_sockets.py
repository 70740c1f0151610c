"""What an idle websocket costs and how it is kept alive (server/realtime/
wslink.py, ping_wheel.py): once its handshake is done it holds no task and
no aiohttp request; the server pings it every ping interval and closes it
when a ping goes unanswered for the ping timeout; its frames are read as
RFC 6455 says (fragments, control frames, bad frames closed with the right
code); polling clients upgrade as before."""

from __future__ import annotations

import asyncio
import gc
import json
import struct

import pytest
from aiohttp import web

from server.keys import SIO
from tests.support.rawsocket import TcpWebSocket
from tests.support.realtime import SocketUser, register_user

IDLE_SOCKETS = 20


def _url(client) -> str:
    return str(client.make_url("")).rstrip("/")


def _live_socketio_requests() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects()
               if isinstance(o, web.BaseRequest) and o.path.startswith("/socket.io"))


async def _frames_until_closed(ws: TcpWebSocket, timeout: float) -> tuple[list[str], int | None]:
    """Text frames (pings included, none answered) until the close frame."""
    texts: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            opcode, payload = await ws.frame()
            if opcode == -1:
                return texts, None
            if opcode == 0x8:
                return texts, struct.unpack("!H", payload[:2])[0]
            texts.append(payload.decode())


async def test_an_idle_websocket_holds_no_task_and_no_aiohttp_request(make_client):
    client = await make_client()
    node = _url(client)
    user = await register_user(node, "idle")
    await asyncio.sleep(0.2)
    tasks_before = len(asyncio.all_tasks())
    sockets = [await TcpWebSocket(node).open(user["access_token"]) for _ in range(IDLE_SOCKETS)]
    try:
        await asyncio.sleep(0.5)
        assert len(client.app[SIO].eio.links) == IDLE_SOCKETS
        # engine.io's ping sleeper, the writer, aiohttp's two handler tasks: none per socket
        assert len(asyncio.all_tasks()) - tasks_before < IDLE_SOCKETS // 4
        assert _live_socketio_requests() == 0
        # and they still work: each one is answered
        for n, ws in enumerate(sockets):
            ws.send(f"42{n}" + json.dumps(["presence:subscribe", {"user_ids": []}]))
        for n, ws in enumerate(sockets):
            assert (await ws.recv()).startswith(f"43{n}[")
    finally:
        for ws in sockets:
            await ws.close()


async def _answer_pings(ws: TcpWebSocket, pings: list[float]) -> None:
    while True:
        opcode, payload = await ws.frame()
        assert opcode == 0x1, (opcode, payload)  # no close
        if payload == b"2":
            pings.append(asyncio.get_running_loop().time())
            ws.send("3")


async def test_pings_keep_an_answering_client_and_a_silent_one_is_closed_at_ping_timeout(
        make_client):
    client = await make_client(socket_ping_interval=1.0, socket_ping_timeout=1.0)
    node, sio = _url(client), client.app[SIO]
    user = await register_user(node, "pings")
    answering = await TcpWebSocket(node).open(user["access_token"])
    pings: list[float] = []
    answerer = asyncio.create_task(_answer_pings(answering, pings))
    silent = await TcpWebSocket(node).open(user["access_token"])
    silent_eio = sio.manager.eio_sid_from_sid(silent.sid, "/")
    try:
        texts, code = await _frames_until_closed(silent, timeout=10)
        assert texts[0] == "2" and texts[-1] == "1", texts  # pinged, then engine.io's CLOSE
        assert code == 1000
        for _ in range(50):
            if silent_eio not in sio.eio.sockets:
                break
            await asyncio.sleep(0.1)
        assert silent_eio not in sio.eio.sockets
        assert silent.sid not in {s for s, _ in sio.manager.get_participants("/", None)}
        # the one that answers keeps being pinged and stays
        async with asyncio.timeout(10):
            while len(pings) < 4:
                assert not answerer.done(), answerer
                await asyncio.sleep(0.1)
        assert answering.sid in {s for s, _ in sio.manager.get_participants("/", None)}
    finally:
        answerer.cancel()
        await answering.close()
        await silent.close()


async def test_fragmented_messages_and_control_frames(make_client):
    client = await make_client()
    node = _url(client)
    user = await register_user(node, "frames")
    ws = await TcpWebSocket(node).open()
    try:
        hello = ("40" + json.dumps({"token": user["access_token"]})).encode()
        ws.send_frame(hello[:5], fin=False)
        ws.send_frame(b"ping me", 0x9)  # a control frame between fragments
        ws.send_frame(hello[5:20], 0x0, fin=False)
        ws.send_frame(hello[20:], 0x0)
        assert await ws.frame() == (0xA, b"ping me")
        assert (await ws.recv()).startswith("40{")
        ws.send_frame(struct.pack("!H", 1000), 0x8)
        _, code = await ws.drain(timeout=10)
        assert code == 1000
    finally:
        await ws.close()


@pytest.mark.parametrize(("frame", "code"), [
    ({"data": b"40", "masked": False}, 1002),
    ({"data": b"4\xff\xfe"}, 1007),
    ({"data": b"4" + b"x" * (2 * 64 * 1024 + 1)}, 1009),
    ({"data": b"40", "opcode": 0x3}, 1002),
], ids=["unmasked", "not-utf8", "too-large", "unknown-opcode"])
async def test_bad_frames_close_the_connection_with_their_code(make_client, frame, code):
    client = await make_client(socket_max_payload=64 * 1024)
    node, sio = _url(client), client.app[SIO]
    ws = await TcpWebSocket(node).open()
    try:
        ws.send_frame(**frame)
        _, close_code = await ws.drain(timeout=10)
        assert close_code == code
        for _ in range(50):
            if not sio.eio.sockets:
                break
            await asyncio.sleep(0.1)
        assert not sio.eio.sockets
    finally:
        await ws.close()


async def test_a_polling_client_upgrades_and_a_server_disconnect_closes_the_websocket(
        make_client):
    client = await make_client()
    node, sio = _url(client), client.app[SIO]
    user = await register_user(node, "upgrader")
    polling = await SocketUser(node, user["access_token"], name="upgrades",
                               transports=["polling", "websocket"]).connect()
    try:
        for _ in range(50):
            if sio.eio.links:
                break
            await asyncio.sleep(0.1)
        assert polling.sio.eio.current_transport == "websocket"
        assert len(sio.eio.links) == 1
        ack = await polling.call("presence:subscribe", {"user_ids": []})
        assert "ok" in ack, ack
        await sio.disconnect(polling.sio.get_sid())
        for _ in range(50):
            if not polling.sio.connected and not sio.eio.links:
                break
            await asyncio.sleep(0.1)
        assert not polling.sio.connected
        assert not sio.eio.links and not sio.eio.sockets
    finally:
        await polling.close()


async def test_websockets_are_closed_when_the_node_stops(make_client):
    client = await make_client()
    node = _url(client)
    user = await register_user(node, "stopping")
    connected = await TcpWebSocket(node).open(user["access_token"])
    bare = await TcpWebSocket(node).open()  # engine.io only: no Socket.IO CONNECT
    try:
        await client.close()
        texts, code = await connected.drain(timeout=10)
        assert "41" in texts and code in (1000, 1001)  # disconnected by the app, then closed
        _, code = await bare.drain(timeout=10)
        assert code == 1001  # going away
    finally:
        await connected.close()
        await bare.close()


async def test_a_polling_client_disconnects_without_waiting_for_its_long_poll(make_client):
    """The client's CLOSE ends its long-poll in flight at once (answered
    with a CLOSE packet), so ``disconnect()`` returns promptly instead of
    after ping_interval + ping_timeout (45 s here), and the node forgets
    the socket."""
    client = await make_client(socket_ping_interval=25.0, socket_ping_timeout=20.0)
    node = _url(client)
    user = await register_user(node, "poller")
    sockets = [await SocketUser(node, user["access_token"], name=f"polling {i}",
                                transports=["polling"]).connect() for i in range(3)]
    await asyncio.sleep(0.3)  # each has its long-poll waiting on the server
    eio = client.app[SIO].eio
    assert len(eio.sockets) == 3
    await asyncio.wait_for(asyncio.gather(*(s.close() for s in sockets)), 10)
    assert all(s.disconnected.is_set() and not s.sio.connected for s in sockets)
    async with asyncio.timeout(5):
        while any(not s.closed for s in eio.sockets.values()):
            await asyncio.sleep(0.05)
