from tests.support.api import bearer, register


async def test_register_then_me(client):
    account = await register(client, email="Smoke@Example.com")
    resp = await client.get("/api/v1/users/me", headers=bearer(account["access_token"]))
    assert resp.status == 200
    me = await resp.json()
    assert me["email"] == "smoke@example.com"
    assert resp.headers["X-Request-ID"]
