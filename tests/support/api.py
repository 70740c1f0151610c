"""Helpers that act through the public API, as a client would."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp.test_utils import TestClient

DEFAULT_PASSWORD = "correct horse battery staple"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.com"


async def register(
    client: TestClient, *, email: str | None = None, password: str = DEFAULT_PASSWORD,
    display_name: str = "Test User",
) -> dict[str, Any]:
    """Register and return the 201 body plus ``email`` and ``password``."""
    email = email or unique_email()
    resp = await client.post("/api/v1/auth/register", json={
        "email": email, "password": password, "display_name": display_name,
    })
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return {**body, "email": email, "password": password}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(resp: Any) -> dict[str, Any]:
    body = await resp.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details", "request_id"} <= set(body["error"]), body
    return body["error"]
