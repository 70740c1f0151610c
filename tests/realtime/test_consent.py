"""Consent (issue 8, item 10), one node, real Socket.IO clients and the REST
API: presence only for contacts unless made public, blocking, leaving group
rooms, and adding people to groups only with a relation."""

from __future__ import annotations

import asyncio
from datetime import datetime, UTC
from typing import Any

import aiohttp
import pytest

from server.keys import BUS, DB
from tests.support.metrics import sample
from tests.support.realtime import (
    SocketUser,
    http_json,
    new_client_id,
    open_direct,
    register_user,
)


@pytest.fixture
async def node(make_client):
    client = await make_client()
    return str(client.make_url("")).rstrip("/")


async def befriend(node: str, a: dict, b: dict) -> dict:
    """Both open their direct room: each has consented to the other."""
    room = await open_direct(node, a["access_token"], b["id"])
    await open_direct(node, b["access_token"], a["id"])
    return room


async def barrier(watcher: SocketUser) -> None:
    """A round trip on the watcher's socket: whatever the server emitted to
    it before is received before this ack."""
    assert (await watcher.call("presence:subscribe", {"user_ids": []}))["ok"]


def presence_of(sock: SocketUser, user_id: str) -> list[dict[str, Any]]:
    return sock.received("presence", lambda p: p["user_id"] == user_id)


async def test_stranger_gets_no_presence_but_a_contact_does(node):
    alice, bob, carol = [await register_user(node, n) for n in ("alice", "bob", "carol")]
    await befriend(node, carol, bob)
    stranger = await SocketUser(node, alice["access_token"], name="alice").connect()
    contact = await SocketUser(node, carol["access_token"], name="carol").connect()
    b = None
    try:
        ack = await stranger.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["ok"] and bob["id"] not in ack["presence"], ack
        assert ack["hidden"] == [bob["id"]]
        ack = await contact.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["presence"][bob["id"]]["status"] == "offline"

        b = await SocketUser(node, bob["access_token"], name="bob").connect()
        await contact.wait_for("presence", lambda p: p["user_id"] == bob["id"]
                               and p["status"] == "online")
        assert (await b.call("presence:set", {"status": "dnd"}))["ok"]
        await contact.wait_for("presence", lambda p: p["status"] == "dnd")
        await b.close()
        offline = await contact.wait_for("presence", lambda p: p["status"] == "offline")
        assert offline["last_seen"]
        await barrier(stranger)
        assert presence_of(stranger, bob["id"]) == []
    finally:
        for s in (stranger, contact, b):
            if s is not None:
                await s.close()


async def test_opening_a_direct_room_does_not_reveal_the_other_persons_presence(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    await open_direct(node, alice["access_token"], bob["id"])  # bob did not consent
    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        ack = await a.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["hidden"] == [bob["id"]]
        ack = await b.call("presence:subscribe", {"user_ids": [alice["id"]]})
        assert ack["presence"][alice["id"]]["status"] == "online"  # alice opened it
        # Once bob answers in the room, alice sees him (without re-subscribing).
        room = await open_direct(node, bob["access_token"], alice["id"])
        assert (await b.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                              "body": "hi"}))["ok"]
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"]
                         and p["status"] == "online")
    finally:
        await a.close()
        await b.close()


async def test_public_presence_is_visible_to_anyone_until_made_private(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    status, me = await http_json("GET", f"{node}/api/v1/users/me", token=bob["access_token"])
    assert me["presence_visibility"] == "contacts"
    status, export = await http_json("GET", f"{node}/api/v1/users/me/export",
                                     token=bob["access_token"])
    assert export["account"]["presence_visibility"] == "contacts"
    status, me = await http_json("PATCH", f"{node}/api/v1/users/me", token=bob["access_token"],
                                 json={"presence_visibility": "public"})
    assert status == 200 and me["presence_visibility"] == "public", me
    status, export = await http_json("GET", f"{node}/api/v1/users/me/export",
                                     token=bob["access_token"])
    assert export["account"]["presence_visibility"] == "public"
    status, bad = await http_json("PATCH", f"{node}/api/v1/users/me", token=bob["access_token"],
                                  json={"presence_visibility": "friends"})
    assert status == 400 and bad["error"]["code"] == "validation_error"

    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        ack = await a.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["presence"][bob["id"]]["status"] == "online" and ack["hidden"] == []
        assert (await b.call("presence:set", {"status": "away"}))["ok"]
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "away")

        status, me = await http_json("PATCH", f"{node}/api/v1/users/me",
                                     token=bob["access_token"],
                                     json={"presence_visibility": "contacts"})
        assert me["presence_visibility"] == "contacts"
        assert (await b.call("presence:set", {"status": "dnd"}))["ok"]
        await barrier(a)
        assert [p["status"] for p in presence_of(a, bob["id"])] == ["away"]
        ack = await a.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["hidden"] == [bob["id"]]
    finally:
        await a.close()
        await b.close()


