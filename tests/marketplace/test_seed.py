import json
import time

from server.seed import DEMO_EMAIL, DEMO_PASSWORD, run_seed
from tests.support.api import bearer
from tests.support.market import page_all


async def test_seed_fills_a_living_marketplace(make_settings, make_client):
    started = time.perf_counter()
    report = await run_seed(make_settings(), users=40, random_seed=7)
    assert time.perf_counter() - started < 20
    assert report.users == 40 and report.listings >= 40 and report.reviews > 0
    assert set(report.statuses) == {"pending", "accepted", "declined", "cancelled",
                                    "completed"}

    client = await make_client()
    resp = await client.post("/api/v1/auth/login",
                             json={"email": DEMO_EMAIL.format(n=1), "password": DEMO_PASSWORD})
    assert resp.status == 200, await resp.text()
    headers = bearer((await resp.json())["access_token"])

    listings = await page_all(client, "/api/v1/skills", limit="100")
    assert len(listings) == report.listings
    assert len({l["category"] for l in listings}) >= 6
    assert any(l["rating"]["count"] > 0 for l in listings)
    created = [l["created_at"] for l in listings]
    assert created == sorted(created, reverse=True)
    assert (await (await client.get("/api/v1/skills", params={"q": "guitar piano yoga"})).json()
            )["items"]
    requests = await page_all(client, "/api/v1/requests", headers)
    assert requests and all(r["room_id"] for r in requests
                            if r["status"] in ("accepted", "completed"))
    assert (await (await client.get("/api/v1/matches", headers=headers)).json())["items"]

    again = await run_seed(make_settings(), users=40, random_seed=7)
    assert again.users == 0 and again.skipped_users == 40


async def test_seed_signs_demo_people_in_for_load_tests(make_settings, make_client, tmp_path):
    tokens = tmp_path / "tokens.jsonl"
    await run_seed(make_settings(), users=12, random_seed=3, tokens_file=tokens)
    assert tokens.stat().st_mode & 0o777 == 0o600
    people = [json.loads(line) for line in tokens.read_text().splitlines()]
    assert [p["email"] for p in people] == [DEMO_EMAIL.format(n=n) for n in range(1, 13)]

    client = await make_client()
    for person in people:
        resp = await client.get("/api/v1/users/me", headers=bearer(person["access_token"]))
        assert resp.status == 200, await resp.text()
        me = await resp.json()
        assert (me["id"], me["email"]) == (person["user_id"], person["email"])
        rooms = await page_all(client, "/api/v1/rooms", bearer(person["access_token"]))
        assert sorted(r["id"] for r in rooms) == sorted(person["rooms"])
    assert any(p["rooms"] for p in people)
