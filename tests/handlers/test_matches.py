from server.clock import FrozenClock
from server.storage.ids import encode_cursor
from tests.support.api import error_of
from tests.support.market import create_listing, new_admin, new_user, page_all


def skills(*names, level="intermediate"):
    return [{"name": n, "level": level} for n in names]


async def test_mutual_swap_ranks_first_with_reasons(client):
    me = await new_user(client, "Me", skills_offered=skills("Spanish", "Cooking"),
                         skills_wanted=skills("python ", "Guitar"))
    swap = await new_user(client, "Swapper", skills_offered=skills("Python3"),
                          skills_wanted=skills("spanish"))
    teacher = await new_user(client, "Teacher", skills_offered=skills("PYTHON", "guitar"))
    learner = await new_user(client, "Learner", skills_wanted=skills("Cooking"))
    await new_user(client, "Unrelated", skills_offered=skills("Knitting"),
                   skills_wanted=skills("Chess"))

    items = await page_all(client, "/api/v1/matches", me["headers"])
    order = [i["user"]["display_name"] for i in items]
    assert order == ["Swapper", "Teacher", "Learner"]
    first = items[0]
    assert first["mutual"] is True
    assert first["they_teach"] == ["Python3"] and first["you_teach"] == ["Spanish"]
    assert first["reason"] == ("Skill swap: Swapper can teach you Python3 and wants to learn "
                               "Spanish from you.")
    assert items[1]["they_teach"] == ["PYTHON", "guitar"] and items[1]["mutual"] is False
    assert items[1]["reason"] == "Teacher can teach you PYTHON and guitar."
    assert items[2]["reason"] == "Learner wants to learn Cooking, which you offer."
    assert items[0]["score"] > items[1]["score"] > items[2]["score"]

    # paginated: one per page, same order, no repeats
    paged = await page_all(client, "/api/v1/matches", me["headers"], limit="1")
    assert [i["user"]["id"] for i in paged] == [i["user"]["id"] for i in items]
    assert {swap["id"], teacher["id"], learner["id"]} == {i["user"]["id"] for i in items}


async def test_listing_tags_count_as_offered_and_profile_edits_apply(client):
    me = await new_user(client, "Me", skills_wanted=skills("Node.js"))
    ada = await new_user(client, "Ada")
    assert await page_all(client, "/api/v1/matches", me["headers"]) == []
    await create_listing(client, ada, title="Backend JavaScript", tags=["nodejs"])
    items = await page_all(client, "/api/v1/matches", me["headers"])
    assert [i["user"]["id"] for i in items] == [ada["id"]]
    assert items[0]["they_teach"] == ["nodejs"]

    # changing my wanted skills changes the matches at once
    resp = await client.patch("/api/v1/users/me", json={"skills_wanted": skills("Chess")},
                              headers=me["headers"])
    assert resp.status == 200
    assert await page_all(client, "/api/v1/matches", me["headers"]) == []


async def test_banned_and_deleted_people_are_not_matched(client):
    me = await new_user(client, "Me", skills_wanted=skills("Go"))
    gone = await new_user(client, "Gone", skills_offered=skills("go"))
    assert len(await page_all(client, "/api/v1/matches", me["headers"])) == 1
    await client.delete("/api/v1/users/me", headers=gone["headers"])
    assert await page_all(client, "/api/v1/matches", me["headers"]) == []


async def test_matches_validation(client):
    me = await new_user(client, "Me")
    resp = await client.get("/api/v1/matches", params={"limit": "101"}, headers=me["headers"])
    assert (await error_of(resp))["code"] == "validation_error"
    assert (await client.get("/api/v1/matches")).status == 401


async def _page(client, user, cursor=None, limit="2"):
    params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    return await client.get("/api/v1/matches", params=params, headers=user["headers"])


async def _cursor_error(resp):
    assert resp.status == 400, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == ["cursor"]
    return error["details"][0]["message"]