async def test_public_profile_has_no_presence(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    status, profile = await http_json("GET", f"{node}/api/v1/users/{bob['id']}",
                                      token=alice["access_token"])
    assert status == 200
    assert not {"last_seen", "presence", "status", "presence_visibility"} & set(profile)


async def test_blocked_user_cannot_message_call_request_or_see_presence(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await befriend(node, alice, bob)
    status, listing = await http_json("POST", f"{node}/api/v1/skills", token=bob["access_token"],
                                      json={"title": "Guitar", "description": "Chords.",
                                            "category": "music", "tags": [], "level": "beginner",
                                            "mode": "online"})
    assert status == 201, listing
    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        ack = await a.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["presence"][bob["id"]]["status"] == "online"
        assert (await b.call("presence:subscribe", {"user_ids": [alice["id"]]}))["presence"]

        status, blocked = await http_json("POST", f"{node}/api/v1/users/{alice['id']}/block",
                                          token=bob["access_token"])
        assert status == 200 and blocked["user_id"] == alice["id"], blocked
        status, again = await http_json("POST", f"{node}/api/v1/users/{alice['id']}/block",
                                        token=bob["access_token"])
        assert status == 200 and again == blocked  # idempotent: the same block

        send = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "hello?"})
        assert send["ok"] is False and send["error"]["code"] == "blocked", send
        reply = await b.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                              "body": "no"})
        assert reply["error"]["code"] == "blocked"  # a blocked direct room is closed both ways
        call = await a.call("call:invite", {"user_id": bob["id"], "media": {"audio": True,
                                                                            "video": False}})
        assert call["error"]["code"] == "blocked", call
        status, err = await http_json("POST", f"{node}/api/v1/skills/{listing['id']}/requests",
                                      token=alice["access_token"], json={"message": "please"})
        assert status == 403 and err["error"]["code"] == "blocked", err
        status, err = await http_json("POST", f"{node}/api/v1/rooms", token=alice["access_token"],
                                      json={"type": "direct", "user_id": bob["id"]})
        assert status == 403 and err["error"]["code"] == "blocked"
        status, err = await http_json("POST", f"{node}/api/v1/rooms", token=alice["access_token"],
                                      json={"type": "group", "name": "g", "member_ids": [bob["id"]]})
        assert status == 403 and err["error"]["code"] == "blocked"

        # Neither sees the other's presence any more, even already subscribed.
        assert (await b.call("presence:set", {"status": "dnd"}))["ok"]
        assert (await a.call("presence:set", {"status": "away"}))["ok"]
        await barrier(a)
        await barrier(b)
        assert [p for p in presence_of(a, bob["id"]) if p["status"] == "dnd"] == []
        assert [p for p in presence_of(b, alice["id"]) if p["status"] == "away"] == []
        assert (await a.call("presence:subscribe", {"user_ids": [bob["id"]]}))["hidden"] == [bob["id"]]
        assert (await b.call("presence:subscribe", {"user_ids": [alice["id"]]}))["hidden"] == [alice["id"]]

        status, blocks = await http_json("GET", f"{node}/api/v1/users/me/blocks",
                                         token=bob["access_token"])
        assert status == 200 and [x["user_id"] for x in blocks["items"]] == [alice["id"]]
        assert blocks["next_cursor"] is None

        status, _ = await http_json("DELETE", f"{node}/api/v1/users/{alice['id']}/block",
                                    token=bob["access_token"])
        assert status == 204
        send = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "hello again"})
        assert send["ok"], send
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "dnd")
    finally:
        await a.close()
        await b.close()


