"""The broadcast fast path (server/realtime/fanout.py) as clients see it:
every recipient socket gets each event once and in send order per sender
(websocket, polling, mid-upgrade; python-socketio and the official JS
client; one node and two nodes over Redis), multi-room emits deduplicate,
``skip_sid`` skips, a consumer that stops reading is cut off while the
others keep receiving, permessage-deflate is negotiated only when enabled."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from server.keys import METRICS, SIO
from tests.support.rawsocket import PollingSocket, TcpWebSocket
from tests.support.realtime import SocketUser, new_client_id, open_group, register_user

JS_DIR = Path(__file__).resolve().parents[1] / "js"
PER_SENDER = 12


async def _nodes(make_client, redis_url: str | None, **overrides) -> list[Any]:
    """Two TestClients: the same node twice, or two nodes sharing Redis.
    Short pings: a polling client's disconnect waits for its pending poll."""
    overrides = {"socket_ping_interval": 1.0, "socket_ping_timeout": 5.0, **overrides}
    if redis_url is None:
        client = await make_client(**overrides)
        return [client, client]
    return [await make_client(redis_url=redis_url, **overrides),
            await make_client(redis_url=redis_url, **overrides)]


def _url(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def _received(user: SocketUser, count: int, timeout: float = 30.0) -> list[Any]:
    """The ``message`` events once ``count`` arrived, plus any duplicate
    that follows shortly after."""
    async with asyncio.timeout(timeout):
        while len(user.received("message")) < count:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return user.received("message")


def _assert_once_in_order(bodies: list[str], senders: list[str], who: str) -> None:
    expected = {f"{s}-{n}" for s in senders for n in range(PER_SENDER)}
    counts = Counter(bodies)
    assert set(counts) == expected and set(counts.values()) == {1}, (who, counts)
    for sender in senders:
        numbers = [int(b.rsplit("-", 1)[1]) for b in bodies if b.startswith(f"{sender}-")]
        assert numbers == list(range(PER_SENDER)), (who, sender, numbers)


async def _send_all(sender: SocketUser, room_id: str, tag: str) -> list[dict]:
    acks = []
    for n in range(PER_SENDER):
        body = f"{tag}-{n}"
        ack = await sender.call("message:send", {"room_id": room_id, "client_id": new_client_id(),
                                                 "body": body})
        assert ack["ok"], ack
        acks.append(ack)
    return acks


async def _js_receiver(url: str, token: str, expected: int, mode: str):
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(JS_DIR / "fanout_receiver.mjs"), url, token,
        str(expected), mode, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    return proc


@pytest.mark.parametrize("over_redis", [False, True], ids=["one node", "two nodes + redis"])
async def test_room_messages_reach_every_socket_once_in_send_order(make_client, request,
                                                                    over_redis):
    redis_url = request.getfixturevalue("redis_url") if over_redis else None
    a, b = (_url(c) for c in await _nodes(make_client, redis_url))
    users = [await register_user(a, f"u{i}") for i in range(5)]
    room = await open_group(a, users[0], users[1:])
    sockets = [
        SocketUser(a, users[0]["access_token"], name="u0 websocket"),
        SocketUser(b, users[0]["access_token"], name="u0 second socket, other node"),
        SocketUser(a, users[1]["access_token"], name="u1 polling", transports=["polling"]),
        SocketUser(b, users[2]["access_token"], name="u2 upgrading",
                   transports=["polling", "websocket"]),
        SocketUser(b, users[3]["access_token"], name="u3 websocket"),
        SocketUser(a, users[4]["access_token"], name="u4 websocket"),
    ]
    senders = {"u0": sockets[0], "u3": sockets[4], "u4": sockets[5]}
    total = len(senders) * PER_SENDER
    for s in sockets:
        await s.connect()
    js = [await _js_receiver(a, users[1]["access_token"], total, "websocket"),
          await _js_receiver(b, users[2]["access_token"], total, "upgrade")]
    try:
        acks = await asyncio.gather(*(_send_all(s, room["id"], tag) for tag, s in senders.items()))
        for (tag, _), sent in zip(senders.items(), acks, strict=True):
            # acks still carry the stored message
            stored = [ack["message"] for ack in sent]
            assert [m["body"] for m in stored] == [f"{tag}-{n}" for n in range(PER_SENDER)]
            assert all(m["room_id"] == room["id"] and isinstance(m["seq"], int) for m in stored)
            assert [m["seq"] for m in stored] == sorted(m["seq"] for m in stored)
        seqs = sorted(ack["message"]["seq"] for sent in acks for ack in sent)
        assert seqs == list(range(seqs[0], seqs[0] + total))
        for s in sockets:
            got = await _received(s, total)
            _assert_once_in_order([m["body"] for m in got], list(senders), s.name)
        for proc in js:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            result = json.loads(out.decode().strip().splitlines()[-1])
            assert "error" not in result, (result, err.decode()[-2000:])
            _assert_once_in_order(result["bodies"], list(senders), "socket.io-client")
    finally:
        for proc in js:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for s in sockets:
            await s.close()


@pytest.mark.parametrize("over_redis", [False, True], ids=["one node", "two nodes + redis"])
async def test_multi_room_emit_reaches_each_socket_once_and_skip_sid_skips(make_client, request,
                                                                          over_redis):
    redis_url = request.getfixturevalue("redis_url") if over_redis else None
    node_a, node_b = await _nodes(make_client, redis_url)
    user = await register_user(_url(node_a), "member")
    one = await SocketUser(_url(node_a), user["access_token"], name="r1 and r2").connect()
    two = await SocketUser(_url(node_a), user["access_token"], name="r2").connect()
    three = await SocketUser(_url(node_b), user["access_token"], name="r1 and r2, node b").connect()
    polling = await SocketUser(_url(node_a), user["access_token"], name="r1 and r2, polling",
                               transports=["polling"]).connect()
    try:
        joins = [(node_a, one, ["r1", "r2"]), (node_a, two, ["r2"]),
                 (node_b, three, ["r1", "r2"]), (node_a, polling, ["r1", "r2"])]
        for node, s, rooms in joins:
            for r in rooms:
                await node.app[SIO].enter_room(s.sio.get_sid(), r)
        sio = node_a.app[SIO]
        await sio.emit("message", {"body": "both rooms"}, to=["r1", "r2"])
        await sio.emit("message", {"body": "not two"}, to=["r1", "r2"], skip_sid=two.sio.get_sid())
        await sio.emit("message", {"body": "not one, not three"}, to=["r2", "r1"],
                       skip_sid=[one.sio.get_sid(), three.sio.get_sid()])
        await sio.emit("message", {"body": "end"}, to="r2")
        for s in (one, two, three, polling):
            await s.wait_for("message", lambda m: m["body"] == "end", timeout=10)
        await asyncio.sleep(0.3)
        expected = {
            "r1 and r2": ["both rooms", "not two", "end"],
            "r2": ["both rooms", "not one, not three", "end"],
            "r1 and r2, node b": ["both rooms", "not two", "end"],
            "r1 and r2, polling": ["both rooms", "not two", "not one, not three", "end"],
        }
        for s in (one, two, three, polling):
            assert [m["body"] for m in s.received("message")] == expected[s.name], s.name
    finally:
        for s in (one, two, three, polling):
            await s.close()


async def test_a_consumer_that_stops_reading_is_cut_off_while_others_keep_receiving(
        make_client):
    limit = 64 * 1024
    client = await make_client(socket_send_buffer_limit=limit)
    node, sio = _url(client), client.app[SIO]
    registry = client.app[METRICS].registry
    user = await register_user(node, "reader")
    reader = await SocketUser(node, user["access_token"], name="keeps reading").connect()
    stalled = await TcpWebSocket(node, rcvbuf=4096).open(user["access_token"])
    for sid in (reader.sio.get_sid(), stalled.sid):
        await sio.enter_room(sid, "load")
    payload = "x" * 8000
    sent = 0
    try:
        # the stalled socket reads nothing from here on
        while not registry.get_sample_value("skillshare_socket_slow_consumers_total"):
            assert sent < 2000, "never cut off"
            await sio.emit("message", {"body": f"{sent}", "pad": payload}, to="load")
            sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0.01)
        for n in range(sent, sent + 20):  # and after the cut
            await sio.emit("message", {"body": f"{n}", "pad": payload}, to="load")
        sent += 20
        got = await _received(reader, sent)
        assert [m["body"] for m in got] == [str(n) for n in range(sent)]
        # it left its rooms at once, though its transport gets a grace to flush
        assert [s for s, _ in sio.manager.get_participants("/", "load")] == [reader.sio.get_sid()]
        texts, close_code = await stalled.drain(timeout=30)
        events = [json.loads(t[2:]) for t in texts if t.startswith("42")]
        assert events[-1] == ["session:ended", {"reason": "slow_consumer"}]
        numbers = [int(e[1]["body"]) for e in events[:-1]]
        assert numbers == list(range(len(numbers))) and len(numbers) < sent
        assert close_code == 1013
        assert reader.sio.connected
    finally:
        await stalled.close()
        await reader.close()


