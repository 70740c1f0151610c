"""/api/v1/auth: registration, login, throttling, refresh rotation, logout
and sessions, through the real HTTP API on the embedded database."""

from __future__ import annotations

import asyncio
import time

from server.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, register, unique_email


async def test_register_returns_tokens_and_private_user(client):
    email = unique_email()
    resp = await client.post("/api/v1/auth/register", json={
        "email": email.upper(), "password": DEFAULT_PASSWORD, "display_name": "Grace",
    })
    assert resp.status == 201
    body = await resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["user"]["email"] == email.lower()
    assert body["user"]["email_verified"] is False
    assert "password_hash" not in body["user"]
    assert body["access_token"].count(".") == 2
    assert "ss_refresh" in resp.cookies and "ss_csrf" in resp.cookies
    me = await client.get("/api/v1/users/me", headers=bearer(body["access_token"]))
    assert (await me.json())["id"] == body["user"]["id"]


async def test_register_email_taken_case_insensitive(client):
    account = await register(client)
    resp = await client.post("/api/v1/auth/register", json={
        "email": account["email"].upper(), "password": DEFAULT_PASSWORD, "display_name": "Other",
    })
    assert resp.status == 409
    assert (await error_of(resp))["code"] == "email_taken"


async def test_register_validation_errors_name_fields(client):
    resp = await client.post("/api/v1/auth/register", json={
        "email": "not-an-email", "password": "short", "display_name": "",
    })
    assert resp.status == 400
    error = await error_of(resp)
    assert error["code"] == "validation_error"
    fields = {d["field"] for d in error["details"]}
    assert {"email", "display_name"} <= fields


async def test_password_bounds(client):
    too_short = await client.post("/api/v1/auth/register", json={
        "email": unique_email(), "password": "short", "display_name": "A",
    })
    assert too_short.status == 400
    assert (await error_of(too_short))["details"][0]["field"] == "password"
    huge = "x" * 1_000_000
    too_long = await client.post("/api/v1/auth/register", json={
        "email": unique_email(), "password": huge, "display_name": "A",
    })
    # 1 MB password: refused before any hashing (body limit or validation).
    assert too_long.status in (400, 413)
    assert (await error_of(too_long))["code"] in ("validation_error", "payload_too_large")
    long_but_fits = await client.post("/api/v1/auth/register", json={
        "email": unique_email(), "password": "y" * 300, "display_name": "A",
    })
    assert long_but_fits.status == 400


async def test_non_json_and_bad_json(client):
    resp = await client.post("/api/v1/auth/login", data="email=a", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    assert (await error_of(resp))["code"] == "unsupported_media_type"
    resp = await client.post("/api/v1/auth/login", data="{nope",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "bad_request"
    resp = await client.post("/api/v1/auth/login", json=["a"])
    assert resp.status == 400
    resp = await client.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x",
                                                         "extra": 1})
    assert (await error_of(resp))["code"] == "validation_error"


async def test_login_success_and_same_error_for_unknown_and_wrong(client):
    account = await register(client)
    ok = await client.post("/api/v1/auth/login", json={
        "email": account["email"].upper(), "password": DEFAULT_PASSWORD})
    assert ok.status == 200
    assert (await ok.json())["user"]["id"] == account["user"]["id"]

    wrong = await client.post("/api/v1/auth/login", json={
        "email": account["email"], "password": "wrong password 123"})
    unknown = await client.post("/api/v1/auth/login", json={
        "email": unique_email(), "password": "wrong password 123"})
    wrong_err, unknown_err = await error_of(wrong), await error_of(unknown)
    assert wrong.status == unknown.status == 401
    assert wrong_err["code"] == unknown_err["code"] == "invalid_credentials"
    assert wrong_err["message"] == unknown_err["message"]