async def test_block_refusals_and_limit(make_client):
    client = await make_client(max_blocks_per_user=2)
    node = str(client.make_url("")).rstrip("/")
    me, *others = [await register_user(node, f"u{i}") for i in range(4)]
    url = f"{node}/api/v1/users"
    status, err = await http_json("POST", f"{url}/{me['id']}/block", token=me["access_token"])
    assert status == 400 and err["error"]["code"] == "validation_error"
    status, err = await http_json("POST", f"{url}/{'0' * 24}/block", token=me["access_token"])
    assert status == 404 and err["error"]["code"] == "not_found"
    status, err = await http_json("POST", f"{url}/{others[0]['id']}/block")
    assert status == 401
    for other in others[:2]:
        status, _ = await http_json("POST", f"{url}/{other['id']}/block", token=me["access_token"])
        assert status == 200
    status, err = await http_json("POST", f"{url}/{others[2]['id']}/block",
                                  token=me["access_token"])
    assert status == 409 and err["error"]["code"] == "block_limit_reached", err
    audit = await client.app[DB]["audit_log"].find({"action": "user.block"}).to_list(None)
    assert sorted(a["target"] for a in audit if a["actor_id"] == me["id"]) == sorted(
        o["id"] for o in others[:2])
    status, page = await http_json("GET", f"{url}/me/blocks?limit=1", token=me["access_token"])
    assert len(page["items"]) == 1 and page["next_cursor"]
    status, rest = await http_json("GET", f"{url}/me/blocks?limit=1&cursor={page['next_cursor']}",
                                   token=me["access_token"])
    seen = {x["user_id"] for x in page["items"] + rest["items"]}
    assert seen == {others[0]["id"], others[1]["id"]}
    status, export = await http_json("GET", f"{url}/me/export", token=me["access_token"])
    assert {b["user_id"] for b in export["blocks"]} == seen


async def test_groups_need_a_relation_and_members_can_leave(node):
    alice, bob, carol, dave = [await register_user(node, n)
                               for n in ("alice", "bob", "carol", "dave")]
    await befriend(node, alice, bob)
    await befriend(node, alice, carol)
    status, err = await http_json("POST", f"{node}/api/v1/rooms", token=alice["access_token"],
                                  json={"type": "group", "name": "g",
                                        "member_ids": [bob["id"], dave["id"]]})
    assert status == 403 and err["error"]["code"] == "not_a_contact", err
    assert err["error"]["details"] == {"user_ids": [dave["id"]]}
    status, room = await http_json("POST", f"{node}/api/v1/rooms", token=alice["access_token"],
                                   json={"type": "group", "name": "g",
                                         "member_ids": [bob["id"], carol["id"]]})
    assert status == 201, room

    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    c = await SocketUser(node, carol["access_token"], name="carol").connect()
    try:
        first = await c.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                              "body": "before"})
        await b.wait_for("message", lambda m: m["id"] == first["message"]["id"])
        # bob and carol know each other only through the group.
        ack = await c.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["presence"][bob["id"]]["status"] == "online", ack

        status, _ = await http_json("POST", f"{node}/api/v1/rooms/{room['id']}/leave",
                                    token=bob["access_token"])
        assert status == 204
        left = await a.wait_for("room:member_left", lambda e: e["room_id"] == room["id"])
        assert left["user_id"] == bob["id"]
        await c.wait_for("room:member_left", lambda e: e["user_id"] == bob["id"])

        after = await c.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                              "body": "after"})
        await a.wait_for("message", lambda m: m["id"] == after["message"]["id"])
        await barrier(b)
        assert [m["body"] for m in b.received("message")] == ["before"]
        assert (await b.call("presence:set", {"status": "away"}))["ok"]
        await barrier(c)
        assert c.received("presence", lambda p: p["status"] == "away") == []
        ack = await c.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["hidden"] == [bob["id"]]

        status, err = await http_json("GET", f"{node}/api/v1/rooms/{room['id']}/messages",
                                      token=bob["access_token"])
        assert status == 403 and err["error"]["code"] == "forbidden"
        synced = await b.call("room:sync", {"room_id": room["id"], "after_seq": 0})
        assert synced["ok"] is False and synced["error"]["code"] == "forbidden"
        send = await b.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "still here?"})
        assert send["error"]["code"] == "forbidden"
        status, hist = await http_json("GET", f"{node}/api/v1/rooms/{room['id']}/messages",
                                       token=alice["access_token"])
        assert [m["body"] for m in hist["items"]] == ["before", "after"]
        status, rooms = await http_json("GET", f"{node}/api/v1/rooms", token=bob["access_token"])
        assert room["id"] not in [r["id"] for r in rooms["items"]]
        status, rooms = await http_json("GET", f"{node}/api/v1/rooms", token=alice["access_token"])
        mine = next(r for r in rooms["items"] if r["id"] == room["id"])
        assert bob["id"] not in mine["member_ids"]

        status, err = await http_json("POST", f"{node}/api/v1/rooms/{room['id']}/leave",
                                      token=bob["access_token"])
        assert status == 403 and err["error"]["code"] == "forbidden"
        direct = await open_direct(node, alice["access_token"], carol["id"])
        status, err = await http_json("POST", f"{node}/api/v1/rooms/{direct['id']}/leave",
                                      token=alice["access_token"])
        assert status == 400 and err["error"]["code"] == "bad_request", err
    finally:
        for s in (a, b, c):
            await s.close()


