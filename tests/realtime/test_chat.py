"""One node, in process: chat, rooms, read markers, typing and the REST
history, with real python-socketio clients."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from server.clock import FrozenClock

from tests.support.realtime import (
    SocketUser,
    http_json,
    new_client_id,
    open_direct,
    open_group,
    register_user,
)


@pytest.fixture
async def node(make_client):
    client = await make_client(typing_interval=0.2)
    base = str(client.make_url("")).rstrip("/")
    return base


async def test_direct_chat_is_ordered_durable_and_idempotent(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    again = await open_direct(node, bob["access_token"], alice["id"])
    assert again["id"] == room["id"]

    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    a2 = await SocketUser(node, alice["access_token"], name="alice-2").connect()
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        joined = await b.call("room:join", {"room_id": room["id"]})
        assert joined["ok"] and joined["last_seq"] == 0 and joined["room"]["id"] == room["id"]

        cid = new_client_id()
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": cid,
                                            "body": "  hello bob \r\n"})
        assert ack["ok"], ack
        msg = ack["message"]
        assert (msg["seq"], msg["body"], msg["sender_id"]) == (1, "hello bob", alice["id"])
        await b.wait_for("message", lambda m: m["id"] == msg["id"])
        await a2.wait_for("message", lambda m: m["id"] == msg["id"])  # sender's other socket

        retry = await a.call("message:send", {"room_id": room["id"], "client_id": cid,
                                              "body": "hello bob"})
        assert retry["ok"] and retry["message"]["id"] == msg["id"] and retry["message"]["seq"] == 1
        second = await b.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                               "body": "hi alice"})
        assert second["message"]["seq"] == 2
        await a.wait_for("message", lambda m: m["seq"] == 2)
        assert len(b.received("message", lambda m: m["id"] == msg["id"])) == 1  # not re-broadcast

        synced = await b.call("room:sync", {"room_id": room["id"], "after_seq": 0})
        assert [m["seq"] for m in synced["messages"]] == [1, 2] and not synced["has_more"]
        paged = await b.call("room:sync", {"room_id": room["id"], "after_seq": 0, "limit": 1})
        assert [m["seq"] for m in paged["messages"]] == [1] and paged["has_more"]

        status, page = await http_json("GET", f"{node}/api/v1/rooms/{room['id']}/messages",
                                        token=bob["access_token"])
        assert status == 200 and [m["seq"] for m in page["items"]] == [1, 2]
        status, older = await http_json(
            "GET", f"{node}/api/v1/rooms/{room['id']}/messages?before_seq=2&limit=5",
            token=bob["access_token"])
        assert [m["seq"] for m in older["items"]] == [1] and not older["has_more"]

        status, rooms = await http_json("GET", f"{node}/api/v1/rooms", token=bob["access_token"])
        mine = rooms["items"][0]
        assert mine["unread_count"] == 1 and mine["last_message"]["seq"] == 2

        read = await b.call("message:read", {"room_id": room["id"], "seq": 2})
        assert read["ok"]
        await a.wait_for("read", lambda r: r["user_id"] == bob["id"] and r["seq"] == 2)
        status, rooms = await http_json("GET", f"{node}/api/v1/rooms", token=bob["access_token"])
        assert rooms["items"][0]["unread_count"] == 0

        assert (await b.call("typing", {"room_id": room["id"], "typing": True}))["ok"]
        await a.wait_for("typing", lambda t: t["user_id"] == bob["id"] and t["typing"])
        assert not b.received("typing")
    finally:
        for s in (a, a2, b):
            await s.close()


async def test_non_members_are_refused(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    eve = await register_user(node, "eve")
    room = await open_direct(node, alice["access_token"], bob["id"])
    e = await SocketUser(node, eve["access_token"]).connect()
    try:
        for event, payload in [
            ("room:join", {"room_id": room["id"]}),
            ("room:sync", {"room_id": room["id"], "after_seq": 0}),
            ("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "x"}),
            ("message:read", {"room_id": room["id"], "seq": 1}),
            ("typing", {"room_id": room["id"], "typing": True}),
        ]:
            ack = await e.call(event, payload)
            assert ack == {"ok": False, "error": {"code": "forbidden", "message": ack["error"]["message"]}}, ack
        missing = await e.call("room:join", {"room_id": "0" * 24})
        assert missing["error"]["code"] == "not_found"
    finally:
        await e.close()
    status, _ = await http_json("GET", f"{node}/api/v1/rooms/{room['id']}/messages",
                                token=eve["access_token"])
    assert status == 403


async def test_sync_from_a_huge_seq_is_a_validation_error_not_internal(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    a = await SocketUser(node, alice["access_token"]).connect()
    try:
        sent = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "hi"})
        assert sent["ok"], sent
        for after_seq in (2**63 - 1, 2**63, 2**64):
            ack = await a.call("room:sync", {"room_id": room["id"], "after_seq": after_seq})
            assert ack["ok"] is False and ack["error"]["code"] == "validation_error", (after_seq, ack)
        synced = await a.call("room:sync", {"room_id": room["id"], "after_seq": 9_999_999_999})
        assert synced == {"ok": True, "messages": [], "has_more": False}
        assert a.sio.connected
    finally:
        await a.close()


async def test_history_pages_like_every_list_default_20_and_next_cursor(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    a = await SocketUser(node, alice["access_token"]).connect()
    try:
        for i in range(45):
            ack = await a.call("message:send", {"room_id": room["id"],
                                                "client_id": new_client_id(), "body": f"m{i}"})
            assert ack["ok"], ack
    finally:
        await a.close()
    url = f"{node}/api/v1/rooms/{room['id']}/messages"

    async def walk(first_query: str) -> list[list[int]]:
        pages, query = [], first_query
        while True:
            status, page = await http_json("GET", f"{url}?{query}", token=bob["access_token"])
            assert status == 200, page
            pages.append([m["seq"] for m in page["items"]])
            assert page["has_more"] == (page["next_cursor"] is not None)
            if page["next_cursor"] is None:
                return pages
            query = f"cursor={page['next_cursor']}"

    older = await walk("")
    assert [len(p) for p in older] == [20, 20, 5]
    assert sorted(s for p in older for s in p) == list(range(1, 46))
    newer = await walk("after_seq=3&limit=15")
    assert [s for p in newer for s in p] == list(range(4, 46))
    between = await walk("after_seq=10&before_seq=30&limit=8")
    assert [s for p in between for s in p] == list(range(11, 30))
    status, bad = await http_json("GET", f"{url}?cursor=eyJ4IjoxfQ", token=bob["access_token"])
    assert status == 400 and bad["error"]["details"][0]["field"] == "cursor"


async def test_a_stale_read_never_moves_the_marker_back_for_anyone(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        for i in range(3):
            await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                          "body": f"m{i}"})
        assert (await b.call("message:read", {"room_id": room["id"], "seq": 3}))["seq"] == 3
        late = await b.call("message:read", {"room_id": room["id"], "seq": 1})  # another device
        assert late == {"ok": True, "seq": 3}
        await a.wait_for("read", lambda r: r["seq"] == 3)
        await asyncio.sleep(0.2)
        assert [r["seq"] for r in a.received("read")] == [3, 3]
    finally:
        await a.close()
        await b.close()


async def _send(sock: SocketUser, room_id: str, count: int) -> None:
    for _ in range(count):
        ack = await sock.call("message:send", {"room_id": room_id,
                                               "client_id": new_client_id(), "body": "hi"})
        assert ack["ok"], ack


async def test_room_summaries_stay_right_when_another_node_moves_a_room_on(make_client,
                                                                           redis_url):
    """``GET /rooms`` reads the ends of the rooms it knows in one batch and
    asks the others alone: summaries stay exact when messages are sent
    through another node (this node's known end goes stale) and for rooms
    it has never seen or that are empty."""
    one, two = (await make_client(redis_url=redis_url), await make_client(redis_url=redis_url))
    url_one = str(one.make_url("")).rstrip("/")
    url_two = str(two.make_url("")).rstrip("/")
    alice, bob = await register_user(url_one, "alice"), await register_user(url_one, "bob")
    carol = await register_user(url_one, "carol")
    busy = await open_direct(url_one, alice["access_token"], bob["id"])
    quiet = await open_direct(url_one, carol["access_token"], bob["id"])
    a = await SocketUser(url_one, alice["access_token"], name="alice").connect()

    async def summaries(url):
        status, rooms = await http_json("GET", f"{url}/api/v1/rooms", token=bob["access_token"])
        assert status == 200
        return {r["id"]: (r["last_seq"], r["unread_count"],
                          r["last_message"]["seq"] if r["last_message"] else None)
                for r in rooms["items"]}

    try:
        await _send(a, busy["id"], 2)
        for url in (url_two, url_two, url_one):  # never seen, then known, then the sender's
            assert await summaries(url) == {busy["id"]: (2, 2, 2), quiet["id"]: (0, 0, None)}
        await _send(a, busy["id"], 3)  # node two's known end (2) is stale now
        for url in (url_two, url_two, url_one):
            assert await summaries(url) == {busy["id"]: (5, 5, 5), quiet["id"]: (0, 0, None)}
    finally:
        await a.close()


async def test_typing_is_throttled_on_the_injected_clock(make_client):
    clock = FrozenClock()
    client = await make_client(clock=clock, typing_interval=5)
    base = str(client.make_url("")).rstrip("/")
    alice, bob = await register_user(base, "alice"), await register_user(base, "bob")
    room = await open_direct(base, alice["access_token"], bob["id"])
    a = await SocketUser(base, alice["access_token"], name="alice").connect()
    try:
        typing = {"room_id": room["id"], "typing": True}
        assert (await a.call("typing", typing))["relayed"]
        assert not (await a.call("typing", typing))["relayed"]
        clock.advance(4)
        assert not (await a.call("typing", typing))["relayed"]
        clock.advance(1)
        assert (await a.call("typing", typing))["relayed"]
    finally:
        await a.close()


async def _message_reads(url: str) -> float:
    """``find`` commands this node has sent to the messages collection."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    line = ('skillshare_db_commands_total{collection="messages",command="find",'
            'outcome="ok"} ')
    return sum(float(row[len(line):]) for row in text.splitlines() if row.startswith(line))


