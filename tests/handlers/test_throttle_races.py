"""Every throttle holds under concurrency: requests sent all at once get no
more than the limit through (or verified), the rest are 429 in the
contract's shape with Retry-After (issue 8, item 3)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from server.keys import ACCOUNTS
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, register, unique_email
from tests.support.market import create_listing, listing_body

BURST = 40
WRONG = "definitely not the password"


def count_verifications(client: TestClient) -> list[int]:
    """Counts the argon2 verifications the app runs (a pass-through wrapper
    around the real Passwords.verify)."""
    passwords = client.app[ACCOUNTS]._passwords
    real_verify = passwords.verify
    calls = [0]

    async def verify(password_hash: Any, password: str) -> bool:
        calls[0] += 1
        return await real_verify(password_hash, password)

    passwords.verify = verify
    return calls


async def burst(n: int, send: Callable[[int], Awaitable[Any]]) -> Counter:
    """Send ``n`` requests at once; every 429 must be a proper refusal."""
    responses = await asyncio.gather(*(send(i) for i in range(n)))
    statuses: Counter = Counter()
    for resp in responses:
        statuses[resp.status] += 1
        if resp.status == 429:
            assert (await error_of(resp))["code"] == "rate_limited"
            assert int(resp.headers["Retry-After"]) >= 1
        assert resp.status < 500, await resp.text()
    return statuses


async def test_concurrent_wrong_current_passwords_are_not_all_verified(make_client):
    client = await make_client(login_account_limit="10/15minutes")
    user = await register(client)
    headers = bearer(user["access_token"])
    verified = count_verifications(client)

    def change(i: int) -> Awaitable[Any]:
        # The right password comes last, after 39 wrong ones.
        current = DEFAULT_PASSWORD if i == BURST - 1 else WRONG
        return client.post("/api/v1/auth/password/change", headers=headers, json={
            "current_password": current, "new_password": "a brand new passphrase"})

    statuses = await burst(BURST, change)
    assert verified[0] <= 10
    assert statuses[400] + statuses[204] <= 10, statuses
    assert statuses[429] >= BURST - 10, statuses
    assert statuses[204] == 0, "the right password got through a full failure window"
    # The window is full: even the right password is refused now.
    again = await client.post("/api/v1/auth/password/change", headers=headers, json={
        "current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"})
    assert again.status == 429


async def test_a_successful_password_change_resets_the_failures(make_client):
    client = await make_client(login_account_limit="3/15minutes")
    user = await register(client)
    headers = bearer(user["access_token"])
    for _ in range(2):
        wrong = await client.post("/api/v1/auth/password/change", headers=headers, json={
            "current_password": WRONG, "new_password": "a brand new passphrase"})
        assert wrong.status == 400
    ok = await client.post("/api/v1/auth/password/change", headers=headers, json={
        "current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"})
    assert ok.status == 204
    for _ in range(3):
        wrong = await client.post("/api/v1/auth/password/change", headers=headers, json={
            "current_password": WRONG, "new_password": "another new passphrase"})
        assert wrong.status == 400


async def test_concurrent_logins_to_one_account_verify_at_most_the_limit(make_client):
    client = await make_client(login_account_limit="10/15minutes")
    user = await register(client)
    verified = count_verifications(client)

    def login(i: int) -> Awaitable[Any]:
        password = DEFAULT_PASSWORD if i == BURST - 1 else WRONG
        return client.post("/api/v1/auth/login", json={"email": user["email"],
                                                        "password": password})

    statuses = await burst(BURST, login)
    assert verified[0] <= 10
    assert statuses[401] + statuses[200] <= 10, statuses
    assert statuses[200] == 0
    assert statuses[429] >= BURST - 10


async def test_concurrent_logins_from_one_ip_verify_at_most_the_ip_limit(make_client):
    client = await make_client(login_ip_limit="10/15minutes")
    verified = count_verifications(client)
    statuses = await burst(BURST, lambda i: client.post("/api/v1/auth/login", json={
        "email": unique_email(), "password": WRONG}))
    assert verified[0] <= 10
    assert statuses[401] <= 10 and statuses[429] >= BURST - 10, statuses


async def test_successful_logins_do_not_use_up_the_ip_limit(make_client):
    client = await make_client(login_ip_limit="3/15minutes")
    user = await register(client)
    # (one after the other: while being verified, a login holds a unit)
    for _ in range(8):
        ok = await client.post("/api/v1/auth/login", json={
            "email": user["email"], "password": DEFAULT_PASSWORD})
        assert ok.status == 200
    statuses = await burst(3, lambda i: client.post("/api/v1/auth/login", json={
        "email": user["email"], "password": WRONG}))
    assert statuses == Counter({401: 3})
    refused = await client.post("/api/v1/auth/login", json={
        "email": user["email"], "password": DEFAULT_PASSWORD})
    assert refused.status == 429


async def test_the_ip_limit_holds_across_nodes(make_client, redis_url):
    """Two nodes sharing Redis: a burst split between them still gets at
    most the limit verified (a per-node count of logins in flight did not)."""
    a = await make_client(login_ip_limit="10/15minutes", redis_url=redis_url)
    b = await make_client(login_ip_limit="10/15minutes", redis_url=redis_url)
    verified_a, verified_b = count_verifications(a), count_verifications(b)
    statuses = await burst(BURST, lambda i: (a if i % 2 else b).post("/api/v1/auth/login", json={
        "email": unique_email(), "password": WRONG}))
    assert verified_a[0] + verified_b[0] <= 10
    assert statuses[429] >= BURST - 10, statuses


async def test_concurrent_registrations_from_one_ip(make_client):
    client = await make_client(register_limit="5/hour")
    verified = count_verifications(client)
    statuses = await burst(12, lambda i: client.post("/api/v1/auth/register", json={
        "email": unique_email(), "password": DEFAULT_PASSWORD, "display_name": "Burst"}))
    assert statuses == Counter({201: 5, 429: 7})
    assert verified[0] == 0


async def test_concurrent_password_forgot_requests(make_client):
    client = await make_client(forgot_password_limit="3/hour")
    statuses = await burst(10, lambda i: client.post("/api/v1/auth/password/forgot",
                                                     json={"email": unique_email()}))
    assert statuses == Counter({202: 3, 429: 7})


async def test_concurrent_verification_resends(make_client):
    client = await make_client(forgot_password_limit="3/hour")
    user = await register(client)
    statuses = await burst(10, lambda i: client.post("/api/v1/auth/verify-email/resend",
                                                     headers=bearer(user["access_token"])))
    assert statuses == Counter({202: 3, 429: 7})


async def test_concurrent_room_creation(make_client):
    client = await make_client(room_create_limit="3/hour")
    me = await register(client)
    # (no other members: adding people needs a relation with them)
    statuses = await burst(10, lambda i: client.post(
        "/api/v1/rooms", headers=bearer(me["access_token"]),
        json={"type": "group", "name": f"Group {i}", "member_ids": []}))
    assert statuses == Counter({201: 3, 429: 7})


async def test_concurrent_listing_creation(make_client):
    client = await make_client(listing_create_limit="3/hour")
    me = await register(client)
    statuses = await burst(10, lambda i: client.post(
        "/api/v1/skills", headers=bearer(me["access_token"]),
        json=listing_body(title=f"Burst listing {i}")))
    assert statuses == Counter({201: 3, 429: 7})


async def test_concurrent_skill_requests(make_client):
    client = await make_client(request_create_limit="3/hour")
    teacher = await register(client)
    learner = await register(client)
    teacher["headers"] = bearer(teacher["access_token"])
    listings = [await create_listing(client, teacher, title=f"Listing {i}") for i in range(10)]
    statuses = await burst(10, lambda i: client.post(
        f"/api/v1/skills/{listings[i]['id']}/requests",
        headers=bearer(learner["access_token"]), json={"message": "Hello"}))
    assert statuses == Counter({201: 3, 429: 7})


async def test_concurrent_searches(make_client):
    client = await make_client(search_limit="3/minute")
    statuses = await burst(10, lambda i: client.get("/api/v1/skills",
                                                    params={"q": f"python {i}"}))
    assert statuses == Counter({200: 3, 429: 7})


async def test_refund_gives_back_one_unit_in_redis(make_client, redis_url):
    """The reservation's refund works on the shared storage too."""
    from server.keys import LIMITER

    client = await make_client(redis_url=redis_url)
    limiter = client.app[LIMITER]
    units = [await limiter.reserve("t", "2/minute", "k") for _ in range(2)]
    await units[0].refund()
    await limiter.reserve("t", "2/minute", "k")  # room again after the refund
    statuses = []
    for _ in range(2):
        try:
            await limiter.reserve("t", "2/minute", "k")
            statuses.append("ok")
        except Exception as exc:  # RateLimited
            statuses.append(type(exc).__name__)
    assert statuses == ["RateLimited", "RateLimited"]


async def test_concurrent_call_invites(make_client):
    """The socket limit too: a burst of call:invite gets at most the limit
    past the limiter; the rest are refused with rate_limited and retry_after."""
    from tests.support.realtime import SocketUser, register_user

    client = await make_client(call_invite_limit="3/minute")
    node = str(client.make_url("")).rstrip("/")
    alice = await register_user(node, "alice")
    callees = [await register_user(node, f"callee{i}") for i in range(10)]
    a = await SocketUser(node, alice["access_token"]).connect()
    try:
        acks = await asyncio.gather(*(a.call("call:invite", {"user_id": c["id"]})
                                      for c in callees))
    finally:
        await a.close()
    limited = [ack for ack in acks if not ack["ok"] and ack["error"]["code"] == "rate_limited"]
    assert len(limited) == 7, acks
    assert all(ack["error"]["details"]["retry_after"] >= 1 for ack in limited)
