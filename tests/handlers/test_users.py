"""/api/v1/users: my profile, deletion, export, public profiles."""

from __future__ import annotations

from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, register


async def test_patch_me_and_public_profile_has_no_email(client):
    account = await register(client)
    headers = bearer(account["access_token"])
    resp = await client.patch("/api/v1/users/me", headers=headers, json={
        "display_name": "Ada L.", "bio": "I teach maths", "timezone": "Europe/London",
        "languages": ["en", "fr", "en"],
        "skills_offered": [{"name": "Mathematics", "level": "expert"}],
        "skills_wanted": [{"name": "Python", "level": "beginner"}],
    })
    assert resp.status == 200, await resp.text()
    me = await resp.json()
    assert me["display_name"] == "Ada L."
    assert me["languages"] == ["en", "fr"]
    assert me["skills_offered"] == [{"name": "Mathematics", "level": "expert"}]

    public = await client.get(f"/api/v1/users/{account['user']['id']}")
    assert public.status == 200
    profile = await public.json()
    assert profile["display_name"] == "Ada L."
    assert "email" not in profile and "email_verified" not in profile


async def test_patch_me_validation(client):
    account = await register(client)
    headers = bearer(account["access_token"])
    cases = [
        {"timezone": "Mars/Olympus"},
        {"display_name": ""},
        {"display_name": "x" * 81},
        {"bio": "x" * 2001},
        {"skills_offered": [{"name": "Python", "level": "godlike"}]},
        {"skills_offered": [{"name": "s", "level": "beginner"}] * 51},
        {"email": "new@example.com"},
        {"role": "admin"},
    ]
    for patch in cases:
        resp = await client.patch("/api/v1/users/me", headers=headers, json=patch)
        assert resp.status == 400, patch
        assert (await error_of(resp))["code"] == "validation_error"
    me = await (await client.get("/api/v1/users/me", headers=headers)).json()
    assert me["role"] == "user"


async def test_unknown_user_is_404(client):
    resp = await client.get("/api/v1/users/000000000000000000000000")
    assert resp.status == 404
    assert (await error_of(resp))["code"] == "not_found"


async def test_delete_me_blocks_login_and_hides_profile(client):
    account = await register(client)
    headers = bearer(account["access_token"])
    assert (await client.delete("/api/v1/users/me", headers=headers)).status == 204
    assert (await client.get("/api/v1/users/me", headers=headers)).status == 401
    login = await client.post("/api/v1/auth/login",
                              json={"email": account["email"], "password": DEFAULT_PASSWORD})
    assert login.status == 401
    assert (await error_of(login))["code"] == "invalid_credentials"
    public = await client.get(f"/api/v1/users/{account['user']['id']}")
    assert public.status == 404
    # The address is free for a new account.
    again = await register(client, email=account["email"])
    assert again["user"]["id"] != account["user"]["id"]


async def test_export_contains_my_data_but_no_secrets(client):
    account = await register(client)
    headers = bearer(account["access_token"])
    await client.patch("/api/v1/users/me", headers=headers, json={"bio": "hello"})
    resp = await client.get("/api/v1/users/me/export", headers=headers)
    assert resp.status == 200
    assert "attachment" in resp.headers["Content-Disposition"]
    data = await resp.json()
    assert data["account"]["email"] == account["email"]
    assert data["account"]["bio"] == "hello"
    assert len(data["sessions"]) == 1
    assert "_id" not in data["sessions"][0] and data["sessions"][0]["id"]
    text = await resp.text()
    assert "password_hash" not in text and "refresh_hash" not in text


async def test_an_empty_block_list_is_an_empty_page(client):
    """Found by the schemathesis run: someone who blocked nobody got a 500
    (the user lookup asked the driver for a list of length 0)."""
    from tests.support.api import bearer, register

    user = await register(client)
    resp = await client.get("/api/v1/users/me/blocks", headers=bearer(user["access_token"]))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"items": [], "next_cursor": None}
