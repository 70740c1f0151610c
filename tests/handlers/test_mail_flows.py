"""Verification and password-reset mails through a real SMTP server, and
the tests following the mailed links."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

from server.clock import FrozenClock
from server.keys import DB, FIELDS, MAIL
from server.mail.service import SEND_LEASE
from server.storage.mail_queue import PENDING, SENT, MailQueueStore
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, register, unique_email
from tests.support.metrics import sample
from tests.support.smtp import link_in

NEW_PASSWORD = "a brand new password 42"


async def _open_link(client, link: str) -> str:
    """GET the page the link opens, check it is the right one, return the token."""
    parts = urlsplit(link)
    page = await client.get(f"{parts.path}?{parts.query}")
    assert page.status == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "<form" in await page.text()
    return parse_qs(parts.query)["token"][0]


async def test_verification_mail_link_verifies_email(make_client, smtp_server):
    client = await make_client(smtp_url=smtp_server.url)
    account = await register(client, display_name="Linus")
    message = await smtp_server.wait_for(account["email"], "Confirm")
    assert message.get_body(preferencelist=("html",)) is not None
    link = link_in(message)
    assert link.startswith("http://testserver.local/verify-email?token=")
    token = await _open_link(client, link)

    resp = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert resp.status == 200
    assert (await resp.json())["email_verified"] is True
    me = await (await client.get("/api/v1/users/me", headers=bearer(account["access_token"]))).json()
    assert me["email_verified"] is True
    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status == 400
    assert (await error_of(again))["code"] == "invalid_token"


async def test_resend_verification(make_client, smtp_server):
    client = await make_client(smtp_url=smtp_server.url)
    account = await register(client)
    await smtp_server.wait_for(account["email"], "Confirm")
    resp = await client.post("/api/v1/auth/verify-email/resend",
                             headers=bearer(account["access_token"]))
    assert resp.status == 202
    for _ in range(100):
        if sum(m["To"] == account["email"] for m in smtp_server.messages) == 2:
            break
        await asyncio.sleep(0.05)
    assert sum(m["To"] == account["email"] for m in smtp_server.messages) == 2


async def test_forgot_and_reset_password_revokes_sessions(make_client, smtp_server):
    client = await make_client(smtp_url=smtp_server.url)
    account = await register(client)
    unknown = await client.post("/api/v1/auth/password/forgot", json={"email": unique_email()})
    known = await client.post("/api/v1/auth/password/forgot", json={"email": account["email"]})
    assert unknown.status == known.status == 202
    assert (await unknown.json()) == (await known.json())

    message = await smtp_server.wait_for(account["email"], "Reset")
    token = await _open_link(client, link_in(message))
    resp = await client.post("/api/v1/auth/password/reset",
                             json={"token": token, "new_password": NEW_PASSWORD})
    assert resp.status == 204
    # Every session revoked.
    me = await client.get("/api/v1/users/me", headers=bearer(account["access_token"]))
    assert (await error_of(me))["code"] == "token_revoked"
    # Works once.
    again = await client.post("/api/v1/auth/password/reset",
                              json={"token": token, "new_password": "another password 99"})
    assert again.status == 400
    old = await client.post("/api/v1/auth/login",
                            json={"email": account["email"], "password": DEFAULT_PASSWORD})
    assert old.status == 401
    new = await client.post("/api/v1/auth/login",
                            json={"email": account["email"], "password": NEW_PASSWORD})
    assert new.status == 200


async def test_reset_token_expires(make_client, smtp_server):
    clock = FrozenClock()
    client = await make_client(clock=clock, smtp_url=smtp_server.url, password_reset_ttl=600)
    account = await register(client)
    await client.post("/api/v1/auth/password/forgot", json={"email": account["email"]})
    message = await smtp_server.wait_for(account["email"], "Reset")
    token = parse_qs(urlsplit(link_in(message)).query)["token"][0]
    clock.advance(601)
    resp = await client.post("/api/v1/auth/password/reset",
                             json={"token": token, "new_password": NEW_PASSWORD})
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "invalid_token"


async def test_reset_validates_new_password(client):
    resp = await client.post("/api/v1/auth/password/reset",
                             json={"token": "whatever", "new_password": "short"})
    assert resp.status == 400
    assert (await error_of(resp))["details"][0]["field"] == "new_password"


async def test_change_password(client):
    account = await register(client)
    headers = bearer(account["access_token"])
    wrong = await client.post("/api/v1/auth/password/change", headers=headers, json={
        "current_password": "not my password", "new_password": NEW_PASSWORD})
    assert wrong.status == 400
    assert (await error_of(wrong))["details"][0]["field"] == "current_password"
    ok = await client.post("/api/v1/auth/password/change", headers=headers, json={
        "current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD})
    assert ok.status == 204
    login = await client.post("/api/v1/auth/login",
                              json={"email": account["email"], "password": NEW_PASSWORD})
    assert login.status == 200


async def test_smtp_down_keeps_account_and_retries_mail(make_client, smtp_server):
    """The SMTP server is down at registration: no 500, the account exists,
    the mail waits in the queue and goes out once SMTP is back."""
    smtp_server.stop()
    client = await make_client(smtp_url=smtp_server.url)
    account = await register(client)
    mail_service = client.app[MAIL]
    queue = client.app[DB]["mail_queue"]
    for _ in range(100):
        pending = await queue.find_one(
            {"to_index": client.app[FIELDS].blind_index(account["email"])})
        if pending and pending["attempts"] >= 1 and pending["last_error"]:
            break
        await asyncio.sleep(0.05)
    assert pending["status"] == PENDING and pending["last_error"]
    login = await client.post("/api/v1/auth/login",
                              json={"email": account["email"], "password": DEFAULT_PASSWORD})
    assert login.status == 200

    smtp_server.start()
    await queue.update_one({"_id": pending["_id"]},
                                  {"$set": {"next_attempt_at": pending["created_at"]}})
    assert await mail_service.deliver_one()
    message = await smtp_server.wait_for(account["email"], "Confirm")
    assert "verify-email?token=" in link_in(message)
    assert (await queue.find_one({"_id": pending["_id"]}))["status"] == SENT


async def test_outbox_when_no_smtp(client, tmp_path):
    account = await register(client)
    outbox = tmp_path / "data" / "outbox"
    for _ in range(100):
        files = list(outbox.glob("*.eml")) if outbox.exists() else []
        if files:
            break
        await asyncio.sleep(0.05)
    assert len(files) == 1
    content = files[0].read_text()
    assert account["email"] in content and "verify-email?token=" in content


async def test_line_breaks_in_user_text_never_stall_the_mail_queue(make_client, smtp_server):
    """A listing title with a Unicode line break (U+2028, NEL) ends up in a
    mail subject. It must neither inject a header nor wedge the worker on
    that mail, which would hold back every mail behind it (password resets).
    The API refuses such titles now (human text rule); one stored before
    that rule still must not break the mail."""
    from server.keys import DB
    from tests.support.market import create_listing, new_user

    client = await make_client(smtp_url=smtp_server.url)
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    title = "Python\u2028Bcc: victim@example.com\x85x"
    refused = await client.post("/api/v1/skills", headers=ada["headers"], json={
        "title": title, "category": "programming"})
    assert refused.status == 400
    listing = await create_listing(client, ada, title="Python")
    await client.app[DB]["listings"].update_one({"_id": listing["id"]},
                                                {"$set": {"title": title}})
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests",
                             json={"message": "hi"}, headers=bob["headers"])
    assert resp.status == 201, await resp.text()
    message = await smtp_server.wait_for(ada["email"], "New request")
    assert message["Bcc"] is None
    assert len(str(message["Subject"]).splitlines()) == 1
    assert "Python Bcc: victim@example.com x" in str(message["Subject"])
    # Mails queued after it still go out.
    later = await register(client)
    await smtp_server.wait_for(later["email"], "Confirm")


async def test_change_password_signs_out_the_other_sessions(client):
    """A changed password locks out whoever else holds a session (say, the
    one who learnt the old password); the session that changed it stays."""
    account = await register(client)
    mine = bearer(account["access_token"])
    resp = await client.post("/api/v1/auth/login",
                             json={"email": account["email"], "password": DEFAULT_PASSWORD})
    assert resp.status == 200
    theirs = await resp.json()
    ok = await client.post("/api/v1/auth/password/change", headers=mine, json={
        "current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD})
    assert ok.status == 204
    me = await client.get("/api/v1/users/me", headers=bearer(theirs["access_token"]))
    assert me.status == 401
    assert (await error_of(me))["code"] == "token_revoked"
    again = await client.post("/api/v1/auth/refresh",
                              json={"refresh_token": theirs["refresh_token"]})
    assert again.status == 401
    assert (await client.get("/api/v1/users/me", headers=mine)).status == 200
    fresh = await client.post("/api/v1/auth/refresh",
                              json={"refresh_token": account["refresh_token"]})
    assert fresh.status == 200


async def _mail_updates(client) -> float:
    resp = await client.get("/metrics")
    return sample(await resp.text(), "skillshare_db_commands_total", collection="mail_queue",
                  command="update", outcome="ok")


async def test_a_mail_queued_here_is_sent_without_a_claim_round(make_client, smtp_server):
    """The node stores the mail already leased to its own worker and hands
    it over in memory: the only update is marking it sent."""
    client = await make_client(smtp_url=smtp_server.url)
    before = await _mail_updates(client)
    account = await register(client)
    await smtp_server.wait_for(account["email"], "Confirm")
    queue = client.app[DB]["mail_queue"]
    to_index = client.app[FIELDS].blind_index(account["email"])
    for _ in range(100):
        mail = await queue.find_one({"to_index": to_index})
        if mail["status"] == SENT:
            break
        await asyncio.sleep(0.05)
    assert mail["status"] == SENT and mail["attempts"] == 1
    assert await _mail_updates(client) - before == 1


async def test_a_mail_claimed_by_a_node_that_died_is_sent_after_its_lease(make_client,
                                                                        smtp_server):
    """A mail stored claimed by a node that died before sending it waits
    for the lease, then any worker's poll sends it."""
    clock = FrozenClock()
    client = await make_client(smtp_url=smtp_server.url, clock=clock)
    store = MailQueueStore(client.app[DB], client.app[FIELDS])
    await store.enqueue(to="orphan@example.com", subject="Left behind", text="t", html="<p>t</p>",
                        kind="test", now=clock.now(), lease=SEND_LEASE)
    mail_service = client.app[MAIL]
    assert not await mail_service.deliver_one()  # leased to the dead node
    clock.advance(SEND_LEASE.total_seconds() + 1)
    await mail_service.deliver_one()  # (or the worker's next poll takes it)
    message = await smtp_server.wait_for("orphan@example.com", "Left behind")
    assert message["Subject"] == "Left behind"
