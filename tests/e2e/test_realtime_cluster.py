"""Three node processes sharing one redis-server and one database, users
spread over them: presence, chat, typing, read markers, sync after
reconnecting elsewhere, idempotent retries, concurrent senders, revocation,
a node killed with SIGKILL, and redis-server restarted mid-chat."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET
from tests.support.realtime import (
    SocketUser,
    http_json,
    new_client_id,
    open_direct,
    open_group,
    register_user,
)
from tests.support.services import NodeProcess, RedisProcess, cluster_node_env

NODE_TTL = 3.0  # presence heartbeat TTL in these tests (30 s bound, kept short)


class Cluster:
    def __init__(self, env: dict[str, str], workdir: Path, redis: RedisProcess) -> None:
        self.env, self.workdir, self.redis = env, workdir, redis
        self.nodes: list[NodeProcess] = []

    def add_node(self) -> NodeProcess:
        index = len(self.nodes)
        node = NodeProcess(self.env, log_path=self.workdir / f"node{index}.log")
        node.start()
        self.nodes.append(node)
        return node

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.terminate()


@pytest.fixture(scope="module")
def cluster(mongo_url: str, redis_process: RedisProcess,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if redis_process.proc is None or redis_process.proc.poll() is not None:
        redis_process.start()
    redis_process.flushall()
    workdir = tmp_path_factory.mktemp("cluster")
    env = cluster_node_env(
        mongo_url=mongo_url, db=f"c_{uuid.uuid4().hex[:10]}", redis_url=redis_process.url,
        data_dir=workdir / "data", secret_key=TEST_SECRET, node_ttl=NODE_TTL,
        typing_interval="0.2",
    )
    cluster = Cluster(env, workdir, redis_process)
    try:
        for _ in range(3):
            cluster.add_node()
        yield cluster
    finally:
        cluster.stop()


async def _users(cluster: Cluster, *names: str) -> list[dict]:
    return [await register_user(cluster.urls[i % 3], name) for i, name in enumerate(names)]


async def test_presence_chat_typing_and_read_across_nodes(cluster):
    alice, bob, carol = await _users(cluster, "alice", "bob", "carol")
    room = await open_group(cluster.urls[0], alice, [bob, carol])
    a = await SocketUser(cluster.urls[0], alice["access_token"], name="alice@0").connect()
    c = await SocketUser(cluster.urls[2], carol["access_token"], name="carol@2").connect()
    b = None
    try:
        ack = await a.call("presence:subscribe", {"user_ids": [bob["id"], carol["id"]]})
        assert ack["presence"][carol["id"]]["status"] == "online"
        assert ack["presence"][bob["id"]]["status"] == "offline"
        b = await SocketUser(cluster.urls[1], bob["access_token"], name="bob@1").connect()
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "online", timeout=2)
        assert (await b.call("presence:set", {"status": "away"}))["ok"]
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "away", timeout=2)

        sent = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "hi all"})
        assert sent["ok"] and sent["message"]["seq"] == 1
        for s in (b, c):
            await s.wait_for("message", lambda m: m["id"] == sent["message"]["id"], timeout=2)

        assert (await c.call("typing", {"room_id": room["id"], "typing": True}))["ok"]
        await a.wait_for("typing", lambda t: t["user_id"] == carol["id"], timeout=2)
        await b.wait_for("typing", lambda t: t["user_id"] == carol["id"], timeout=2)

        assert (await b.call("message:read", {"room_id": room["id"], "seq": 1}))["ok"]
        await a.wait_for("read", lambda r: r["user_id"] == bob["id"] and r["seq"] == 1, timeout=2)
        status, rooms = await http_json("GET", f"{cluster.urls[2]}/api/v1/rooms", token=bob["access_token"])
        assert rooms["items"][0]["unread_count"] == 0
        status, rooms = await http_json("GET", f"{cluster.urls[1]}/api/v1/rooms", token=carol["access_token"])
        assert rooms["items"][0]["unread_count"] == 1

        bad = await b.call("message:send", {"room_id": room["id"], "body": 12})
        assert bad["error"]["code"] == "validation_error"

        await b.close()
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "offline", timeout=2)
    finally:
        for s in (a, b, c):
            if s is not None:
                await s.close()


async def test_concurrent_senders_on_three_nodes_get_gap_free_seqs(cluster):
    users = await _users(cluster, "u0", "u1", "u2")
    room = await open_group(cluster.urls[0], users[0], users[1:], "busy")
    sockets = [await SocketUser(cluster.urls[i], u["access_token"], name=f"u{i}").connect()
               for i, u in enumerate(users)]
    per_sender = 25
    try:
        async def burst(s: SocketUser) -> list[int]:
            acks = await asyncio.gather(*(
                s.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                        "body": f"{s.name} #{k}"}) for k in range(per_sender)
            ))
            assert all(a["ok"] for a in acks), [a for a in acks if not a["ok"]][:3]
            return [a["message"]["seq"] for a in acks]

        seqs = sorted(sum(await asyncio.gather(*(burst(s) for s in sockets)), []))
        total = per_sender * len(sockets)
        assert seqs == list(range(1, total + 1))
        for s in sockets:
            await s.wait_for("message", lambda m: m["seq"] == total, timeout=5)
            deadline = time.monotonic() + 5
            while len(s.received("message")) < total and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            got = sorted(m["seq"] for m in s.received("message"))
            assert got == list(range(1, total + 1))  # every message once
        synced = await sockets[1].call("room:sync", {"room_id": room["id"], "after_seq": 0, "limit": 500})
        assert [m["seq"] for m in synced["messages"]] == list(range(1, total + 1))
    finally:
        for s in sockets:
            await s.close()


async def test_idempotent_retry_on_another_node_and_sync_after_reconnecting_elsewhere(cluster):
    alice, bob = await register_user(cluster.urls[0], "alice"), await register_user(cluster.urls[1], "bob")
    room = await open_direct(cluster.urls[0], alice["access_token"], bob["id"])
    b = await SocketUser(cluster.urls[1], bob["access_token"], name="bob@1").connect()
    a0 = await SocketUser(cluster.urls[0], alice["access_token"], name="alice@0").connect()
    try:
        cid = new_client_id()
        first = await a0.call("message:send", {"room_id": room["id"], "client_id": cid, "body": "once"})
        await b.wait_for("message", lambda m: m["client_id"] == cid, timeout=2)
        await a0.close()
        a2 = await SocketUser(cluster.urls[2], alice["access_token"], name="alice@2").connect()
        retry = await a2.call("message:send", {"room_id": room["id"], "client_id": cid, "body": "once"})
        assert retry["ok"] and retry["message"] == first["message"]
        await asyncio.sleep(0.5)
        assert len(b.received("message", lambda m: m["client_id"] == cid)) == 1

        last_seen = 1
        await b.close()
        for k in range(5):
            assert (await a2.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                                   "body": f"while away {k}"}))["ok"]
        b2 = await SocketUser(cluster.urls[2], bob["access_token"], name="bob@2").connect()
        joined = await b2.call("room:join", {"room_id": room["id"]})
        assert joined["last_seq"] == 6
        synced = await b2.call("room:sync", {"room_id": room["id"], "after_seq": last_seen})
        assert [m["seq"] for m in synced["messages"]] == [2, 3, 4, 5, 6]
        await a2.close()
        await b2.close()
    finally:
        await a0.close()
        await b.close()


async def test_logout_disconnects_sockets_on_every_node_within_2s(cluster):
    (user,) = await _users(cluster, "leaver")
    sockets = [await SocketUser(url, user["access_token"], name=f"s{i}").connect()
               for i, url in enumerate(cluster.urls)]
    try:
        started = time.monotonic()
        status, _ = await http_json("POST", f"{cluster.urls[1]}/api/v1/auth/logout",
                                    token=user["access_token"])
        assert status == 204
        await asyncio.gather(*(s.wait_disconnected(timeout=2 - (time.monotonic() - started) + 0.01)
                               for s in sockets))
    finally:
        for s in sockets:
            await s.close()


async def test_a_flooding_client_is_cut_off_while_others_chat_on(cluster):
    flooder, alice, bob = await _users(cluster, "flooder", "alice", "bob")
    room = await open_direct(cluster.urls[1], alice["access_token"], bob["id"])
    f = await SocketUser(cluster.urls[0], flooder["access_token"], name="flooder@0").connect()
    a = await SocketUser(cluster.urls[0], alice["access_token"], name="alice@0").connect()
    b = await SocketUser(cluster.urls[1], bob["access_token"], name="bob@1").connect()
    try:
        acks = await asyncio.gather(*(f.call("presence:set", {"status": "online"}) for _ in range(80)),
                                    return_exceptions=True)
        assert any(isinstance(x, dict) and x.get("error", {}).get("code") == "rate_limited" for x in acks)
        for _ in range(200):  # keeps on without waiting for acks
            if not f.sio.connected:
                break
            await f.sio.emit("typing", {"room_id": room["id"], "typing": True})
        await f.wait_disconnected(timeout=5)
        sent = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "still here"})
        assert sent["ok"]
        await b.wait_for("message", lambda m: m["id"] == sent["message"]["id"], timeout=2)
    finally:
        for s in (f, a, b):
            await s.close()


async def test_killed_node_users_go_offline_and_acked_messages_survive(cluster):
    victim = cluster.add_node()
    try:
        alice = await register_user(cluster.urls[0], "alice")
        bob = await register_user(cluster.urls[1], "bob")
        room = await open_direct(cluster.urls[0], alice["access_token"], bob["id"])
        await open_direct(cluster.urls[1], bob["access_token"], alice["id"])  # bob consents
        watcher = await SocketUser(cluster.urls[0], alice["access_token"], name="alice@0").connect()
        doomed = await SocketUser(victim.url, bob["access_token"], name="bob@victim").connect()
        await watcher.call("presence:subscribe", {"user_ids": [bob["id"]]})
        acked = []
        for k in range(10):
            ack = await doomed.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                                     "body": f"before the crash {k}"})
            assert ack["ok"]
            acked.append(ack["message"])
        victim.kill()
        killed_at = time.monotonic()
        await doomed.wait_disconnected(timeout=5)
        seen = len(watcher.events)
        await watcher.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "offline"
                               and ("presence", p) in watcher.events[seen:], timeout=30)
        assert time.monotonic() - killed_at <= 30
        # Bob resumes on another node: everything acked is there, in order.
        seen = len(watcher.events)
        resumed = await SocketUser(cluster.urls[2], bob["access_token"], name="bob@2").connect()
        synced = await resumed.call("room:sync", {"room_id": room["id"], "after_seq": 0})
        assert [m["id"] for m in synced["messages"]] == [m["id"] for m in acked]
        await watcher.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "online"
                               and ("presence", p) in watcher.events[seen:], timeout=2)
        await resumed.close()
        await watcher.close()
    finally:
        victim.kill()
        cluster.nodes.remove(victim)


async def test_redis_restart_mid_chat_loses_no_acknowledged_message(cluster):
    alice = await register_user(cluster.urls[0], "alice")
    bob = await register_user(cluster.urls[1], "bob")
    room = await open_direct(cluster.urls[0], alice["access_token"], bob["id"])
    await open_direct(cluster.urls[1], bob["access_token"], alice["id"])  # bob consents
    a = await SocketUser(cluster.urls[0], alice["access_token"], name="alice@0").connect()
    b = await SocketUser(cluster.urls[1], bob["access_token"], name="bob@1").connect()
    acked: list[dict] = []
    try:
        async def send(body: str) -> dict:
            ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                                "body": body})
            if ack["ok"]:
                acked.append(ack["message"])
            return ack

        assert (await send("before"))["ok"]
        cluster.redis.kill()
        during = await send("while redis is down")  # stored; fan-out may miss it
        assert during["ok"], during
        cluster.redis.start()
        # Fan-out resumes by itself: a fresh message reaches bob on the other node.
        deadline = time.monotonic() + 30
        delivered = False
        while time.monotonic() < deadline and not delivered:
            ack = await send("after restart")
            try:
                await b.wait_for("message", lambda m, i=ack["message"]["id"]: m["id"] == i, timeout=1)
                delivered = True
            except AssertionError:
                pass
        assert delivered, "fan-out did not resume after redis-server restarted"
        synced = await b.call("room:sync", {"room_id": room["id"], "after_seq": 0, "limit": 500})
        assert [m["id"] for m in synced["messages"]] == [m["id"] for m in acked]
        # Presence state is rebuilt from the nodes' own sockets.
        probe = await SocketUser(cluster.urls[2], alice["access_token"], name="alice@2").connect()
        deadline = time.monotonic() + 10
        while True:
            ack = await probe.call("presence:subscribe", {"user_ids": [bob["id"]]})
            if ack["presence"][bob["id"]]["status"] == "online" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert ack["presence"][bob["id"]]["status"] == "online"
        await probe.close()
    finally:
        await a.close()
        await b.close()