async def test_adding_members_to_a_group_needs_a_relation(node):
    alice, bob, carol, dave = [await register_user(node, n)
                               for n in ("alice", "bob", "carol", "dave")]
    await befriend(node, alice, bob)
    await befriend(node, bob, carol)
    status, room = await http_json("POST", f"{node}/api/v1/rooms", token=alice["access_token"],
                                   json={"type": "group", "name": "g", "member_ids": [bob["id"]]})
    assert status == 201, room
    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    try:
        status, err = await http_json("POST", f"{node}/api/v1/rooms/{room['id']}/members",
                                      token=alice["access_token"],
                                      json={"user_ids": [carol["id"]]})
        assert status == 403 and err["error"]["code"] == "not_a_contact"  # carol knows bob only
        status, err = await http_json("POST", f"{node}/api/v1/rooms/{room['id']}/members",
                                      token=dave["access_token"], json={"user_ids": [dave["id"]]})
        assert status == 403 and err["error"]["code"] == "forbidden"  # not a member
        status, updated = await http_json("POST", f"{node}/api/v1/rooms/{room['id']}/members",
                                          token=bob["access_token"],
                                          json={"user_ids": [carol["id"]]})
        assert status == 200 and carol["id"] in updated["member_ids"], updated
        added = await a.wait_for("room:member_added", lambda e: e["room_id"] == room["id"])
        assert added["user_ids"] == [carol["id"]] and added["by"] == bob["id"]
        status, hist = await http_json("GET", f"{node}/api/v1/rooms/{room['id']}/messages",
                                       token=carol["access_token"])
        assert status == 200
    finally:
        await a.close()


async def test_subscriptions_are_rechecked_when_the_bus_reconnects(make_client):
    """The bus is at-most-once: a node that missed ``consent_changed`` (cut
    off from Redis) re-checks every subscription when its bus is back."""
    client = await make_client()
    node = str(client.make_url("")).rstrip("/")
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    await befriend(node, alice, bob)
    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        assert (await a.call("presence:subscribe", {"user_ids": [bob["id"]]}))["presence"]
        # A block stored while this node heard nothing of it.
        await client.app[DB]["blocks"].insert_one({
            "_id": f"{bob['id']}:{alice['id']}", "seq_id": "0" * 24, "blocker_id": bob["id"],
            "blocked_id": alice["id"], "created_at": datetime.now(UTC)})
        assert (await b.call("presence:set", {"status": "away"}))["ok"]
        await a.wait_for("presence", lambda p: p["status"] == "away")  # not re-checked yet
        await client.app[BUS].reconnected()  # what the bus runs when it reconnects
        assert (await b.call("presence:set", {"status": "dnd"}))["ok"]
        await barrier(a)
        assert a.received("presence", lambda p: p["status"] == "dnd") == []
    finally:
        await a.close()
        await b.close()


