"""Consent across two node processes sharing redis-server and the database:
a block made on one node is enforced on the other (messages, calls,
presence) although the other answers from its cached blocks, and leaving a
group stops delivery on every node."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import TEST_SECRET
from tests.support.metrics import sample
from tests.support.realtime import SocketUser, http_json, new_client_id, open_direct, register_user
from tests.support.services import RedisProcess, cluster_node_env, running_nodes


@pytest.fixture(scope="module")
def nodes(mongo_url: str, redis_process: RedisProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    if redis_process.proc is None or redis_process.proc.poll() is not None:
        redis_process.start()
    redis_process.flushall()
    workdir = tmp_path_factory.mktemp("consent-cluster")
    env = cluster_node_env(
        mongo_url=mongo_url, db=f"k_{uuid.uuid4().hex[:10]}", redis_url=redis_process.url,
        data_dir=workdir / "data", secret_key=TEST_SECRET, node_ttl=3.0,
    )
    with running_nodes(env, workdir, 2) as started:
        yield [n.url for n in started]


async def _befriend(url: str, a: dict, b: dict) -> dict:
    room = await open_direct(url, a["access_token"], b["id"])
    await open_direct(url, b["access_token"], a["id"])
    return room


async def test_a_block_on_one_node_holds_on_the_other(nodes):
    one, two = nodes
    alice = await register_user(one, "alice")
    bob = await register_user(two, "bob")
    carol = await register_user(one, "carol")
    room = await _befriend(one, alice, bob)
    await _befriend(one, carol, bob)
    a = await SocketUser(one, alice["access_token"], name="alice@1").connect()
    c = await SocketUser(one, carol["access_token"], name="carol@1").connect()
    b = await SocketUser(two, bob["access_token"], name="bob@2").connect()
    try:
        # Warm node one's caches: alice may message bob and watch him.
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                            "body": "hi bob"})
        assert ack["ok"], ack
        reads = await _block_reads(one)
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                            "body": "still there?"})
        assert ack["ok"], ack
        assert await _block_reads(one) == reads, "node one answers from its cached blocks"
        assert (await a.call("presence:subscribe", {"user_ids": [bob["id"]]}))["presence"]
        assert (await c.call("presence:subscribe", {"user_ids": [bob["id"]]}))["presence"]

        status, _ = await http_json("POST", f"{two}/api/v1/users/{alice['id']}/block",
                                    token=bob["access_token"])
        assert status == 200
        send = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "are you there?"})
        assert send["ok"] is False and send["error"]["code"] == "blocked", send
        call = await a.call("call:invite", {"user_id": bob["id"],
                                            "media": {"audio": True, "video": False}})
        assert call["error"]["code"] == "blocked", call

        # alice's subscription on node one no longer gets bob's changes;
        # carol's (a contact, same node) does.
        assert (await b.call("presence:set", {"status": "dnd"}))["ok"]
        await c.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "dnd")
        assert (await a.call("presence:subscribe", {"user_ids": []}))["ok"]
        assert a.received("presence", lambda p: p["user_id"] == bob["id"]
                          and p["status"] == "dnd") == []

        status, _ = await http_json("DELETE", f"{two}/api/v1/users/{alice['id']}/block",
                                    token=bob["access_token"])
        assert status == 204
        send = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "hello again"})
        assert send["ok"], send
        await b.wait_for("message", lambda m: m["id"] == send["message"]["id"])
    finally:
        for s in (a, b, c):
            await s.close()


async def test_leaving_a_group_stops_delivery_on_every_node(nodes):
    one, two = nodes
    alice = await register_user(one, "alice")
    bob = await register_user(two, "bob")
    await _befriend(one, alice, bob)
    status, room = await http_json("POST", f"{one}/api/v1/rooms", token=alice["access_token"],
                                   json={"type": "group", "name": "g", "member_ids": [bob["id"]]})
    assert status == 201, room
    a = await SocketUser(one, alice["access_token"], name="alice@1").connect()
    b = await SocketUser(two, bob["access_token"], name="bob@2").connect()
    try:
        first = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                              "body": "before"})
        await b.wait_for("message", lambda m: m["id"] == first["message"]["id"])
        status, _ = await http_json("POST", f"{two}/api/v1/rooms/{room['id']}/leave",
                                    token=bob["access_token"])
        assert status == 204
        await a.wait_for("room:member_left", lambda e: e["user_id"] == bob["id"])
        after = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                              "body": "after"})
        assert after["ok"], after
        # A barrier on bob's socket: anything emitted before is received before this ack.
        assert (await b.call("presence:subscribe", {"user_ids": []}))["ok"]
        assert [m["body"] for m in b.received("message")] == ["before"]
    finally:
        await a.close()
        await b.close()


async def _block_reads(url: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return sample(text, "skillshare_db_commands_total", collection="blocks", command="find",
                  outcome="ok")


async def test_typing_reads_blocks_once_and_a_block_on_another_node_stops_it(nodes):
    """Typing indicators (many per conversation) read no blocks once the
    typist's are cached on the node; a block made on the other node reaches
    this node's answer through the bus at once, not after the cache's
    lifetime."""
    one, two = nodes
    dave = await register_user(one, "dave")
    erin = await register_user(two, "erin")
    room = await _befriend(one, dave, erin)
    d = await SocketUser(one, dave["access_token"], name="dave@1").connect()
    e = await SocketUser(two, erin["access_token"], name="erin@2").connect()
    try:
        before = await _block_reads(one)
        for typing in (True, False) * 3:
            ack = await d.call("typing", {"room_id": room["id"], "typing": typing})
            assert ack["ok"] and ack["relayed"], ack
        await e.wait_for("typing", lambda t: t["user_id"] == dave["id"] and not t["typing"])
        # dave's blocks were read (and cached) when the room opened
        assert await _block_reads(one) - before == 0, "typing read blocks"

        status, _ = await http_json("POST", f"{two}/api/v1/users/{dave['id']}/block",
                                    token=erin["access_token"])
        assert status == 200
        deadline = asyncio.get_running_loop().time() + 2.0  # the cache lives 2 min
        while True:
            ack = await d.call("typing", {"room_id": room["id"], "typing": True})
            if not ack["ok"]:
                break
            await d.call("typing", {"room_id": room["id"], "typing": False})
            assert asyncio.get_running_loop().time() < deadline, "typing still relayed"
            await asyncio.sleep(0.05)
        assert ack["error"]["code"] == "blocked", ack

        status, _ = await http_json("DELETE", f"{two}/api/v1/users/{dave['id']}/block",
                                    token=erin["access_token"])
        assert status == 204
        ack = await d.call("typing", {"room_id": room["id"], "typing": True})
        assert ack["ok"] and ack["relayed"], ack
    finally:
        await d.close()
        await e.close()
