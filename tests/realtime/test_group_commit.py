"""Group commit of chat sends: concurrent ``message:send``s to one room
from one node are stored as one ordered insert of consecutive seqs, each
acked once its batch is stored. Real nodes, real python-socketio clients,
the embedded database; its ``failCommand`` fail point holds or fails an
insert, so that the sends behind it queue into one batch."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from server.keys import DB, REALTIME_METRICS
from server.views.rooms import message_view
from tests.support.metrics import sample
from tests.support.realtime import (
    SocketUser,
    new_client_id,
    open_direct,
    open_group,
    register_user,
)

HOLD_MS = 400  # long enough for every send of a test to queue behind the held insert


def _base(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


@asynccontextmanager
async def _insert_fail_point(client: Any, *, times: int, **data: Any):
    """The database treats the next ``times`` ``insert`` commands as ``data``
    says (``blockConnection``/``blockTimeMS`` to hold them, ``errorCode`` to
    fail them); off again on leaving."""
    admin = client.app[DB].client.admin
    await admin.command({"configureFailPoint": "failCommand", "mode": {"times": times},
                         "data": {"failCommands": ["insert"], **data}})
    try:
        yield
    finally:
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def _largest_batch_seen(client: Any) -> float:
    """Sum minus count of the batch-size histogram: > 0 once some insert
    stored more than one message."""
    histogram = client.app[REALTIME_METRICS].message_batch_size
    samples = {s.name: s.value for metric in histogram.collect() for s in metric.samples}
    return samples["skillshare_message_batch_size_sum"] - samples["skillshare_message_batch_size_count"]


def _message_deliveries(client: Any) -> float:
    """``message`` events this node handed to its sockets."""
    counter = client.app[REALTIME_METRICS].deliveries
    return sum(s.value for metric in counter.collect() for s in metric.samples
               if s.name.endswith("_total") and "message" in s.labels.values())


async def _group(base: str, size: int) -> tuple[list[dict], dict]:
    users = [await register_user(base, f"u{i}") for i in range(size)]
    room = await open_group(base, users[0], users[1:])
    return users, room


async def _sockets(nodes: list[str], users: list[dict]) -> list[SocketUser]:
    """One socket per user, spread round-robin over ``nodes``."""
    return [await SocketUser(nodes[i % len(nodes)], u["access_token"], name=u["id"]).connect()
            for i, u in enumerate(users)]


async def _sync_all(socket: SocketUser, room_id: str) -> list[dict]:
    synced = await socket.call("room:sync", {"room_id": room_id, "after_seq": 0, "limit": 500})
    assert synced["ok"] and not synced["has_more"], synced
    return synced["messages"]


async def _send(socket: SocketUser, room_id: str, client_id: str, body: str) -> dict:
    return await socket.call("message:send", {"room_id": room_id, "client_id": client_id,
                                              "body": body}, timeout=30)


async def test_concurrent_sends_from_many_clients_on_two_nodes_get_gap_free_seqs(
        make_client, redis_url):
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    bases = [_base(node_a), _base(node_b)]
    users, room = await _group(bases[0], 6)
    sockets = await _sockets(bases, users)
    per_user = 8
    try:
        async with _insert_fail_point(node_a, times=1, blockConnection=True, blockTimeMS=HOLD_MS):
            acks = await asyncio.gather(*(
                _send(s, room["id"], new_client_id(), f"{s.name} #{k}")
                for k in range(per_user) for s in sockets))
        assert all(a["ok"] for a in acks), [a for a in acks if not a["ok"]]
        seqs = sorted(a["message"]["seq"] for a in acks)
        assert seqs == list(range(1, len(sockets) * per_user + 1))
        stored = await _sync_all(sockets[0], room["id"])
        assert [m["seq"] for m in stored] == seqs
        by_id = {m["id"]: m for m in stored}
        assert all(by_id[a["message"]["id"]] == a["message"] for a in acks)  # the stored message
        assert max(_largest_batch_seen(node_a), _largest_batch_seen(node_b)) > 0
        # every member socket gets every message once, whichever node stored it
        last = sockets[-1]
        for m in stored:
            await last.wait_for("message", lambda e, m=m: e["id"] == m["id"])
        assert len(last.received("message")) == len(stored)
    finally:
        for s in sockets:
            await s.close()


async def test_a_retry_while_the_first_send_waits_in_a_batch_returns_the_stored_message(
        make_client):
    node = await make_client()
    base = _base(node)
    users, room = await _group(base, 2)
    alice, bob = await _sockets([base], users)
    cid = new_client_id()
    try:
        async with _insert_fail_point(node, times=1, blockConnection=True, blockTimeMS=HOLD_MS):
            first, second, retry, retry_again = await asyncio.gather(
                _send(bob, room["id"], new_client_id(), "holds the room's first insert"),
                _send(alice, room["id"], cid, "hello"),
                _send(alice, room["id"], cid, "hello"),
                _send(alice, room["id"], cid, "hello"))
        assert first["ok"] and second["ok"] and retry["ok"] and retry_again["ok"]
        assert retry["message"] == second["message"] == retry_again["message"]
        assert sorted(a["duplicate"] for a in (second, retry, retry_again)) == [False, True, True]
        stored = await _sync_all(bob, room["id"])
        assert [m["seq"] for m in stored] == [1, 2]
        assert second["message"] in stored
        late = await _send(alice, room["id"], cid, "hello")  # after the batch: from the database
        assert late["duplicate"] and late["message"] == second["message"]
    finally:
        await alice.close()
        await bob.close()


async def test_one_clashing_send_in_a_batch_does_not_fail_the_others_nor_leave_a_gap(make_client):
    node = await make_client()
    base = _base(node)
    users, room = await _group(base, 3)
    other_room = await open_group(base, users[0], [await register_user(base, "dave")])
    alice, bob, carol = await _sockets([base], users)
    stored_cid, other_room_cid = new_client_id(), new_client_id()
    try:
        earlier = await _send(alice, room["id"], stored_cid, "already stored")
        assert earlier["ok"] and earlier["message"]["seq"] == 1
        assert (await _send(alice, other_room["id"], other_room_cid, "elsewhere"))["ok"]
        async with _insert_fail_point(node, times=1, blockConnection=True, blockTimeMS=HOLD_MS):
            acks = await asyncio.gather(
                _send(bob, room["id"], new_client_id(), "holds the room's insert"),
                _send(bob, room["id"], new_client_id(), "b1"),
                _send(alice, room["id"], stored_cid, "already stored"),  # clashes in the database
                _send(carol, room["id"], new_client_id(), "c1"),
                _send(alice, room["id"], other_room_cid, "reused"),  # conflict: another room
                _send(carol, room["id"], new_client_id(), "c2"))
        holder, b1, retry, c1, reused, c2 = acks
        assert retry["ok"] and retry["duplicate"] and retry["message"] == earlier["message"]
        assert not reused["ok"] and reused["error"]["code"] == "conflict", reused
        new = [holder, b1, c1, c2]
        assert all(a["ok"] and not a.get("duplicate") for a in new), new
        assert sorted(a["message"]["seq"] for a in new) == [2, 3, 4, 5]
        stored = await _sync_all(bob, room["id"])
        assert [m["seq"] for m in stored] == [1, 2, 3, 4, 5]
        assert _largest_batch_seen(node) > 0
    finally:
        for s in (alice, bob, carol):
            await s.close()


async def test_a_database_error_fails_exactly_that_batch_and_the_node_keeps_serving(make_client):
    node = await make_client()
    base = _base(node)
    users, room = await _group(base, 3)
    sockets = await _sockets([base], users)
    bob = sockets[1]
    try:
        assert (await _send(bob, room["id"], new_client_id(), "before"))["ok"]
        cids = [new_client_id() for _ in sockets for _ in range(3)]
        async with _insert_fail_point(node, times=2, blockConnection=True, blockTimeMS=HOLD_MS,
                                      errorCode=8):
            failed = await asyncio.gather(*(
                _send(sockets[i % len(sockets)], room["id"], cid, f"m{i}")
                for i, cid in enumerate(cids)))
        for ack in failed:
            assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
            assert "client_id" in ack["error"]["message"]
        assert [m["seq"] for m in await _sync_all(bob, room["id"])] == [1]
        failures = node.app[REALTIME_METRICS].message_batches_failed
        assert [s.value for m in failures.collect() for s in m.samples
                if s.name.endswith("_total")] >= [1]

        retried = await asyncio.gather(*(
            _send(sockets[i % len(sockets)], room["id"], cid, f"m{i}")
            for i, cid in enumerate(cids)))
        assert all(a["ok"] and not a.get("duplicate") for a in retried), retried
        assert sorted(a["message"]["seq"] for a in retried) == list(range(2, len(cids) + 2))
        assert [m["seq"] for m in await _sync_all(bob, room["id"])] == list(range(1, len(cids) + 2))
    finally:
        for s in sockets:
            await s.close()


@pytest.mark.parametrize("max_batch", [1, 4])
async def test_a_batch_holds_at_most_message_batch_max_sends(make_client, max_batch):
    node = await make_client(message_batch_max=max_batch)
    base = _base(node)
    users, room = await _group(base, 2)
    alice, bob = await _sockets([base], users)
    try:
        async with _insert_fail_point(node, times=1, blockConnection=True, blockTimeMS=HOLD_MS):
            acks = await asyncio.gather(*(_send(alice if i % 2 else bob, room["id"],
                                                new_client_id(), f"m{i}") for i in range(10)))
        assert sorted(a["message"]["seq"] for a in acks) == list(range(1, 11))
        histogram = node.app[REALTIME_METRICS].message_batch_size
        buckets = {s.labels["le"]: s.value for metric in histogram.collect()
                   for s in metric.samples if s.name.endswith("_bucket")}
        assert buckets[str(float(max_batch))] == buckets["+Inf"]  # none larger
        assert (max_batch == 1) == (buckets["1.0"] == buckets["+Inf"])
    finally:
        await alice.close()
        await bob.close()


async def test_a_database_error_after_part_of_a_batch_was_stored_keeps_that_part_acked(make_client):
    """Three sends started in one tick form one batch (the room is cached,
    nothing before the queue waits). The first is stored; the second reuses
    a stored client_id, and the lookup of that earlier message fails: the
    first stays acked, the other two fail, and nothing leaves a gap."""
    from server.errors import Unavailable
    from server.keys import CHAT

    node = await make_client()
    base = _base(node)
    users, room = await _group(base, 2)
    alice, bob = users[0]["id"], users[1]["id"]
    chat = node.app[CHAT]
    used = new_client_id()
    first = await chat.send(alice, room["id"], used, "stored before")
    assert first.message["seq"] == 1
    admin = node.app[DB].client.admin
    await admin.command({"configureFailPoint": "failCommand", "mode": {"times": 1},
                         "data": {"failCommands": ["find"], "errorCode": 8}})
    try:
        stored, reused, after = await asyncio.gather(
            chat.send(bob, room["id"], new_client_id(), "stored in the batch"),
            chat.send(alice, room["id"], used, "stored before"),
            chat.send(bob, room["id"], later := new_client_id(), "after the failure"),
            return_exceptions=True)
    finally:
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert not isinstance(stored, BaseException) and stored.message["seq"] == 2
    assert isinstance(reused, Unavailable) and isinstance(after, Unavailable)
    again = await chat.send(bob, room["id"], later, "after the failure")
    assert again.created and again.message["seq"] == 3
    retried = await chat.send(alice, room["id"], used, "stored before")
    assert not retried.created
    assert message_view(retried.message) == message_view(first.message)


async def test_a_retry_on_another_node_while_the_first_send_is_held_is_stored_once(
        make_client, redis_url):
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    users, room = await _group(_base(node_a), 2)
    on_a = await SocketUser(_base(node_a), users[0]["access_token"], name="alice@a").connect()
    on_b = await SocketUser(_base(node_b), users[0]["access_token"], name="alice@b").connect()
    cid = new_client_id()
    try:
        async with _insert_fail_point(node_a, times=1, blockConnection=True, blockTimeMS=HOLD_MS):
            held = asyncio.create_task(_send(on_a, room["id"], cid, "hello"))
            await asyncio.sleep(0.1)  # let it reach the database first (either order is correct)
            retry = await _send(on_b, room["id"], cid, "hello")
            first = await held
        assert first["ok"] and retry["ok"], (first, retry)
        assert first["message"] == retry["message"]
        assert sorted([first["duplicate"], retry["duplicate"]]) == [False, True]
        assert [m["seq"] for m in await _sync_all(on_a, room["id"])] == [1]
        third = await _send(on_b, room["id"], new_client_id(), "next")
        assert third["message"]["seq"] == 2
    finally:
        await on_a.close()
        await on_b.close()


async def test_a_batch_reaches_every_member_socket_once_in_seq_order(make_client):
    """The messages of one batch go out as one step (each websocket member's
    frames in one write): websocket, polling and official JS client members
    each get every message once, in seq order, and the delivery count is
    one per message per member socket."""
    import json

    from tests.realtime.test_fanout import _js_receiver

    node = await make_client(socket_ping_interval=1.0, socket_ping_timeout=5.0)
    base = _base(node)
    users, room = await _group(base, 4)
    senders = await _sockets([base], users[:3])
    polling = await SocketUser(base, users[3]["access_token"], name="polling",
                               transports=["polling"]).connect()
    per_user = 6
    total = per_user * len(senders)
    js = await _js_receiver(base, users[3]["access_token"], total, "websocket")
    before = _message_deliveries(node)
    try:
        async with _insert_fail_point(node, times=1, blockConnection=True, blockTimeMS=HOLD_MS):
            acks = await asyncio.gather(*(
                _send(s, room["id"], new_client_id(), f"{s.name} #{k}")
                for k in range(per_user) for s in senders))
        assert all(a["ok"] for a in acks), acks
        assert _largest_batch_seen(node) > 0
        in_seq_order = [a["message"]["id"] for a in sorted(acks, key=lambda a: a["message"]["seq"])]
        for s in [*senders, polling]:
            for m in in_seq_order:
                await s.wait_for("message", lambda e, m=m: e["id"] == m, timeout=15)
            assert [e["id"] for e in s.received("message")] == in_seq_order, s.name
        out, err = await asyncio.wait_for(js.communicate(), 60)
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert "error" not in result, (result, err.decode()[-2000:])
        by_id = {a["message"]["id"]: a["message"]["body"] for a in acks}
        assert result["bodies"] == [by_id[i] for i in in_seq_order]
        # 3 senders + the polling socket + the JS client, one delivery each per message
        assert _message_deliveries(node) - before == total * 5
    finally:
        if js.returncode is None:
            js.kill()
            await js.wait()
        for s in [*senders, polling]:
            await s.close()


async def _message_inserts(url: str) -> float:
    """``insert`` commands this node has sent to the messages collection (a
    seq clash is an insert the database answers with a duplicate key)."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return sample(text, "skillshare_db_commands_total", collection="messages",
                  command="insert", outcome="ok")