async def test_a_page_of_rooms_is_summarised_in_one_read_of_its_messages(node):
    """Each room's last message and the caller's unread count (messages from
    others after their read marker) come from one read of the messages
    collection for the whole page; only a room with more unread than are
    read along (20) is counted on its own."""
    bob = await register_user(node, "bob")
    senders = [await register_user(node, name) for name in ("alice", "carol", "dan", "eve")]
    rooms = [await open_direct(node, s["access_token"], bob["id"]) for s in senders]
    sockets = [await SocketUser(node, s["access_token"], name=s["email"]).connect()
               for s in senders]
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        for sock, room, count in zip(sockets, rooms, (1, 3, 4, 25), strict=True):
            for _ in range(count):
                ack = await sock.call("message:send", {"room_id": room["id"],
                                                       "client_id": new_client_id(), "body": "hi"})
                assert ack["ok"], ack
        assert (await b.call("message:read", {"room_id": rooms[2]["id"], "seq": 2}))["ok"]
        ack = await b.call("message:send", {"room_id": rooms[1]["id"],
                                            "client_id": new_client_id(), "body": "hello"})
        assert ack["ok"], ack

        async def summaries():
            status, page = await http_json("GET", f"{node}/api/v1/rooms",
                                           token=bob["access_token"])
            assert status == 200
            return {r["id"]: (r["last_seq"], r["read_seq"], r["unread_count"],
                              r["last_message"]["seq"]) for r in page["items"]}

        before = await _message_reads(node)
        assert await summaries() == {
            rooms[0]["id"]: (1, 0, 1, 1), rooms[1]["id"]: (4, 0, 3, 4),
            rooms[2]["id"]: (4, 2, 2, 4), rooms[3]["id"]: (25, 0, 25, 25)}
        assert await _message_reads(node) - before == 2  # the page's, and the room of 25
    finally:
        for sock in (*sockets, b):
            await sock.close()