async def test_login_timing_similar_for_unknown_and_known(make_client):
    # Real argon2 cost, so the comparison means something.
    client = await make_client(password_hash_time_cost=2, password_hash_memory_kib=16 * 1024)
    account = await register(client)

    async def timed(email: str) -> float:
        started = time.perf_counter()
        resp = await client.post("/api/v1/auth/login", json={"email": email,
                                                             "password": "wrong password 1"})
        assert resp.status == 401
        return time.perf_counter() - started

    knowns, unknowns = [], []
    for _ in range(5):  # interleaved, so a busy moment of the machine hits both
        knowns.append(await timed(account["email"]))
        unknowns.append(await timed(unique_email()))
    # The fastest of each: other processes (the second test worker) only add time.
    known, unknown = min(knowns), min(unknowns)
    # Both paths run one argon2 verification; an unknown email must not be
    # answered in a fraction of the time.
    assert unknown > known * 0.4 and known > unknown * 0.4, (known, unknown)


async def test_login_throttled_per_account_even_with_right_password(make_client):
    client = await make_client(login_account_limit="3/15minutes")
    account = await register(client)
    for _ in range(3):
        resp = await client.post("/api/v1/auth/login", json={
            "email": account["email"], "password": "wrong password 123"})
        assert resp.status == 401
    resp = await client.post("/api/v1/auth/login", json={
        "email": account["email"], "password": DEFAULT_PASSWORD})
    assert resp.status == 429
    assert (await error_of(resp))["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) > 0
    # Another account from the same IP is not affected.
    other = await register(client)
    resp = await client.post("/api/v1/auth/login", json={
        "email": other["email"], "password": DEFAULT_PASSWORD})
    assert resp.status == 200


async def test_concurrent_wrong_passwords_cannot_outrun_the_account_throttle(make_client):
    """Guesses sent all at once must not all be verified before the first
    failure is counted: at most the limit's worth of guesses is checked."""
    client = await make_client(login_account_limit="3/15minutes")
    account = await register(client)

    async def guess(n: int) -> int:
        resp = await client.post("/api/v1/auth/login", json={
            "email": account["email"], "password": f"wrong password {n:04d}"})
        return resp.status

    statuses = await asyncio.gather(*(guess(n) for n in range(15)))
    assert statuses.count(401) <= 3, statuses
    assert statuses.count(429) >= 12, statuses
    resp = await client.post("/api/v1/auth/login", json={
        "email": account["email"], "password": DEFAULT_PASSWORD})
    assert resp.status == 429


async def test_login_throttled_per_ip(make_client):
    client = await make_client(login_ip_limit="4/15minutes")
    for _ in range(4):
        resp = await client.post("/api/v1/auth/login", json={
            "email": unique_email(), "password": "wrong password 123"})
        assert resp.status == 401
    resp = await client.post("/api/v1/auth/login", json={
        "email": unique_email(), "password": "wrong password 123"})
    assert resp.status == 429


async def test_concurrent_failures_cannot_outrun_the_ip_throttle(make_client):
    """A burst of logins for many addresses from one IP: no more of them are
    verified (argon2) than the IP's failure limit allows."""
    client = await make_client(login_ip_limit="3/15minutes")

    async def guess() -> int:
        resp = await client.post("/api/v1/auth/login", json={
            "email": unique_email(), "password": "wrong password 123"})
        return resp.status

    statuses = await asyncio.gather(*(guess() for _ in range(15)))
    assert statuses.count(401) <= 3, statuses
    assert statuses.count(429) >= 12, statuses


async def test_rate_limits_off_disables_throttle(make_client):
    client = await make_client(login_account_limit="1/15minutes", rate_limits="off")
    account = await register(client)
    for _ in range(3):
        resp = await client.post("/api/v1/auth/login", json={
            "email": account["email"], "password": "wrong password 123"})
        assert resp.status == 401


async def test_register_limited_per_ip(make_client):
    client = await make_client(register_limit="2/hour")
    await register(client)
    await register(client)
    resp = await client.post("/api/v1/auth/register", json={
        "email": unique_email(), "password": DEFAULT_PASSWORD, "display_name": "C"})
    assert resp.status == 429
    assert "Retry-After" in resp.headers


async def test_refresh_rotates_and_reuse_revokes_session(client):
    account = await register(client)
    first = account["refresh_token"]
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert resp.status == 200
    pair = await resp.json()
    assert pair["refresh_token"] != first
    me = await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.status == 200

    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reused.status == 401
    assert (await error_of(reused))["code"] == "token_revoked"
    # The whole session is gone: the pair issued from the reused token too.
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert (await error_of(resp))["code"] == "token_revoked"
    me = await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.status == 401
    assert (await error_of(me))["code"] == "token_revoked"


async def test_refresh_garbage_is_unauthorized(client):
    for token in ("nope", "abc.def", "x" * 150 + "." + "y"):
        resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert resp.status == 401
        assert (await error_of(resp))["code"] == "unauthorized"


async def test_refresh_with_cookie_requires_csrf_header(client):
    account = await register(client)
    csrf = client.session.cookie_jar.filter_cookies(client.make_url("/"))["ss_csrf"].value
    no_header = await client.post("/api/v1/auth/refresh")
    assert no_header.status == 401
    assert (await error_of(no_header))["code"] == "csrf_failed"
    wrong = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": "wrong"})
    assert wrong.status == 401
    ok = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert ok.status == 200, await ok.text()
    body = await ok.json()
    assert body["user"]["id"] == account["user"]["id"]


async def test_logout_revokes_access_token_at_once(client):
    account = await register(client)
    headers = bearer(account["access_token"])
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status == 204
    resp = await client.get("/api/v1/users/me", headers=headers)
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "token_revoked"
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]})
    assert resp.status == 401


