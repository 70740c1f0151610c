from datetime import datetime, UTC

from server.keys import AUDIT
from tests.support.api import bearer, error_of
from tests.support.market import create_listing, new_admin, new_user, page_all


async def _audit(client, admin, **params):
    return await page_all(client, "/api/v1/admin/audit", admin["headers"], **params)


async def test_admin_endpoints_refuse_non_admins(client):
    bob = await new_user(client, "Bob")
    ada = await new_user(client, "Ada")
    listing = await create_listing(client, ada)
    for method, url, body in [
        ("GET", "/api/v1/admin/audit", None),
        ("POST", f"/api/v1/admin/users/{ada['id']}/ban", {}),
        ("POST", f"/api/v1/admin/users/{ada['id']}/role", {"role": "admin"}),
        ("POST", f"/api/v1/admin/skills/{listing['id']}/hide", {}),
    ]:
        resp = await client.request(method, url, json=body, headers=bob["headers"])
        assert resp.status == 403, url
        assert (await error_of(resp))["code"] == "forbidden"
        resp = await client.request(method, url, json=body)
        assert resp.status == 401


async def test_ban_removes_user_listings_and_sessions(client):
    admin = await new_admin(client)
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    listing = await create_listing(client, ada, title="Spam spam spam")
    kept = await create_listing(client, bob, title="Honest guitar lessons", category="music")

    resp = await client.post(f"/api/v1/admin/users/{ada['id']}/ban", json={"reason": "spam"},
                             headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "banned"

    # their token is refused at once, and they cannot sign in again
    resp = await client.get("/api/v1/users/me", headers=ada["headers"])
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "token_revoked"
    resp = await client.post("/api/v1/auth/login",
                             json={"email": ada["email"], "password": ada["password"]})
    assert resp.status == 401
    # their listings and profile are gone from every read
    assert (await client.get(f"/api/v1/skills/{listing['id']}")).status == 404
    items = (await (await client.get("/api/v1/skills")).json())["items"]
    assert [i["id"] for i in items] == [kept["id"]]
    assert (await (await client.get("/api/v1/skills", params={"q": "spam"})).json())["items"] == []
    assert (await client.get(f"/api/v1/users/{ada['id']}")).status == 404

    entries = await _audit(client, admin, action="user.ban")
    assert len(entries) == 1
    entry = entries[0]
    assert entry["actor_id"] == admin["id"] and entry["target"] == ada["id"]
    assert entry["details"]["reason"] == "spam"
    assert entry["request_id"] and entry["at"] and entry["ip"]
    revokes = await _audit(client, admin, action="session.revoke_all")
    assert any(e["target"] == ada["id"] and e["actor_id"] == admin["id"] for e in revokes)

    # unban brings the listings back
    resp = await client.post(f"/api/v1/admin/users/{ada['id']}/unban", json={},
                             headers=admin["headers"])
    assert resp.status == 200
    assert (await client.get(f"/api/v1/skills/{listing['id']}")).status == 200
    resp = await client.post(f"/api/v1/admin/users/{ada['id']}/unban", json={},
                             headers=admin["headers"])
    assert resp.status == 409


async def test_admin_cannot_ban_self_or_unknown(client):
    admin = await new_admin(client)
    resp = await client.post(f"/api/v1/admin/users/{admin['id']}/ban", json={},
                             headers=admin["headers"])
    assert resp.status == 409
    resp = await client.post("/api/v1/admin/users/000000000000000000000000/ban", json={},
                             headers=admin["headers"])
    assert resp.status == 404


async def test_role_change(client):
    admin = await new_admin(client)
    bob = await new_user(client, "Bob")
    resp = await client.post(f"/api/v1/admin/users/{bob['id']}/role", json={"role": "root"},
                             headers=admin["headers"])
    assert (await error_of(resp))["code"] == "validation_error"
    resp = await client.post(f"/api/v1/admin/users/{bob['id']}/role", json={"role": "admin"},
                             headers=admin["headers"])
    assert resp.status == 200
    assert (await resp.json())["role"] == "admin"
    # the role is in the token: old sessions end, the next sign-in is an admin
    assert (await client.get("/api/v1/users/me", headers=bob["headers"])).status == 401
    resp = await client.post("/api/v1/auth/login",
                             json={"email": bob["email"], "password": bob["password"]})
    token = (await resp.json())["access_token"]
    assert (await resp.json())["user"]["role"] == "admin"
    assert (await client.get("/api/v1/admin/audit", headers=bearer(token))).status == 200
    entries = await _audit(client, admin, action="user.role_change")
    assert any(e["target"] == bob["id"] and e["actor_id"] == admin["id"]
               and e["details"] == {"previous": "user", "role": "admin"} for e in entries)


async def test_admin_may_delete_any_listing_and_it_is_audited(client):
    admin = await new_admin(client)
    ada = await new_user(client, "Ada")
    listing = await create_listing(client, ada)
    resp = await client.delete(f"/api/v1/skills/{listing['id']}", headers=admin["headers"])
    assert resp.status == 204
    entries = await _audit(client, admin, action="listing.delete")
    assert [e["target"] for e in entries] == [listing["id"]]
    resp = await client.post(f"/api/v1/admin/skills/{listing['id']}/hide", json={},
                             headers=admin["headers"])
    assert resp.status == 404
    hide_entries = await _audit(client, admin, action="listing.hide")
    assert hide_entries == []


async def test_security_actions_are_audited_and_paged(client):
    admin = await new_admin(client)
    bob = await new_user(client, "Bob")
    resp = await client.post("/api/v1/auth/login",
                             json={"email": bob["email"], "password": bob["password"]})
    second = await resp.json()
    # (logged out first: a password change signs out the other sessions)
    resp = await client.post("/api/v1/auth/logout", headers=bearer(second["access_token"]))
    assert resp.status == 204
    resp = await client.post("/api/v1/auth/password/change", headers=bob["headers"], json={
        "current_password": bob["password"], "new_password": "another long passphrase"})
    assert resp.status == 204
    resp = await client.delete("/api/v1/users/me", headers=bob["headers"])
    assert resp.status == 204

    entries = await _audit(client, admin, limit="2")
    by_action = {}
    for e in entries:
        by_action.setdefault(e["action"], []).append(e)
    mine = {a for a, es in by_action.items() if any(e["target"] == bob["id"] for e in es)}
    assert {"account.login", "account.password_change", "session.revoke",
            "account.delete", "session.revoke_all"} <= mine
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)) and ids == sorted(ids, reverse=True)
    logins = await _audit(client, admin, action="account.login", actor_id=bob["id"])
    assert len(logins) == 1 and logins[0]["ip"]

    # the log is append-only under concurrent writes while paging
    first = await client.get("/api/v1/admin/audit", params={"limit": "3"},
                             headers=admin["headers"])
    page = await first.json()
    await client.app[AUDIT].record(action="test.marker", actor_id=None, target=None, ip=None,
                                   request_id=None, at=datetime.now(UTC))
    rest = await page_all(client, "/api/v1/admin/audit", admin["headers"], limit="3",
                          cursor=page["next_cursor"])
    assert [e["id"] for e in page["items"] + rest] == ids


async def test_ban_drops_the_users_sockets(client):
    import asyncio

    from tests.support.realtime import SocketUser

    admin = await new_admin(client)
    ada = await new_user(client, "Ada")
    sock = await SocketUser(str(client.make_url("")).rstrip("/"), ada["token"]).connect()
    try:
        resp = await client.post(f"/api/v1/admin/users/{ada['id']}/ban", json={},
                                 headers=admin["headers"])
        assert resp.status == 200
        await asyncio.wait_for(sock.disconnected.wait(), 5)
    finally:
        await sock.close()