async def test_a_room_read_to_its_end_is_summarised_without_searching_for_it(make_client,
                                                                            redis_url):
    """A node that never saw a room takes the caller's read marker as its
    likely end: a room read to the end is confirmed in the page's one read;
    one with newer messages is searched from the marker. Summaries stay
    exact either way."""
    one, two = (await make_client(redis_url=redis_url), await make_client(redis_url=redis_url))
    url_one = str(one.make_url("")).rstrip("/")
    url_two = str(two.make_url("")).rstrip("/")
    alice, bob = await register_user(url_one, "alice"), await register_user(url_one, "bob")
    room = await open_direct(url_one, alice["access_token"], bob["id"])
    a = await SocketUser(url_one, alice["access_token"], name="alice").connect()
    b = await SocketUser(url_one, bob["access_token"], name="bob").connect()

    async def summary(url):
        status, page = await http_json("GET", f"{url}/api/v1/rooms", token=bob["access_token"])
        assert status == 200
        (item,) = page["items"]
        return item["last_seq"], item["read_seq"], item["unread_count"], \
            item["last_message"]["seq"]

    try:
        await _send(a, room["id"], 3)
        assert (await b.call("message:read", {"room_id": room["id"], "seq": 3}))["ok"]
        before = await _message_reads(url_two)
        assert await summary(url_two) == (3, 3, 0, 3)
        assert await _message_reads(url_two) - before == 1
        await _send(a, room["id"], 2)
        assert await summary(url_two) == (5, 3, 2, 5)
        assert await summary(url_one) == (5, 3, 2, 5)
    finally:
        await a.close()
        await b.close()


