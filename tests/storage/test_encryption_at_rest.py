"""Sensitive fields encrypted at rest (server/storage/fields.py): after
realistic use no collection holds them in plain text, everything that reads
them still shows the plaintext, keys rotate online, and a tampered or moved
ciphertext fails loudly."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from server.errors import EmailTaken
from server.keys import DB, FIELDS, MAIL, SETTINGS, USERS
from server.storage.fields import ENCRYPTED_FIELDS, FieldCrypto, FieldDecryptionError
from server.storage.messages import MessageStore, message_id
from server.storage.reviews import ReviewStore
from server.storage.rotation import rotate_data_key
from server.storage.users import UserStore
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of
from tests.support.market import create_listing, new_admin, new_user, talk
from tests.support.realtime import SocketUser, new_client_id
from tests.support.services import ROOT

KEY_A = "data-key-A-" + "a" * 40
KEY_B = "data-key-B-" + "b" * 40
IPS = ("198.51.100.41", "203.0.113.99")


async def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json() if resp.status != 204 else None


async def _raw_text(db: Any) -> dict[str, str]:
    """Every document of every collection, as stored."""
    out = {}
    for name in await db.list_collection_names():
        docs = await db[name].find({}).to_list(length=None)
        out[name] = json.dumps(docs, default=str, ensure_ascii=False)
    return out


TALK = "Welcome, see you Monday"  # the chat before completing the request


async def _realistic_use(client: Any) -> dict[str, Any]:
    """Sign-up and sign-in from an address and a browser, a request with a
    message, a review with a comment, chat, mails (queued)."""
    tag = secrets.token_hex(5)
    email = f"Secret.Person-{tag}@Example.com"
    agent = f"SecretBrowser/3.1 (desk-{tag})"
    values = {
        "request_message": f"please teach me the hidden art {tag}",
        "review_comment": f"my private verdict {tag}",
        "chat_1": f"the chat secret number one {tag}",
        "chat_2": f"another confidential line {tag}",
    }
    headers = {"X-Forwarded-For": IPS[0], "User-Agent": agent}
    body = await _ok(await client.post("/api/v1/auth/register", headers=headers, json={
        "email": email, "password": DEFAULT_PASSWORD, "display_name": "Sam"}), 201)
    login = await _ok(await client.post("/api/v1/auth/login", headers={
        "X-Forwarded-For": IPS[1], "User-Agent": agent},
        json={"email": email.upper(), "password": DEFAULT_PASSWORD}))
    sam = {"id": body["user"]["id"], "email": email, "headers": bearer(login["access_token"]),
           "token": login["access_token"]}
    ada = await new_user(client, "Ada")
    listing = await create_listing(client, ada)
    request = await _ok(await client.post(
        f"/api/v1/skills/{listing['id']}/requests", json={"message": values["request_message"]},
        headers=sam["headers"]), 201)
    accepted = await _ok(await client.post(f"/api/v1/requests/{request['id']}/accept",
                                           headers=ada["headers"]))
    await talk(client, ada, request["id"], TALK)  # completing needs a conversation
    await _ok(await client.post(f"/api/v1/requests/{request['id']}/complete",
                                headers=sam["headers"]))
    await _ok(await client.post(f"/api/v1/requests/{request['id']}/review",
                                json={"rating": 5, "comment": values["review_comment"]},
                                headers=sam["headers"]), 201)
    await _ok(await client.post("/api/v1/auth/password/forgot", json={"email": email}), 202)
    base = str(client.make_url("")).rstrip("/")
    sock = await SocketUser(base, sam["token"], name="sam").connect()
    try:
        for key in ("chat_1", "chat_2"):
            ack = await sock.call("message:send", {"room_id": accepted["room_id"],
                                                   "client_id": new_client_id(),
                                                   "body": values[key]})
            assert ack["ok"], ack
    finally:
        await sock.close()
    # the reset mail is queued by a background task: wait for it
    await _wait_for_mail_to(client.app[DB], client.app[FIELDS], email, "reset_password")
    return {"sam": sam, "ada": ada, "tag": tag, "agent": agent, "values": values,
            "room_id": accepted["room_id"], "request_id": request["id"],
            "listing": listing}


async def _wait_for_mail_to(db: Any, fields: FieldCrypto, email: str, kind: str) -> None:
    for _ in range(200):
        if await db["mail_queue"].find_one({"to_index": fields.blind_index(email),
                                            "kind": kind}):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} mail queued for {email}")


async def test_no_sensitive_value_is_stored_in_plain_text(make_client, smtp_server):
    # SMTP down: the mails stay queued with their bodies.
    smtp_server.stop()
    client = await make_client(smtp_url=smtp_server.url, trusted_proxies=1)
    app = client.app
    used = await _realistic_use(client)
    queued = await app[DB]["mail_queue"].find(
        {"to_index": app[FIELDS].blind_index(used["sam"]["email"])}).to_list(length=None)
    assert {m["kind"] for m in queued} >= {"verify_email", "reset_password"}
    assert all(m.get("text") and m.get("html") for m in queued)  # bodies still queued
    assert await app[DB]["audit_log"].count_documents({}) > 0

    email = used["sam"]["email"]
    needles = [email, email.lower(), email.split("@")[0].lower(), *IPS, used["agent"],
               *used["values"].values()]
    stored = await _raw_text(app[DB])
    assert {"users", "sessions", "messages", "skill_requests", "reviews", "mail_queue",
            "audit_log"} <= set(stored)
    for collection, text in stored.items():
        folded = text.lower()
        for needle in needles:
            assert needle.lower() not in folded, f"{needle!r} in plain text in {collection}"
    # ... and the same values are there, encrypted: the stores read them back.
    user = await app[USERS].find_by_email(email.swapcase())
    assert user is not None and user["email"] == email.lower()
    sessions = (await _ok(await client.get("/api/v1/auth/sessions",
                                           headers=used["sam"]["headers"])))["items"]
    assert {s["ip"] for s in sessions} == set(IPS)
    assert {s["user_agent"] for s in sessions} == {used["agent"]}


async def test_everything_that_reads_the_fields_shows_the_plaintext(make_client):
    client = await make_client(trusted_proxies=1)
    app = client.app
    used = await _realistic_use(client)
    sam, values = used["sam"], used["values"]

    history = await _ok(await client.get(f"/api/v1/rooms/{used['room_id']}/messages",
                                         headers=sam["headers"]))
    assert [m["body"] for m in history["items"]] == [TALK, values["chat_1"], values["chat_2"]]
    rooms = await _ok(await client.get("/api/v1/rooms", headers=sam["headers"]))
    assert rooms["items"][0]["last_message"]["body"] == values["chat_2"]
    base = str(client.make_url("")).rstrip("/")
    sock = await SocketUser(base, used["ada"]["token"], name="ada").connect()
    try:
        synced = await sock.call("room:sync", {"room_id": used["room_id"], "after_seq": 0})
    finally:
        await sock.close()
    assert [m["body"] for m in synced["messages"]] == [TALK, values["chat_1"], values["chat_2"]]

    me = await _ok(await client.get("/api/v1/users/me", headers=sam["headers"]))
    assert me["email"] == sam["email"].lower()
    export = await _ok(await client.get("/api/v1/users/me/export", headers=sam["headers"]))
    text = json.dumps(export)
    for value in (sam["email"].lower(), *values.values(), *IPS, used["agent"]):
        assert value in text, value
    incoming = await _ok(await client.get("/api/v1/requests?role=incoming",
                                          headers=used["ada"]["headers"]))
    assert incoming["items"][0]["message"] == values["request_message"]
    reviews = await _ok(await client.get(f"/api/v1/skills/{used['listing']['id']}/reviews"))
    assert reviews["items"][0]["comment"] == values["review_comment"]

    # Mail delivery (the outbox): the recipient and the body in plain text.
    while await app[MAIL].deliver_one():
        pass
    outbox = app[SETTINGS].data_dir / "outbox"
    mails = [p.read_text(errors="replace") for p in sorted(Path(outbox).glob("*.eml"))]
    to_sam = [m for m in mails if sam["email"].lower() in m]
    assert len(to_sam) >= 2 and any("reset" in m.lower() for m in to_sam)
    to_ada = [m for m in mails if used["ada"]["email"] in m]
    assert to_ada and any("Sam" in m for m in to_ada)


async def test_sign_in_by_email_in_any_case_and_duplicates_refused(client):
    email = f"MiXeD-{secrets.token_hex(4)}@Example.org"
    await _ok(await client.post("/api/v1/auth/register", json={
        "email": email, "password": DEFAULT_PASSWORD, "display_name": "Mix"}), 201)
    for variant in (email, email.lower(), email.upper(), f"  {email.swapcase()} "):
        login = await client.post("/api/v1/auth/login",
                                  json={"email": variant.strip(), "password": DEFAULT_PASSWORD})
        assert login.status == 200, (variant, await login.text())
    again = await client.post("/api/v1/auth/register", json={
        "email": email.upper(), "password": DEFAULT_PASSWORD, "display_name": "Twin"})
    assert again.status == 409 and (await error_of(again))["code"] == "email_taken"
    # a deleted account frees its address
    token = (await _ok(await client.post("/api/v1/auth/login", json={
        "email": email, "password": DEFAULT_PASSWORD})))["access_token"]
    await _ok(await client.delete("/api/v1/users/me", headers=bearer(token)), 204)
    await _ok(await client.post("/api/v1/auth/register", json={
        "email": email.lower(), "password": DEFAULT_PASSWORD, "display_name": "New"}), 201)


async def test_rotation_moves_everything_to_the_new_key(make_client, mongo_url, db_name):
    # Written under key A, plus rows from before encryption (plaintext).
    client = await make_client(data_key=[KEY_A], trusted_proxies=1)
    app = client.app
    used = await _realistic_use(client)
    legacy_email = f"legacy-{secrets.token_hex(4)}@example.com"
    await app[DB]["users"].insert_one({
        "_id": "legacy-user-1", "email": legacy_email, "display_name": "Old", "status": "active",
        "role": "user", "password_hash": "x"})
    await app[DB]["messages"].insert_one({
        "_id": message_id(used["room_id"], 4), "room_id": used["room_id"], "seq": 4,
        "sender_id": used["ada"]["id"], "client_id": new_client_id(),
        "body": "legacy plaintext body", "created_at": datetime.now(UTC)})
    assert (await app[USERS].find_by_email(legacy_email.upper()))["_id"] == "legacy-user-1"
    before = {name: app[FIELDS].open_all(name, await app[DB][name].find({}).to_list(None))
              for name in ENCRYPTED_FIELDS}

    db = AsyncMongoClient(mongo_url, tz_aware=True)[db_name]
    both = FieldCrypto([KEY_B, KEY_A])
    # During the rotation both keys read, and a new account under B is still
    # refused for an address indexed under A.
    during = UserStore(db, both)
    assert (await during.find_by_email(used["sam"]["email"]))["_id"] == used["sam"]["id"]
    with pytest.raises(EmailTaken):
        await during.create(email=used["sam"]["email"].lower(), password_hash="x",
                            display_name="Twin", now=before["users"][0]["created_at"])
    progress: list[str] = []
    report = await rotate_data_key(db, both, batch_size=3,
                                   progress=lambda msg, *a: progress.append(msg.format(*a)))
    assert not report.failed and report.raced == 0 and report.rewritten > 0
    assert any("messages" in line for line in progress)
    again = await rotate_data_key(db, both)
    assert again.rewritten == 0  # idempotent

    only_b = FieldCrypto([KEY_B])
    key_a_id = FieldCrypto([KEY_A]).current_key_id
    raw = await _raw_text(db)
    assert not any(f"enc:v1:{key_a_id}:" in text for text in raw.values())
    assert "legacy plaintext body" not in raw["messages"] and legacy_email not in raw["users"]
    for name in ENCRYPTED_FIELDS:
        after = only_b.open_all(name, await db[name].find({}).to_list(None))
        assert _encrypted_values(name, after) == _encrypted_values(name, before[name]), name
    assert (await UserStore(db, only_b).find_by_email(legacy_email))["_id"] == "legacy-user-1"

    # A node configured with B alone: sign-in by email and history work.
    client_b = await make_client(data_key=[KEY_B])
    login = await _ok(await client_b.post("/api/v1/auth/login", json={
        "email": used["sam"]["email"], "password": DEFAULT_PASSWORD}))
    history = await _ok(await client_b.get(f"/api/v1/rooms/{used['room_id']}/messages",
                                           headers=bearer(login["access_token"])))
    assert [m["body"] for m in history["items"]] == [
        TALK, used["values"]["chat_1"], used["values"]["chat_2"], "legacy plaintext body"]


def _encrypted_values(collection: str, docs: list[dict[str, Any]]) -> dict[Any, Any]:
    """The encrypted fields' plaintext per document. (The mail worker may
    send a mail meanwhile, which drops its body: only ``to`` and ``subject``
    stay.)"""
    keep = set(ENCRYPTED_FIELDS[collection])
    if collection == "mail_queue":
        keep = {"to", "subject"}
    return {d["_id"]: {k: v for k, v in d.items() if k in keep} for d in docs}


async def test_tampered_or_moved_ciphertext_fails_with_a_clear_error(make_client):
    client = await make_client()
    app = client.app
    used = await _realistic_use(client)
    messages = app[DB]["messages"]
    first_id, second_id = (message_id(used["room_id"], s) for s in (1, 2))
    first = await messages.find_one({"_id": first_id})
    store = MessageStore(app[DB], app[FIELDS])

    # flip one character of the ciphertext
    body = first["body"]
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    await messages.update_one({"_id": first_id}, {"$set": {"body": flipped}})
    with pytest.raises(FieldDecryptionError, match="failed authentication"):
        await store.get(used["room_id"], 1)
    # the API answers 500 internal_error, never the garbage
    resp = await client.get(f"/api/v1/rooms/{used['room_id']}/messages",
                            headers=used["sam"]["headers"])
    assert resp.status == 500 and (await error_of(resp))["code"] == "internal_error"

    # a valid ciphertext copied to another document
    await messages.update_one({"_id": second_id}, {"$set": {"body": body}})
    with pytest.raises(FieldDecryptionError, match=r"messages\.body of document"):
        await store.get(used["room_id"], 2)

    # ... or to another field (a user's email as a review comment)
    user = await app[DB]["users"].find_one({"_id": used["sam"]["id"]})
    await app[DB]["reviews"].update_many({}, {"$set": {"comment": user["email"]}})
    with pytest.raises(FieldDecryptionError, match=r"reviews\.comment"):
        await ReviewStore(app[DB], app[FIELDS]).of_user(used["sam"]["id"])

    # a key that is not configured
    other = FieldCrypto([KEY_B])
    with pytest.raises(FieldDecryptionError, match="not list"):
        other.decrypt("users", "email", used["sam"]["id"], user["email"])


def test_field_crypto_round_trip_and_key_checks():
    fields = FieldCrypto([KEY_A])
    sealed = fields.encrypt("messages", "body", "r:1", "héllo")
    assert sealed.startswith("enc:v1:") and "héllo" not in sealed
    assert fields.decrypt("messages", "body", "r:1", sealed) == "héllo"
    assert fields.encrypt("messages", "body", "r:1", "héllo") != sealed  # random nonce
    # a user can type something that looks like a ciphertext: it is encrypted
    fake = "enc:v1:AAAAAAAA:AAAA"
    assert fields.decrypt("messages", "body", "r:1",
                          fields.encrypt("messages", "body", "r:1", fake)) == fake
    assert fields.decrypt("messages", "body", "r:1", "plain legacy") == "plain legacy"
    assert fields.blind_indexes("A@B.c") == fields.blind_indexes(" a@b.C ")
    assert FieldCrypto([KEY_B, KEY_A]).blind_indexes("a@b.c")[1] == fields.blind_index("a@b.c")
    with pytest.raises(ValueError):
        FieldCrypto([])
    with pytest.raises(ValueError):
        FieldCrypto([KEY_A, KEY_A])


async def test_rotate_data_key_command_while_the_node_runs(make_client, mongo_url, db_name,
                                                           tmp_path):
    """``skillshare rotate-data-key`` as an operator runs it, beside a node
    that keeps serving (configured ``[B, A]``)."""
    client = await make_client(data_key=[KEY_A], trusted_proxies=1)
    used = await _realistic_use(client)
    node = await make_client(data_key=[KEY_B, KEY_A])  # the restarted node
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
    env.update({"SKILLSHARE_ENV": "test", "SKILLSHARE_MONGO_URL": mongo_url,
                "SKILLSHARE_MONGO_DB": db_name, "SKILLSHARE_DATA_DIR": str(tmp_path / "cli"),
                "SKILLSHARE_SECRET_KEY": "s" * 40, "SKILLSHARE_DATA_KEY": f"{KEY_B},{KEY_A}"})
    command = [sys.executable, "-m", "server", "rotate-data-key", "--batch-size", "2"]
    result = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, env=env,
                                     capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "rotate-data-key: messages" in result.stderr and "re-encrypted" in result.stderr
    # meanwhile and afterwards the node serves; B alone now reads everything
    login = await _ok(await node.post("/api/v1/auth/login", json={
        "email": used["sam"]["email"].upper(), "password": DEFAULT_PASSWORD}))
    assert login["user"]["email"] == used["sam"]["email"].lower()
    db = AsyncMongoClient(mongo_url, tz_aware=True)[db_name]
    only_b = FieldCrypto([KEY_B])
    for name in ENCRYPTED_FIELDS:
        only_b.open_all(name, await db[name].find({}).to_list(None))  # no error
    again = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, env=env,
                                    capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 re-encrypted" in again.stderr, again.stderr


async def test_admin_finds_a_user_by_email_in_any_case(client):
    admin = await new_admin(client)
    sam = await new_user(client, "Sam")
    url = "/api/v1/admin/users"
    found = await _ok(await client.get(url, params={"email": sam["email"].upper()},
                                       headers=admin["headers"]))
    assert found["items"] == [{"id": sam["id"], "display_name": "Sam", "role": "user",
                               "status": "active", "email": sam["email"].lower()}]
    none = await _ok(await client.get(url, params={"email": "nobody@example.com"},
                                      headers=admin["headers"]))
    assert none["items"] == []
    refused = await client.get(url, params={"email": sam["email"]}, headers=sam["headers"])
    assert refused.status == 403


async def test_the_blind_index_keeps_emails_unique_in_the_database(mongo_url, db_name):
    """Beyond the store's check: two racing sign-ups with one address (any
    case) cannot both be inserted; accounts without an address (deleted,
    purged) do not collide."""
    db = AsyncMongoClient(mongo_url, tz_aware=True)[db_name]
    fields = FieldCrypto([KEY_A])
    await UserStore(db, fields).create_indexes()
    await db["users"].insert_one(fields.seal("users", {"_id": "u1", "email": "a@b.example"}))
    with pytest.raises(DuplicateKeyError):
        await db["users"].insert_one(fields.seal("users", {"_id": "u2", "email": "A@B.example"}))
    await db["users"].insert_many([{"_id": "p1", "status": "deleted"},
                                   {"_id": "p2", "status": "deleted"}])