async def test_the_block_limit_holds_under_concurrency(make_client):
    client = await make_client(max_blocks_per_user=3)
    node = str(client.make_url("")).rstrip("/")
    me, *others = [await register_user(node, f"c{i}") for i in range(11)]
    url = f"{node}/api/v1/users"

    async def block(user: dict) -> int:
        status, _ = await http_json("POST", f"{url}/{user['id']}/block", token=me["access_token"])
        return status

    statuses = await asyncio.gather(*(block(o) for o in others))
    assert sorted(statuses) == [200] * 3 + [409] * 7, statuses
    status, page = await http_json("GET", f"{url}/me/blocks", token=me["access_token"])
    assert len(page["items"]) == 3
    # Unblocking frees a unit; blocking the same person twice takes one.
    first = page["items"][0]["user_id"]
    status, _ = await http_json("DELETE", f"{url}/{first}/block", token=me["access_token"])
    assert status == 204
    spare = next(o for o in others if o["id"] not in {b["user_id"] for b in page["items"]})
    assert [await block(spare), await block(spare)] == [200, 200]
    assert await block(next(o for o in others if o["id"] == first)) == 409


async def _publish_listing(node: str, owner: dict, title: str) -> dict:
    status, listing = await http_json("POST", f"{node}/api/v1/skills", token=owner["access_token"],
                                      json={"title": title, "description": "Lessons.",
                                            "category": "design", "tags": [],
                                            "level": "beginner", "mode": "online"})
    assert status == 201, listing
    return listing


async def test_a_skill_request_relates_the_two_until_declined(node):
    ada, bob = await register_user(node, "ada"), await register_user(node, "bob")
    listing = await _publish_listing(node, ada, "Watercolour")
    a = await SocketUser(node, ada["access_token"], name="ada").connect()
    b = await SocketUser(node, bob["access_token"], name="bob").connect()
    try:
        assert (await a.call("presence:subscribe", {"user_ids": [bob["id"]]}))["hidden"]
        status, request = await http_json("POST", f"{node}/api/v1/skills/{listing['id']}/requests",
                                          token=bob["access_token"], json={"message": "hi"})
        assert status == 201, request
        # The new relation reaches ada's existing subscription by itself.
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"]
                         and p["status"] == "online")
        ack = await b.call("presence:subscribe", {"user_ids": [ada["id"]]})
        assert ack["presence"][ada["id"]]["status"] == "online"
        status, _ = await http_json("POST", f"{node}/api/v1/requests/{request['id']}/decline",
                                    token=ada["access_token"])
        assert status == 200
        ack = await b.call("presence:subscribe", {"user_ids": [ada["id"]]})
        assert ack["hidden"] == [ada["id"]]
    finally:
        await a.close()
        await b.close()


async def _reads_of(node: str, collection: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{node}/metrics") as resp:
        text = await resp.text()
    return sample(text, "skillshare_db_commands_total", collection=collection, command="find",
                  outcome="ok")


async def test_a_change_between_two_people_rechecks_only_subscriptions_to_them(node):
    """A skill request from bob to ada changes what ada and bob may see of
    each other, nothing else: ada's subscription to carol (a contact) is not
    checked again (checking costs reads: blocks, rooms, requests)."""
    ada, bob, carol = [await register_user(node, n) for n in ("ada", "bob", "carol")]
    await befriend(node, ada, carol)
    listing = await _publish_listing(node, ada, "Pottery")
    a = await SocketUser(node, ada["access_token"], name="ada").connect()
    try:
        ack = await a.call("presence:subscribe", {"user_ids": [carol["id"]]})
        assert carol["id"] in ack["presence"], ack
        before = await _reads_of(node, "blocks")
        status, request = await http_json("POST", f"{node}/api/v1/skills/{listing['id']}/requests",
                                          token=bob["access_token"], json={"message": "hi"})
        assert status == 201, request
        await barrier(a)
        # the request's own check: bob's blocks, both sides (two finds)
        assert await _reads_of(node, "blocks") - before == 2, "only the request's own block check"
        # A request changes relations, not blocks: bob's stay cached.
        second = await _publish_listing(node, ada, "Glazing")
        status, request = await http_json("POST", f"{node}/api/v1/skills/{second['id']}/requests",
                                          token=bob["access_token"], json={"message": "hi"})
        assert status == 201, request
        assert await _reads_of(node, "blocks") - before == 2, "bob's blocks read again"
    finally:
        await a.close()