async def test_my_room_page_is_cached_and_membership_changes_show_on_every_node(make_client,
                                                                              redis_url):
    """The rooms of a first page of GET /rooms come from the read cache; a
    room opened, a group created, people added and a member leaving on one
    node show on the other at once, and so do new messages (read live)."""
    one = await make_client(redis_url=redis_url, read_cache_ttl=3600.0)
    two = await make_client(redis_url=redis_url, read_cache_ttl=3600.0)
    url_one = str(one.make_url("")).rstrip("/")
    url_two = str(two.make_url("")).rstrip("/")
    alice, bob = await register_user(url_one, "alice"), await register_user(url_one, "bob")
    carol = await register_user(url_one, "carol")

    async def rooms_of(user, url):
        status, page = await http_json("GET", f"{url}/api/v1/rooms", token=user["access_token"])
        assert status == 200
        return {r["id"]: (sorted(r["member_ids"]), r["last_seq"]) for r in page["items"]}

    async def until(user, url, expected):
        async def wait():
            while await rooms_of(user, url) != expected:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(wait(), timeout=20)

    async def hits(url):
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
            text = await resp.text()
        line = 'skillshare_read_cache_requests_total{namespace="rooms",result="hit"} '
        return sum(float(r[len(line):]) for r in text.splitlines() if r.startswith(line))

    for url in (url_two, url_two, url_one):
        assert await rooms_of(bob, url) == {}
    assert await hits(url_two) >= 1

    direct = await open_direct(url_one, alice["access_token"], bob["id"])
    pair = sorted([alice["id"], bob["id"]])
    for url in (url_two, url_one):
        await until(bob, url, {direct["id"]: (pair, 0)})

    a = await SocketUser(url_one, alice["access_token"], name="alice").connect()
    try:
        ack = await a.call("message:send", {"room_id": direct["id"],
                                            "client_id": new_client_id(), "body": "hi"})
        assert ack["ok"], ack
    finally:
        await a.close()
    await until(bob, url_two, {direct["id"]: (pair, 1)})

    group = await open_group(url_one, alice, [bob])
    trio = sorted([alice["id"], bob["id"], carol["id"]])
    await until(bob, url_two, {direct["id"]: (pair, 1), group["id"]: (pair, 0)})
    await open_direct(url_one, carol["access_token"], alice["id"])  # a relation with alice
    status, _ = await http_json("POST", f"{url_one}/api/v1/rooms/{group['id']}/members",
                                token=alice["access_token"], json={"user_ids": [carol["id"]]})
    assert status == 200
    await until(bob, url_two, {direct["id"]: (pair, 1), group["id"]: (trio, 0)})
    await until(carol, url_two, {group["id"]: (trio, 0),
                                 **{k: v for k, v in (await rooms_of(carol, url_one)).items()
                                    if k != group["id"]}})
    status, _ = await http_json("POST", f"{url_one}/api/v1/rooms/{group['id']}/leave",
                                token=bob["access_token"])
    assert status in (200, 204)
    await until(bob, url_two, {direct["id"]: (pair, 1)})
    await until(alice, url_two, {direct["id"]: (pair, 1),
                                 group["id"]: (sorted([alice["id"], carol["id"]]), 0),
                                 **{k: v for k, v in (await rooms_of(alice, url_one)).items()
                                    if k not in (direct["id"], group["id"])}})
