from tests.support.api import error_of
from tests.support.market import create_listing, new_user, page_all


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
