"""Marketplace helpers that act through the public API."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.admin import set_role_by_email
from server.keys import AUDIT, CLOCK, USERS
from tests.support.api import bearer, register


async def new_user(client: TestClient, name: str = "Test User", **profile: Any
                   ) -> dict[str, Any]:
    """Register; optionally PATCH the profile; return ``{id, token, headers, ...}``."""
    account = await register(client, display_name=name)
    headers = bearer(account["access_token"])
    if profile:
        resp = await client.patch("/api/v1/users/me", json=profile, headers=headers)
        assert resp.status == 200, await resp.text()
    return {**account, "id": account["user"]["id"], "token": account["access_token"],
            "headers": headers}


async def new_admin(client: TestClient, name: str = "Admin") -> dict[str, Any]:
    user = await new_user(client, name)
    app = client.app
    assert app is not None
    await set_role_by_email(users=app[USERS], audit=app[AUDIT], email=user["email"],
                            role="admin", clock=app[CLOCK])
    resp = await client.post("/api/v1/auth/login",
                             json={"email": user["email"], "password": user["password"]})
    assert resp.status == 200, await resp.text()
    token = (await resp.json())["access_token"]
    return {**user, "token": token, "headers": bearer(token)}


def listing_body(**overrides: Any) -> dict[str, Any]:
    body = {"title": "Python for beginners", "description": "Variables, loops, functions.",
            "category": "programming", "tags": ["python"], "level": "beginner",
            "mode": "online"}
    body.update(overrides)
    return body


async def create_listing(client: TestClient, user: dict[str, Any], **overrides: Any
                         ) -> dict[str, Any]:
    resp = await client.post("/api/v1/skills", json=listing_body(**overrides),
                             headers=user["headers"])
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def page_all(client: TestClient, url: str, headers: dict[str, str] | None = None,
                   **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        resp = await client.get(url, params=query, headers=headers or {})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return items


async def talk(client: TestClient, user: dict[str, Any], request_id: str,
               body: str = "Hello!") -> dict[str, Any]:
    """One chat message in the request's room, over Socket.IO: a request can
    be completed only once the two have talked since its acceptance."""
    from tests.support.realtime import SocketUser, new_client_id

    resp = await client.get(f"/api/v1/requests/{request_id}", headers=user["headers"])
    assert resp.status == 200, await resp.text()
    room_id = (await resp.json())["room_id"]
    sock = await SocketUser(str(client.make_url("")).rstrip("/"), user["token"]).connect()
    try:
        ack = await sock.call("message:send", {"room_id": room_id, "client_id": new_client_id(),
                                               "body": body})
    finally:
        await sock.close()
    assert "message" in ack, ack
    return ack["message"]