async def test_logout_all_and_sessions(client):
    account = await register(client)
    second = await client.post("/api/v1/auth/login", json={
        "email": account["email"], "password": DEFAULT_PASSWORD},
        headers={"User-Agent": "second-device"})
    second_body = await second.json()
    resp = await client.get("/api/v1/auth/sessions", headers=bearer(account["access_token"]))
    sessions = (await resp.json())["items"]
    assert len(sessions) == 2
    assert sum(s["current"] for s in sessions) == 1
    assert any(s["user_agent"] == "second-device" for s in sessions)

    resp = await client.post("/api/v1/auth/logout-all", headers=bearer(second_body["access_token"]))
    assert resp.status == 204
    for token in (account["access_token"], second_body["access_token"]):
        resp = await client.get("/api/v1/users/me", headers=bearer(token))
        assert (await error_of(resp))["code"] == "token_revoked"


async def test_revoke_one_session(client):
    account = await register(client)
    other = await (await client.post("/api/v1/auth/login", json={
        "email": account["email"], "password": DEFAULT_PASSWORD})).json()
    sessions = (await (await client.get(
        "/api/v1/auth/sessions", headers=bearer(account["access_token"]))).json())["items"]
    target = next(s for s in sessions if not s["current"])
    resp = await client.delete(f"/api/v1/auth/sessions/{target['id']}",
                               headers=bearer(account["access_token"]))
    assert resp.status == 204
    assert (await client.get("/api/v1/users/me", headers=bearer(other["access_token"]))).status == 401
    assert (await client.get("/api/v1/users/me",
                             headers=bearer(account["access_token"]))).status == 200
    # Not mine / unknown: 404
    stranger = await register(client)
    resp = await client.delete(f"/api/v1/auth/sessions/{sessions[0]['id']}",
                               headers=bearer(stranger["access_token"]))
    assert resp.status == 404


async def test_access_token_expiry_uses_ttl(make_client):
    clock = FrozenClock()
    client = await make_client(clock=clock, access_token_ttl=60)
    account = await register(client)
    assert account["expires_in"] == 60
    clock.advance(30)
    assert (await client.get("/api/v1/users/me",
                             headers=bearer(account["access_token"]))).status == 200
    clock.advance(40)
    resp = await client.get("/api/v1/users/me", headers=bearer(account["access_token"]))
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "token_expired"
    # The refresh token still works and gives a fresh access token.
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]})
    assert resp.status == 200


async def test_missing_and_malformed_bearer(client):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer garbage"}):
        resp = await client.get("/api/v1/users/me", headers=headers)
        assert resp.status == 401
        assert (await error_of(resp))["code"] == "unauthorized"