async def test_pages_keep_the_first_page_ranking_while_profiles_change(client):
    me = await new_user(client, "Me", skills_offered=skills("Spanish", "Cooking"),
                         skills_wanted=skills("Python", "Guitar", "Chess"))
    people = [
        await new_user(client, "Swap", skills_offered=skills("Python"),
                       skills_wanted=skills("Spanish")),
        await new_user(client, "Both", skills_offered=skills("Python", "Guitar")),
        await new_user(client, "Chess", skills_offered=skills("Chess")),
        await new_user(client, "Guitar", skills_offered=skills("Guitar")),
        await new_user(client, "Cook", skills_wanted=skills("Cooking")),
        await new_user(client, "Lingo", skills_wanted=skills("Spanish")),
    ]
    ranked = await page_all(client, "/api/v1/matches", me["headers"], limit="100")
    assert {i["user"]["id"] for i in ranked} == {p["id"] for p in people}

    body = await (await _page(client, me)).json()
    assert set(body) == {"items", "next_cursor"} and body["next_cursor"]
    seen = list(body["items"])
    assert [i["user"]["id"] for i in seen] == [i["user"]["id"] for i in ranked[:2]]

    by_id = {p["id"]: p for p in people}
    last, second_last = ranked[-1], ranked[-2]
    # a lower-ranked person becomes a mutual swap (score rises above page 1) ...
    resp = await client.patch("/api/v1/users/me", headers=by_id[last["user"]["id"]]["headers"],
                              json={"skills_offered": skills("Python", "Guitar", "Chess"),
                                    "skills_wanted": skills("Spanish", "Cooking")})
    assert resp.status == 200
    # ... a page-2 person's score falls, and a new best match appears
    resp = await client.patch("/api/v1/users/me", json={"skills_offered": [],
                                                        "skills_wanted": skills("Cooking")},
                              headers=by_id[ranked[2]["user"]["id"]]["headers"])
    assert resp.status == 200
    newcomer = await new_user(client, "Newcomer", skills_offered=skills("Python", "Chess"),
                              skills_wanted=skills("Spanish", "Cooking"))
    live = await page_all(client, "/api/v1/matches", me["headers"], limit="100")
    assert live[0]["user"]["id"] in {last["user"]["id"], newcomer["id"]}, "live order changed"

    cursor = body["next_cursor"]
    while cursor:
        body = await (await _page(client, me, cursor)).json()
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        # the person still to come loses every match in between
        resp = await client.patch("/api/v1/users/me", json={"skills_wanted": skills("Knitting")},
                                  headers=by_id[second_last["user"]["id"]]["headers"])
        assert resp.status == 200
    ids = [i["user"]["id"] for i in seen]
    assert len(ids) == len(set(ids)), "no repeats"
    assert ids == [i["user"]["id"] for i in ranked], "no skips, the first page's order"
    assert newcomer["id"] not in ids, "people matching after page 1 stay out"
    assert seen == ranked, "scores and reasons as ranked on the first page"


async def test_pages_drop_people_banned_or_deleted_since_the_first_page(client):
    me = await new_user(client, "Me", skills_wanted=skills("Go"))
    people = [await new_user(client, f"Gopher {n}", skills_offered=skills("go"))
              for n in range(5)]
    admin = await new_admin(client)
    ranked = [i["user"]["id"] for i in await page_all(client, "/api/v1/matches", me["headers"])]
    body = await (await _page(client, me)).json()
    seen = [i["user"]["id"] for i in body["items"]]
    by_id = {p["id"]: p for p in people}
    resp = await client.post(f"/api/v1/admin/users/{ranked[2]}/ban", json={"reason": "spam"},
                             headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    resp = await client.delete("/api/v1/users/me", headers=by_id[ranked[4]]["headers"])
    assert resp.status == 204
    cursor = body["next_cursor"]
    while cursor:
        body = await (await _page(client, me, cursor)).json()
        seen.extend(i["user"]["id"] for i in body["items"])
        cursor = body["next_cursor"]
    assert seen == ranked[:2] + [ranked[3]]


async def test_matches_cursor_belongs_to_its_viewer_and_expires(make_client):
    clock = FrozenClock()
    client = await make_client(clock=clock, access_token_ttl=86400)
    me = await new_user(client, "Me", skills_wanted=skills("Go"))
    other = await new_user(client, "Other", skills_wanted=skills("Go"))
    for n in range(3):
        await new_user(client, f"Gopher {n}", skills_offered=skills("go"))
    cursor = (await (await _page(client, me)).json())["next_cursor"]
    assert cursor
    assert "another user" in await _cursor_error(await _page(client, other, cursor))
    assert (await _page(client, me, cursor)).status == 200
    for stale in (encode_cursor({"s": 3, "id": "0" * 24}),
                  encode_cursor({"k": "s", "id": "no-such-snapshot", "o": 2})):
        assert "expired" in await _cursor_error(await _page(client, me, stale))
    assert await _cursor_error(await _page(client, me, "!!bad")) == "Invalid cursor."

    clock.advance(31 * 60)
    message = await _cursor_error(await _page(client, me, cursor))
    assert message == "This cursor has expired; start again from the first page."
    body = await (await _page(client, me)).json()
    assert len(body["items"]) == 2 and body["next_cursor"], "page 1 starts afresh"