async def test_a_polling_client_that_stops_polling_is_cut_off_at_the_queue_limit(make_client):
    client = await make_client(socket_send_queue_limit=50)
    node, sio = _url(client), client.app[SIO]
    registry = client.app[METRICS].registry
    user = await register_user(node, "poller")
    reader = await SocketUser(node, user["access_token"], name="keeps reading").connect()
    stalled = await PollingSocket(node).open(user["access_token"])
    try:
        for sid in (reader.sio.get_sid(), stalled.sid):
            await sio.enter_room(sid, "load")
        for n in range(120):  # no poll from the stalled client meanwhile
            await sio.emit("message", {"body": str(n)}, to="load")
        assert registry.get_sample_value("skillshare_socket_slow_consumers_total") == 1
        got = await _received(reader, 120)
        assert [m["body"] for m in got] == [str(n) for n in range(120)]
        assert [s for s, _ in sio.manager.get_participants("/", "load")] == [reader.sio.get_sid()]
        assert await stalled.get() is None  # its session is gone: it reconnects
    finally:
        await stalled.close()
        await reader.close()


@pytest.mark.parametrize("enabled", [False, True], ids=["default", "SOCKET_COMPRESSION"])
async def test_permessage_deflate_is_negotiated_only_when_enabled(make_client, enabled):
    client = await make_client(socket_compression=enabled, socket_compression_threshold=512)
    node, sio = _url(client), client.app[SIO]
    user = await register_user(node, "zip")
    raw = await TcpWebSocket(
        node, extensions="permessage-deflate; client_max_window_bits").open(user["access_token"])
    plain = await SocketUser(node, user["access_token"], name="python-socketio").connect()
    try:
        negotiated = raw.headers.get("sec-websocket-extensions", "")
        assert ("permessage-deflate" in negotiated) == enabled, raw.headers
        for sid in (raw.sid, plain.sio.get_sid()):
            await sio.enter_room(sid, "z")
        # large ones compressed (when enabled) between small plain ones, in emit order
        bodies = ["small", "y" * 4000, "small again", "z" * 700, "w" * 40000, "last"]
        raw.deflated.clear()
        for body in bodies:
            await sio.emit("message", {"body": body}, to="z")
            for _ in range(3):  # let the writer start on it (a large one deflates off-loop)
                await asyncio.sleep(0)
        texts = [await raw.recv() for _ in bodies]
        assert [json.loads(t[2:])[1]["body"] for t in texts] == bodies
        assert raw.deflated == [enabled and len(b) > 512 for b in bodies]
        got = await _received(plain, len(bodies))
        assert [m["body"] for m in got] == bodies
    finally:
        await raw.close()
        await plain.close()


async def test_a_batch_longer_than_a_polling_payload_reaches_a_python_polling_client(make_client):
    """python-engineio's client refuses a polling payload of more than 16
    packets (and drops the connection); a batch of 40 events queued at once
    reaches it over several polls, in order, and it stays connected."""
    client = await make_client()
    node = _url(client)
    user = await register_user(node, "poller")
    polling = await SocketUser(node, user["access_token"], name="polling",
                               transports=["polling"]).connect()
    try:
        bodies = [f"batch #{n}" for n in range(40)]
        await client.app[SIO].emit_many("message", [{"body": b} for b in bodies],
                                        to=f"user:{user['id']}")
        await polling.wait_for("message", lambda e: e["body"] == bodies[-1], timeout=15)
        assert [e["body"] for e in polling.received("message")] == bodies
        assert polling.sio.connected and not polling.disconnected.is_set()
    finally:
        await polling.close()
