"""The purge of deleted accounts, end to end: a person with real activity
deletes their account, the grace period passes (FrozenClock), the purge
runs, and nothing the person wrote or was is left in any collection of the
database, in Redis or in the mail outbox; the others still see their rooms
(gap-free seqs, tombstones), requests and ratings."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from server.auth.purge import BATCH_SIZE
from server.clock import FrozenClock
from server.storage.fields import ENCRYPTED_FIELDS, FieldCrypto
from server.keys import DB, FIELDS, MAIL, PURGE, REDIS, SETTINGS
from server.mail.transports import USERS_HEADER
from server.redis_keys import RedisKeys
from server.storage.ids import DELETED_USER_ID
from server.storage.messages import MessageStore, message_id
from server.storage.presence import KEY_PREFIX as PRESENCE_KEYS
from tests.support.api import DEFAULT_PASSWORD, bearer, register
from tests.support.market import create_listing, new_user, talk
from tests.support.realtime import SocketUser, new_client_id

GRACE_DAYS = 30
DAY_S = 86400
RATE_LIMIT_PREFIX = RedisKeys().rate_limits.encode()
PERSON_IPS = ("198.51.100.23", "203.0.113.77")


def _tag() -> str:
    return secrets.token_hex(6)


async def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json() if resp.status != 204 else None


async def _login(client: Any, user: dict[str, Any], headers: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    body = await _ok(await client.post("/api/v1/auth/login", headers=headers or {}, json={
        "email": user["email"], "password": DEFAULT_PASSWORD}))
    return {**user, "token": body["access_token"], "headers": bearer(body["access_token"])}


async def _review_flow(client: Any, learner: dict, teacher: dict, listing: dict, *,
                       message: str, rating: int, comment: str) -> dict[str, Any]:
    request = await _ok(await client.post(f"/api/v1/skills/{listing['id']}/requests",
                                          json={"message": message},
                                          headers=learner["headers"]), 201)
    await _ok(await client.post(f"/api/v1/requests/{request['id']}/accept",
                                headers=teacher["headers"]))
    await talk(client, teacher, request["id"])  # completing needs a conversation
    await _ok(await client.post(f"/api/v1/requests/{request['id']}/complete",
                                headers=learner["headers"]))
    await _ok(await client.post(f"/api/v1/requests/{request['id']}/review",
                                json={"rating": rating, "comment": comment},
                                headers=learner["headers"]), 201)
    return request


async def _send(sock: SocketUser, room_id: str, body: str) -> dict[str, Any]:
    ack = await sock.call("message:send", {"room_id": room_id, "client_id": new_client_id(),
                                           "body": body})
    assert ack["ok"], ack
    return ack["message"]


async def _database_text(db: Any, fields: FieldCrypto) -> dict[str, str]:
    """Every document, with the fields encrypted at rest decrypted: what
    the purge must have erased is the plaintext, not just its ciphertext."""
    out = {}
    for name in await db.list_collection_names():
        docs = await db[name].find({}).to_list(length=None)
        if name in ENCRYPTED_FIELDS:
            fields.open_all(name, docs)
        out[name] = json.dumps(docs, default=str, ensure_ascii=False)
    return out


async def _redis_text(redis: Any) -> str:
    """Every key and value, but the rate limiter's counters: they hold ids,
    emails and IPs only until their window (at most an hour) ends."""
    parts = []
    async for key in redis.scan_iter(count=1000):
        if key.startswith(RATE_LIMIT_PREFIX):
            assert await redis.ttl(key) > 0, key
            continue
        parts.append(key.decode())
        kind = (await redis.type(key)).decode()
        if kind == "hash":
            parts.append(repr(await redis.hgetall(key)))
        elif kind == "string":
            parts.append(repr(await redis.get(key)))
        elif kind == "set":
            parts.append(repr(await redis.smembers(key)))
    return "\n".join(parts)


def _outbox_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("*.eml")))


async def test_purge_leaves_nothing_of_the_person_and_others_keep_a_consistent_view(
    make_client, redis_url
):
    clock = FrozenClock()
    client = await make_client(clock=clock, redis_url=redis_url, trusted_proxies=1,
                               deleted_user_grace_days=GRACE_DAYS)
    app = client.app
    base = str(client.make_url("")).rstrip("/")
    tag = _tag()
    name = f"Zelda Purgeworth {tag}"
    agents = (f"ZeldaBrowser/1.0 (desk-{tag})", f"ZeldaPhone/2.0 (pocket-{tag})")
    written = {
        "bio": f"Sailor from the north {tag}",
        "listing_title": f"Zelda teaches knots {tag}",
        "listing_text": f"Bowlines and sheet bends, by Zelda {tag}",
        "listing_tag": f"knot{tag}",
        "request_message": f"Zelda would love to learn {tag}",
        "review_comment": f"Zelda's honest opinion {tag}",
        "direct_message": f"Zelda's secret in direct {tag}",
        "group_message": f"Zelda's words to the group {tag}",
        "last_message": f"Zelda signing off {tag}",
    }

    # The person: two sessions from their own addresses and browsers.
    email = f"zelda-{tag}@example.com"
    first = {"X-Forwarded-For": PERSON_IPS[0], "User-Agent": agents[0]}
    body = await _ok(await client.post("/api/v1/auth/register", headers=first, json={
        "email": email, "password": DEFAULT_PASSWORD, "display_name": name}), 201)
    zelda = {"id": body["user"]["id"], "email": email}
    zelda = await _login(client, zelda, {"X-Forwarded-For": PERSON_IPS[1],
                                         "User-Agent": agents[1]})
    await _ok(await client.patch("/api/v1/users/me", headers=zelda["headers"], json={
        "bio": written["bio"], "skills_offered": [{"name": f"knot{tag}"}]}))
    await _ok(await client.post("/api/v1/auth/password/forgot", json={"email": email}), 202)

    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    ada_listing = await create_listing(client, ada, title="Python for beginners")
    zelda_listing = await create_listing(
        client, zelda, title=written["listing_title"], description=written["listing_text"],
        tags=[written["listing_tag"]])

    # Zelda learns from Ada and reviews; Bob learns from Zelda.
    await _review_flow(client, zelda, ada, ada_listing, message=written["request_message"],
                       rating=4, comment=written["review_comment"])
    bob_request = await _review_flow(client, bob, zelda, zelda_listing,
                                     message="Bob asks politely", rating=5, comment="Great")
    rating_before = (await _ok(await client.get(f"/api/v1/skills/{ada_listing['id']}")))["rating"]
    assert rating_before == {"average": 4.0, "count": 1}

    resp = await client.post("/api/v1/rooms", headers=ada["headers"],
                             json={"type": "direct", "user_id": zelda["id"]})
    direct = await _ok(resp, resp.status)  # opened by the accepted request already
    # Zelda's requests relate her to both, so she may put them in a group.
    group = await _ok(await client.post("/api/v1/rooms", headers=zelda["headers"], json={
        "type": "group", "name": "Knots club", "member_ids": [ada["id"], bob["id"]]}), 201)
    socks = {who: await SocketUser(base, user["token"], name=who).connect()
             for who, user in (("zelda", zelda), ("ada", ada), ("bob", bob))}
    try:
        await _send(socks["zelda"], direct["id"], written["direct_message"])
        await _send(socks["ada"], direct["id"], "Ada answers")
        await _send(socks["zelda"], direct["id"], written["last_message"])
        await _send(socks["bob"], group["id"], "Bob says hi")
        await _send(socks["zelda"], group["id"], written["group_message"])
        await _send(socks["ada"], group["id"], "Ada closes")
        for room in (direct, group):
            read = await socks["zelda"].call("message:read", {"room_id": room["id"], "seq": 2})
            assert read["ok"], read
    finally:
        for sock in socks.values():
            await sock.close()
    assert await app[REDIS].exists(f"{PRESENCE_KEYS}user:{zelda['id']}")

    await _ok(await client.post(f"/api/v1/users/{bob['id']}/block", headers=zelda["headers"]))
    await _ok(await client.post(f"/api/v1/users/{zelda['id']}/block", headers=ada["headers"]))
    await _ok(await client.delete("/api/v1/users/me", headers=zelda["headers"]), 204)
    while await app[MAIL].deliver_one():  # the outbox has the person's mails
        pass
    outbox = app[SETTINGS].data_dir / "outbox"
    needles = [email, name, *PERSON_IPS, *agents, *written.values()]
    before = "\n".join((await _database_text(app[DB], app[FIELDS])).values()) + _outbox_text(outbox)
    assert all(n in before for n in (email, name, *PERSON_IPS, *agents)), "test set-up"

    # Within the grace period nothing is purged.
    clock.advance((GRACE_DAYS - 1) * DAY_S)
    assert await app[PURGE].purge_due() == 0
    clock.advance(2 * DAY_S)
    assert await app[PURGE].purge_due() == 1
    assert await app[PURGE].purge_due() == 0  # idempotent: nothing left to do
    metrics = await (await client.get("/metrics")).text()
    assert 'skillshare_account_purges_total{outcome="purged"} 1.0' in metrics

    for collection, text in (await _database_text(app[DB], app[FIELDS])).items():
        for needle in needles:
            assert needle not in text, f"{needle!r} still in {collection}"
    outbox_text = _outbox_text(outbox)
    for needle in needles:
        assert needle not in outbox_text, f"{needle!r} still in the outbox"
    involving = {"$or": [{"blocker_id": zelda["id"]}, {"blocked_id": zelda["id"]}]}
    assert await app[DB]["blocks"].count_documents(involving) == 0
    assert await app[DB]["block_counts"].count_documents({"_id": zelda["id"]}) == 0
    assert (await app[DB]["block_counts"].find_one({"_id": ada["id"]}))["count"] == 0
    redis_text = await _redis_text(app[REDIS])
    assert zelda["id"] not in redis_text
    for needle in (name, *PERSON_IPS, *agents):
        assert needle not in redis_text

    # The others: histories complete, with tombstones in place of Zelda's messages.
    ada, bob = await _login(client, ada), await _login(client, bob)
    history = await _ok(await client.get(f"/api/v1/rooms/{direct['id']}/messages",
                                         headers=ada["headers"]))
    messages = history["items"]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]  # 1: Ada's before completing
    assert [(m["deleted"], m["body"], m["sender_id"]) for m in messages] == [
        (False, "Hello!", ada["id"]), (True, "", DELETED_USER_ID), (False, "Ada answers", ada["id"]),
        (True, "", DELETED_USER_ID)]
    sock = await SocketUser(base, bob["token"], name="bob").connect()
    try:
        synced = await sock.call("room:sync", {"room_id": group["id"], "after_seq": 0})
    finally:
        await sock.close()
    assert synced["ok"], synced
    assert [(m["seq"], m["deleted"], m["body"]) for m in synced["messages"]] == [
        (1, False, "Bob says hi"), (2, True, ""), (3, False, "Ada closes")]
    rooms = await _ok(await client.get("/api/v1/rooms", headers=bob["headers"]))
    group_now = next(r for r in rooms["items"] if r["id"] == group["id"])
    assert zelda["id"] not in group_now["member_ids"]

    # Ada's listing keeps its rating; the review stays without comment or author.
    after = await _ok(await client.get(f"/api/v1/skills/{ada_listing['id']}"))
    assert after["rating"] == rating_before
    reviews = await _ok(await client.get(f"/api/v1/skills/{ada_listing['id']}/reviews"))
    assert [(r["rating"], r["comment"], r["reviewer"]["id"]) for r in reviews["items"]] == [
        (4, "", DELETED_USER_ID)]

    # Requests: Bob still sees his own, without Zelda's listing title.
    assert (await client.get(f"/api/v1/skills/{zelda_listing['id']}")).status == 404
    bobs = await _ok(await client.get("/api/v1/requests", headers=bob["headers"]))
    seen = next(r for r in bobs["items"] if r["id"] == bob_request["id"])
    assert seen["message"] == "Bob asks politely" and seen["status"] == "completed"
    assert seen["teacher"]["id"] == DELETED_USER_ID
    adas = await _ok(await client.get("/api/v1/requests", headers=ada["headers"]))
    assert [r["message"] for r in adas["items"]] == [""]
    assert (await client.get(f"/api/v1/users/{zelda['id']}")).status == 404


async def test_a_large_history_is_tombstoned_in_batches_and_stays_gap_free(make_client):
    clock = FrozenClock()
    client = await make_client(clock=clock, deleted_user_grace_days=0)
    app = client.app
    zelda, ada = await new_user(client, "Zelda"), await new_user(client, "Ada")
    room = await _ok(await client.post("/api/v1/rooms", headers=ada["headers"],
                                       json={"type": "direct", "user_id": zelda["id"]}), 201)
    count = 2 * BATCH_SIZE + 7
    now = clock.now()
    await MessageStore(app[DB], app[FIELDS]).insert_many_unchecked([{
        "_id": message_id(room["id"], seq), "room_id": room["id"], "seq": seq,
        "sender_id": zelda["id"] if seq % 3 else ada["id"], "client_id": new_client_id(),
        "body": f"message {seq}", "created_at": now,
    } for seq in range(1, count + 1)])
    await _ok(await client.delete("/api/v1/users/me", headers=zelda["headers"]), 204)
    clock.advance(1)
    assert await app[PURGE].purge_due() == 1

    docs = app[FIELDS].open_all("messages", await app[DB]["messages"].find(
        {"room_id": room["id"]}).to_list(length=None))
    assert sorted(d["seq"] for d in docs) == list(range(1, count + 1))
    assert not [d for d in docs if d["sender_id"] == zelda["id"]]
    tombstones = [d for d in docs if d.get("deleted")]
    assert len(tombstones) == count - count // 3
    assert all(d["body"] == "" and d["sender_id"] == DELETED_USER_ID for d in tombstones)
    assert all(d["body"] == f"message {d['seq']}" for d in docs if not d.get("deleted"))


async def test_the_internal_users_header_never_leaves_by_smtp(make_client, smtp_server):
    client = await make_client(smtp_url=smtp_server.url)
    account = await register(client, display_name="Linus")
    message = await smtp_server.wait_for(account["email"], "Confirm")
    assert USERS_HEADER not in message
    doc = await client.app[DB]["mail_queue"].find_one(
        {"to_index": client.app[FIELDS].blind_index(account["email"])})
    assert doc["user_ids"] == [account["user"]["id"]]
