"""Email digests through a real SMTP server (aiosmtpd): someone who went
away and got messages and a missed call gets one mail built from what is
still unread when it is sent, at most one per interval; the unsubscribe link
works without signing in; the profile has the setting."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

from server.clock import FrozenClock
from server.keys import CHAT, DIGEST, METRICS, PRESENCE, USERS
from tests.support.api import bearer, error_of, register
from tests.support.calls import CallSocket
from tests.support.realtime import SocketUser, new_client_id, open_direct

INTERVAL = 3600.0
SUBJECT = "While you were away"


def _to(smtp_server, email: str) -> list:
    return [m for m in smtp_server.messages if m["To"] == email and SUBJECT in m["Subject"]]


def _text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


async def _gone(app, user_id: str) -> None:
    """Until presence has taken the user offline (the disconnect is handled
    after the client closed)."""
    for _ in range(200):
        seen = (await app[PRESENCE].snapshot([user_id])).get(user_id)
        status = seen.status if seen else None
        if status in (None, "offline"):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{user_id} still {status}")


async def _fresh_token(client, account: dict) -> str:
    """The frozen clock moved past the access tokens' lifetime: sign in again."""
    resp = await client.post("/api/v1/auth/login", json={"email": account["email"],
                                                          "password": account["password"]})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["access_token"]


async def _deliver_all(app) -> None:
    from server.keys import MAIL
    while await app[MAIL].deliver_one():
        pass


async def test_digest_for_someone_away(make_client, smtp_server):
    clock = FrozenClock()
    client = await make_client(clock=clock, smtp_url=smtp_server.url, digest_enabled=False,
                               digest_delay=0, digest_interval=INTERVAL, call_ring_timeout=0.5)
    app, url = client.server.app, str(client.make_url("")).rstrip("/")
    alice = await register(client, display_name="Alice")
    bob = await register(client, display_name="Bob")
    for account in (alice, bob):
        await app[USERS].mark_email_verified(account["user"]["id"], now=clock.now())
    alice_id, bob_id = alice["user"]["id"], bob["user"]["id"]
    room = await open_direct(url, alice["access_token"], bob_id)
    digests = app[DIGEST]

    b = await SocketUser(url, bob["access_token"], name="bob").connect()
    await b.close()  # bob goes away
    await _gone(app, bob_id)
    a = await CallSocket(url, alice["access_token"], name="alice").connect()
    try:
        async def say(body: str) -> int:
            ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                                "body": body})
            assert ack["ok"] is True, ack
            return ack["message"]["seq"]

        await say("Are we still on for the guitar lesson?")
        await say("Bring the capo <please>")
        # bob is not told he is offline to alice unless she may see his presence:
        # either the invite is refused (offline) or it rings until it is missed
        invite = await a.call("call:invite", {"user_id": bob_id})
        if invite["ok"]:
            clock.advance(1)  # past the ring timeout
            await a.wait_for("call:ended", lambda e: e["reason"] == "missed", timeout=5)
        else:
            assert invite["error"]["code"] == "offline"

        assert await digests.sweep() == 1
        await _deliver_all(app)
        mail = await smtp_server.wait_for(bob["email"], SUBJECT)
        text = _text(mail)
        assert mail["Subject"] == f"{SUBJECT}: 2 unread messages and 1 missed call"
        assert "Alice: 2 unread" in text and "Alice: Bring the capo <please>" in text
        assert "Missed calls:\n  - Alice," in text
        assert "Bring the capo &lt;please&gt;" in mail.get_body(preferencelist=("html",)).get_content()
        unsubscribe = [line for line in text.splitlines() if "/api/v1/digest/unsubscribe?token=" in line][0]

        # at most one per interval: more unread and a sweep later, no second mail
        await say("Hello?")
        clock.advance(INTERVAL / 2)
        assert await digests.sweep() == 0

        # built from what is still unread when it is sent: bob read it all meanwhile
        clock.advance(INTERVAL / 2 + 1)
        seq = await say("One more thing")
        await app[CHAT].mark_read(bob_id, room["id"], seq)
        assert await digests.sweep() == 0
        clock.advance(601)  # looked at again later: a new message, unread
        await say("See you at six")
        assert await digests.sweep() == 1
        await _deliver_all(app)
        second = await smtp_server.wait_for(bob["email"], "1 unread message")
        assert second["Subject"] == f"{SUBJECT}: 1 unread message"
        assert "Alice: See you at six" in _text(second) and "One more thing" not in _text(second)
        registry = app[METRICS].registry
        assert registry.get_sample_value("skillshare_digests_total", {"outcome": "sent"}) == 2
        assert registry.get_sample_value("skillshare_digests_total", {"outcome": "nothing"}) == 1
    finally:
        await a.close()

    # the unsubscribe link works without signing in: a page with a button, then the POST
    parts = urlsplit(unsubscribe.strip())
    page = await client.get(f"{parts.path}?{parts.query}")
    assert page.status == 200 and "<form" in await page.text()
    token = parse_qs(parts.query)["token"][0]
    forged = await client.post(parts.path, data={"token": f"{alice_id}.{token.split('.')[1]}"})
    assert forged.status == 400 and (await error_of(forged))["code"] == "invalid_token"
    done = await client.post(parts.path, data={"token": token})
    assert done.status == 200 and "Unsubscribed" in await done.text()
    bob_token, alice_token = await _fresh_token(client, bob), await _fresh_token(client, alice)
    me = await (await client.get("/api/v1/users/me", headers=bearer(bob_token))).json()
    assert me["email_digest"] is False
    alice_me = await (await client.get("/api/v1/users/me", headers=bearer(alice_token))).json()
    assert alice_me["email_digest"] is True

    clock.advance(INTERVAL + 1)
    alice_token = await _fresh_token(client, alice)
    a = await SocketUser(url, alice_token, name="alice").connect()
    try:
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "hi"})
        assert ack["ok"] is True
    finally:
        await a.close()
    assert await digests.sweep() == 0  # opted out
    # and back on through the profile
    bob_token = await _fresh_token(client, bob)
    resp = await client.patch("/api/v1/users/me", json={"email_digest": True}, headers=bearer(bob_token))
    assert resp.status == 200 and (await resp.json())["email_digest"] is True
    bad = await client.patch("/api/v1/users/me", json={"email_digest": "yes"}, headers=bearer(bob_token))
    assert bad.status == 400


async def test_coming_back_cancels_the_digest(make_client, smtp_server):
    clock = FrozenClock()
    client = await make_client(clock=clock, smtp_url=smtp_server.url, digest_enabled=False,
                               digest_delay=600, digest_interval=INTERVAL)
    app, url = client.server.app, str(client.make_url("")).rstrip("/")
    alice, bob = await register(client, display_name="Alice"), await register(client, display_name="Bob")
    for account in (alice, bob):
        await app[USERS].mark_email_verified(account["user"]["id"], now=clock.now())
    room = await open_direct(url, alice["access_token"], bob["user"]["id"])
    b = await SocketUser(url, bob["access_token"], name="bob").connect()
    await b.close()
    await _gone(app, bob["user"]["id"])
    a = await SocketUser(url, alice["access_token"], name="alice").connect()
    try:
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "hi"})
        assert ack["ok"] is True
    finally:
        await a.close()
    assert await app[DIGEST].sweep() == 0  # not away long enough yet
    b = await SocketUser(url, bob["access_token"], name="bob").connect()  # back
    clock.advance(601)
    try:
        assert await app[DIGEST].sweep() == 0
    finally:
        await b.close()
    assert _to(smtp_server, bob["email"]) == []
