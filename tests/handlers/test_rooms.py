"""POST /api/v1/rooms limits: nobody can fill other people's room lists."""

from __future__ import annotations

from tests.support.api import bearer, error_of, register


async def test_room_creation_is_limited_per_user_but_reopening_is_free(make_client):
    client = await make_client(room_create_limit="2/hour")
    me = await register(client)
    others = [await register(client) for _ in range(3)]
    headers = bearer(me["access_token"])

    first = await client.post("/api/v1/rooms", headers=headers,
                              json={"type": "direct", "user_id": others[0]["user"]["id"]})
    assert first.status == 201
    # A group needs a relation with each member: others[1] opens a room with me first.
    theirs = await client.post("/api/v1/rooms", headers=bearer(others[1]["access_token"]),
                               json={"type": "direct", "user_id": me["user"]["id"]})
    assert theirs.status == 201
    group = await client.post("/api/v1/rooms", headers=headers, json={
        "type": "group", "name": "Study group", "member_ids": [others[1]["user"]["id"]]})
    assert group.status == 201
    too_many = await client.post("/api/v1/rooms", headers=headers,
                                 json={"type": "direct", "user_id": others[2]["user"]["id"]})
    assert too_many.status == 429
    assert (await error_of(too_many))["code"] == "rate_limited"
    assert int(too_many.headers["Retry-After"]) > 0
    # Reopening an existing direct room answers 200 and is not limited.
    for _ in range(3):
        again = await client.post("/api/v1/rooms", headers=headers,
                                  json={"type": "direct", "user_id": others[0]["user"]["id"]})
        assert again.status == 200
        assert (await again.json())["id"] == (await first.json())["id"]
    # Another user has their own allowance.
    theirs = await client.post("/api/v1/rooms", headers=bearer(others[2]["access_token"]),
                               json={"type": "direct", "user_id": me["user"]["id"]})
    assert theirs.status == 201


def test_bad_rate_limit_setting_names_the_variable(make_settings):
    import pytest

    from server.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="SKILLSHARE_ROOM_CREATE_LIMIT"):
        load_settings(room_create_limit="lots")