async def test_concurrent_refresh_only_one_wins(client):
    account = await register(client)
    results = await asyncio.gather(*[
        client.post("/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]})
        for _ in range(4)
    ])
    statuses = sorted(r.status for r in results)
    assert statuses.count(200) == 1
    assert statuses.count(401) == 3


async def test_password_rehashed_at_login_when_parameters_change(make_client):
    from server.keys import USERS

    weak = await make_client(password_hash_time_cost=1, password_hash_memory_kib=1024)
    account = await register(weak)
    before = (await weak.app[USERS].get(account["user"]["id"]))["password_hash"]
    assert "t=1" in before and "m=1024" in before
    stronger = await make_client(password_hash_time_cost=2, password_hash_memory_kib=2048)
    resp = await stronger.post("/api/v1/auth/login",
                               json={"email": account["email"], "password": DEFAULT_PASSWORD})
    assert resp.status == 200
    after = (await stronger.app[USERS].get(account["user"]["id"]))["password_hash"]
    assert after.startswith("$argon2id$") and "t=2" in after and "m=2048" in after
    again = await stronger.post("/api/v1/auth/login",
                                json={"email": account["email"], "password": DEFAULT_PASSWORD})
    assert again.status == 200


async def test_operator_can_require_verified_email_for_actions(make_client, smtp_server):
    from tests.support.smtp import link_in
    from urllib.parse import parse_qs, urlsplit

    client = await make_client(smtp_url=smtp_server.url,
                               require_verified_email_for=["skills.create"])
    account = await register(client)
    listing = {"title": "Guitar for beginners", "description": "Chords and strumming.",
               "category": "music", "tags": ["guitar"], "level": "beginner", "mode": "online"}
    resp = await client.post("/api/v1/skills", json=listing,
                             headers=bearer(account["access_token"]))
    assert resp.status == 403
    assert (await error_of(resp))["code"] == "email_not_verified"
    # Everything else works unverified.
    assert (await client.get("/api/v1/users/me",
                             headers=bearer(account["access_token"]))).status == 200
    message = await smtp_server.wait_for(account["email"], "Confirm")
    token = parse_qs(urlsplit(link_in(message)).query)["token"][0]
    assert (await client.post("/api/v1/auth/verify-email", json={"token": token})).status == 200
    resp = await client.post("/api/v1/skills", json=listing,
                             headers=bearer(account["access_token"]))
    assert resp.status == 201, await resp.text()


async def test_sessions_are_cursor_paginated(client):
    account = await register(client)
    for _ in range(2):
        resp = await client.post("/api/v1/auth/login", json={
            "email": account["email"], "password": DEFAULT_PASSWORD})
        assert resp.status == 200
    headers = bearer(account["access_token"])
    first = await (await client.get("/api/v1/auth/sessions?limit=2", headers=headers)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = await (await client.get(
        f"/api/v1/auth/sessions?limit=2&cursor={first['next_cursor']}", headers=headers)).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    ids = [s["id"] for s in first["items"] + second["items"]]
    assert len(set(ids)) == 3 and sum(s["current"] for s in first["items"] + second["items"]) == 1
    everything = await (await client.get("/api/v1/auth/sessions", headers=headers)).json()
    assert [s["id"] for s in everything["items"]] == ids and everything["next_cursor"] is None
    resp = await client.get("/api/v1/auth/sessions?limit=101", headers=headers)
    assert (await error_of(resp))["code"] == "validation_error"
    resp = await client.get("/api/v1/auth/sessions?cursor=eyJpZCI6MX0", headers=headers)
    assert (await error_of(resp))["code"] == "validation_error"


async def test_a_logout_still_holds_after_a_restart_without_redis(make_client):
    """Single node, revocations in process memory: a new process (here: a new
    app on the same database) rebuilds them from the sessions collection."""
    before = await make_client()
    account = await register(before)
    headers = bearer(account["access_token"])
    assert (await before.post("/api/v1/auth/logout", headers=headers)).status == 204
    after_restart = await make_client()
    resp = await after_restart.get("/api/v1/users/me", headers=headers)
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "token_revoked"