async def test_a_reply_on_another_node_takes_the_next_seq_with_one_insert(make_client, redis_url):
    """The two people of a 1:1 room on two nodes, taking turns: each node
    learns the room's newest seq from the message it delivers, so a reply
    is stored at the next seq at once instead of first clashing with the
    seq the other node took."""
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    base_a, base_b = _base(node_a), _base(node_b)
    ada, bob = await register_user(base_a, "ada"), await register_user(base_a, "bob")
    room = await open_direct(base_a, ada["access_token"], bob["id"])
    a = await SocketUser(base_a, ada["access_token"], name="ada").connect()
    b = await SocketUser(base_b, bob["access_token"], name="bob").connect()
    try:
        turns = [(a, b, base_a), (b, a, base_b)] * 3
        for seq, (sender, receiver, base) in enumerate(turns, start=1):
            before = await _message_inserts(base)
            ack = await _send(sender, room["id"], new_client_id(), f"turn {seq}")
            assert ack["ok"] and ack["message"]["seq"] == seq, ack
            assert await _message_inserts(base) - before == 1, f"turn {seq}: one insert"
            await receiver.wait_for("message", lambda e, seq=seq: e["seq"] == seq)
        stored = await _sync_all(a, room["id"])
        assert [m["seq"] for m in stored] == list(range(1, len(turns) + 1))
    finally:
        await a.close()
        await b.close()
