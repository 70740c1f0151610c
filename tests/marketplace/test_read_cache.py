"""The read cache (server/read_cache.py): every write that changes a cached
public read shows at once on the node that wrote, and on another node
sharing the database and redis-server (the bus). The cache's TTL is set to
an hour here, so nothing in these tests passes by expiry."""

from __future__ import annotations

import asyncio

from server.clock import FrozenClock
from server.keys import CHAT, DB
from server.read_cache import LISTINGS, ReadCache
from tests.support.api import error_of
from tests.support.market import create_listing, new_admin, new_user, page_all, talk
from tests.support.metrics import sample

LONG_TTL = 3600.0


async def _get(client, url, headers=None, status=200):
    resp = await client.get(url, headers=headers or {})
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _newest(client, **params):
    resp = await client.get("/api/v1/skills", params={"limit": 20, **params})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def _warm(client, listing_id):
    """Read (and so cache) the public reads a listing appears in."""
    await _newest(client)
    await _newest(client, category="programming")
    await _get(client, f"/api/v1/skills/{listing_id}")
    await _get(client, f"/api/v1/skills/{listing_id}/reviews")


async def _completed_request(client, teacher, learner, listing):
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests",
                             json={"message": "Teach me"}, headers=learner["headers"])
    assert resp.status == 201, await resp.text()
    request_id = (await resp.json())["id"]
    for who, action in ((teacher, "accept"), (learner, "complete")):
        if action == "complete":
            await talk(client, learner, request_id)  # completing needs a talk since acceptance
        resp = await client.post(f"/api/v1/requests/{request_id}/{action}",
                                 headers=who["headers"])
        assert resp.status == 200, await resp.text()
    return request_id


async def test_listing_writes_show_in_cached_pages_at_once(make_client):
    client = await make_client(read_cache_ttl=LONG_TTL)
    ada = await new_user(client, "Ada")
    listing = await create_listing(client, ada, title="Python for beginners")
    await _warm(client, listing["id"])

    # create
    second = await create_listing(client, ada, title="Rust for beginners")
    assert [i["id"] for i in await _newest(client)] == [second["id"], listing["id"]]
    assert [i["id"] for i in await _newest(client, category="programming")] == [
        second["id"], listing["id"]]
    await _warm(client, listing["id"])

    # edit
    resp = await client.patch(f"/api/v1/skills/{listing['id']}", headers=ada["headers"],
                              json={"title": "Python, gently", "category": "data"})
    assert resp.status == 200, await resp.text()
    assert (await _get(client, f"/api/v1/skills/{listing['id']}"))["title"] == "Python, gently"
    assert [i["title"] for i in await _newest(client)] == ["Rust for beginners",
                                                          "Python, gently"]
    assert [i["id"] for i in await _newest(client, category="programming")] == [second["id"]]
    assert [i["id"] for i in await _newest(client, q="gently", sort="newest")] == [
        listing["id"]]

    # delete
    await _warm(client, listing["id"])
    resp = await client.delete(f"/api/v1/skills/{listing['id']}", headers=ada["headers"])
    assert resp.status == 204
    assert [i["id"] for i in await _newest(client)] == [second["id"]]
    resp = await client.get(f"/api/v1/skills/{listing['id']}")
    assert (await error_of(resp))["code"] == "not_found"
    resp = await client.get(f"/api/v1/skills/{listing['id']}/reviews")
    assert resp.status == 404


async def test_relevance_search_sees_new_and_edited_listings(make_client):
    client = await make_client(read_cache_ttl=LONG_TTL)
    ada = await new_user(client, "Ada")
    first = await create_listing(client, ada, title="Guitar basics", tags=["guitar"])
    assert [i["id"] for i in await _newest(client, q="guitar")] == [first["id"]]
    second = await create_listing(client, ada, title="Guitar chords", tags=["guitar"])
    assert {i["id"] for i in await _newest(client, q="guitar")} == {first["id"], second["id"]}
    resp = await client.patch(f"/api/v1/skills/{first['id']}", headers=ada["headers"],
                              json={"title": "Piano basics", "tags": ["piano"],
                                    "description": "Scales."})
    assert resp.status == 200
    assert [i["id"] for i in await _newest(client, q="guitar")] == [second["id"]]


async def test_moderation_hides_cached_listings(make_client):
    client = await make_client(read_cache_ttl=LONG_TTL)
    ada, admin = await new_user(client, "Ada"), await new_admin(client)
    listing = await create_listing(client, ada)
    await _warm(client, listing["id"])
    resp = await client.post(f"/api/v1/admin/skills/{listing['id']}/hide",
                             json={"reason": "Spam"}, headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    assert await _newest(client) == []
    await _get(client, f"/api/v1/skills/{listing['id']}", status=404)
    resp = await client.post(f"/api/v1/admin/skills/{listing['id']}/unhide",
                             json={"reason": "Fine"}, headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    assert [i["id"] for i in await _newest(client)] == [listing["id"]]


async def test_a_review_updates_the_cached_rating_and_reviews(make_client):
    client = await make_client(read_cache_ttl=LONG_TTL)
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    listing = await create_listing(client, ada)
    request_id = await _completed_request(client, ada, bob, listing)
    await _warm(client, listing["id"])
    resp = await client.post(f"/api/v1/requests/{request_id}/review",
                             json={"rating": 4, "comment": "Good"}, headers=bob["headers"])
    assert resp.status == 201, await resp.text()
    rating = {"average": 4.0, "count": 1}
    assert (await _get(client, f"/api/v1/skills/{listing['id']}"))["rating"] == rating
    assert (await _newest(client))[0]["rating"] == rating
    reviews = await page_all(client, f"/api/v1/skills/{listing['id']}/reviews")
    assert [(r["rating"], r["reviewer"]["display_name"]) for r in reviews] == [(4, "Bob")]

    # the reviewer's new name shows on the cached reviews page
    resp = await client.patch("/api/v1/users/me", json={"display_name": "Robert"},
                              headers=bob["headers"])
    assert resp.status == 200
    reviews = await page_all(client, f"/api/v1/skills/{listing['id']}/reviews")
    assert [r["reviewer"]["display_name"] for r in reviews] == ["Robert"]


async def test_profile_changes_and_bans_show_in_cached_reads(make_client):
    client = await make_client(read_cache_ttl=LONG_TTL)
    ada, admin = await new_user(client, "Ada"), await new_admin(client)
    listing = await create_listing(client, ada)
    await _warm(client, listing["id"])
    await _get(client, f"/api/v1/users/{ada['id']}")

    resp = await client.patch("/api/v1/users/me", json={"display_name": "Ada L.",
                                                        "bio": "Teaching Python."},
                              headers=ada["headers"])
    assert resp.status == 200
    profile = await _get(client, f"/api/v1/users/{ada['id']}")
    assert (profile["display_name"], profile["bio"]) == ("Ada L.", "Teaching Python.")
    assert (await _newest(client))[0]["owner"]["display_name"] == "Ada L."
    listing_now = await _get(client, f"/api/v1/skills/{listing['id']}")
    assert listing_now["owner"]["display_name"] == "Ada L."

    await _warm(client, listing["id"])
    resp = await client.post(f"/api/v1/admin/users/{ada['id']}/ban", json={"reason": "Spam"},
                             headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    await _get(client, f"/api/v1/users/{ada['id']}", status=404)
    assert await _newest(client) == []
    await _get(client, f"/api/v1/skills/{listing['id']}", status=404)

    resp = await client.post(f"/api/v1/admin/users/{ada['id']}/unban", json={"reason": "Ok"},
                             headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    assert (await _get(client, f"/api/v1/users/{ada['id']}"))["display_name"] == "Ada L."
    assert [i["id"] for i in await _newest(client)] == [listing["id"]]


async def test_a_deleted_account_leaves_the_cached_reads(make_client):
    client = await make_client(read_cache_ttl=LONG_TTL)
    ada = await new_user(client, "Ada")
    listing = await create_listing(client, ada)
    await _warm(client, listing["id"])
    await _get(client, f"/api/v1/users/{ada['id']}")
    resp = await client.delete("/api/v1/users/me", headers=ada["headers"])
    assert resp.status == 204
    await _get(client, f"/api/v1/users/{ada['id']}", status=404)
    assert await _newest(client) == []


async def test_skill_changes_show_in_cached_matches(make_client):
    client = await make_client(read_cache_ttl=LONG_TTL)
    ada = await new_user(client, "Ada", skills_wanted=[{"name": "Guitar", "level": "beginner"}])
    bob = await new_user(client, "Bob", skills_offered=[{"name": "Guitar", "level": "expert"}])
    cat = await new_user(client, "Cat")

    async def matched():
        return [m["user"]["id"] for m in
                await page_all(client, "/api/v1/matches", ada["headers"])]

    assert await matched() == [bob["id"]]
    # someone else's profile edit
    resp = await client.patch("/api/v1/users/me", headers=cat["headers"], json={
        "skills_offered": [{"name": "Guitar", "level": "advanced"}],
        "skills_wanted": [{"name": "Python", "level": "beginner"}]})
    assert resp.status == 200
    assert sorted(await matched()) == sorted([bob["id"], cat["id"]])
    # a listing's tags count as offered skills
    dan = await new_user(client, "Dan")
    await create_listing(client, dan, title="Strumming", tags=["guitar"])
    assert sorted(await matched()) == sorted([bob["id"], cat["id"], dan["id"]])
    # my own edit
    resp = await client.patch("/api/v1/users/me", headers=ada["headers"], json={
        "skills_wanted": [{"name": "Python", "level": "beginner"}]})
    assert resp.status == 200
    assert await matched() == []
    # a new name shows on a cached ranking
    resp = await client.patch("/api/v1/users/me", headers=ada["headers"], json={
        "skills_wanted": [{"name": "Guitar", "level": "beginner"}]})
    assert resp.status == 200
    await matched()
    resp = await client.patch("/api/v1/users/me", headers=bob["headers"],
                              json={"display_name": "Bobby"})
    assert resp.status == 200
    resp = await client.get("/api/v1/matches", headers=ada["headers"])
    names = {m["user"]["id"]: m["user"]["display_name"] for m in (await resp.json())["items"]}
    assert names[bob["id"]] == "Bobby"


async def test_writes_on_one_node_drop_cached_reads_on_another(make_client, redis_url):
    one = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    two = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    ada = await new_user(one, "Ada")
    listing = await create_listing(one, ada, title="Python for beginners")
    await _warm(two, listing["id"])
    await _get(two, f"/api/v1/users/{ada['id']}")
    assert [i["title"] for i in await _newest(two)] == ["Python for beginners"]

    resp = await one.patch(f"/api/v1/skills/{listing['id']}", headers=ada["headers"],
                           json={"title": "Python, gently"})
    assert resp.status == 200
    resp = await one.patch("/api/v1/users/me", json={"display_name": "Ada L."},
                           headers=ada["headers"])
    assert resp.status == 200

    async def seen_on_two():
        while True:
            listing_two = await _get(two, f"/api/v1/skills/{listing['id']}")
            page = await _newest(two)
            profile = await _get(two, f"/api/v1/users/{ada['id']}")
            if (listing_two["title"], page[0]["title"], page[0]["owner"]["display_name"],
                    profile["display_name"]) == ("Python, gently", "Python, gently", "Ada L.",
                                                 "Ada L."):
                return
            await asyncio.sleep(0.02)

    # The bus delivers in about a millisecond; the bound only stops a broken
    # bus from hanging the test (the entries would live an hour).
    await asyncio.wait_for(seen_on_two(), timeout=20)


async def test_a_read_in_flight_during_a_change_is_not_kept():
    cache = ReadCache(maxsize=100, ttl=LONG_TTL)
    release = asyncio.Event()
    loads = 0

    async def slow_old_value():
        nonlocal loads
        loads += 1
        await release.wait()
        return "old"

    reader = asyncio.create_task(cache.read(LISTINGS, "k", slow_old_value))
    await asyncio.sleep(0)
    cache.changed(LISTINGS)  # a write lands while the read is in flight
    release.set()
    assert await reader == "old"

    async def new_value():
        return "new"

    assert await cache.read(LISTINGS, "k", new_value) == "new"
    assert loads == 1


async def test_concurrent_misses_load_once():
    cache = ReadCache(maxsize=100, ttl=LONG_TTL)
    loads = 0

    async def load():
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return {"items": []}

    results = await asyncio.gather(*(cache.read(LISTINGS, "page", load) for _ in range(10)))
    assert loads == 1 and all(r is results[0] for r in results)


async def test_people_share_cached_candidates_and_see_every_skill_change(make_client):
    """Match candidates are cached per skill and shared between people:
    a second person's ranking uses what the first one's loaded, and every
    change of anyone's skills (profile, listing tags) shows for both."""
    client = await make_client(read_cache_ttl=LONG_TTL)
    wants_guitar = {"skills_wanted": [{"name": "Guitar", "level": "beginner"}]}
    ada = await new_user(client, "Ada", **wants_guitar)
    eve = await new_user(client, "Eve", **wants_guitar)
    bob = await new_user(client, "Bob", skills_offered=[{"name": "Guitar", "level": "expert"}])

    async def matched(who):
        return sorted(m["user"]["id"] for m in
                      await page_all(client, "/api/v1/matches", who["headers"]))

    assert await matched(ada) == [bob["id"]]
    assert await matched(eve) == [bob["id"]]
    # a new teacher, through a listing's tags
    dan = await new_user(client, "Dan")
    await create_listing(client, dan, title="Strumming", tags=["guitar"])
    assert await matched(ada) == sorted([bob["id"], dan["id"]])
    assert await matched(eve) == sorted([bob["id"], dan["id"]])
    # a teacher stops offering it
    resp = await client.patch("/api/v1/users/me", headers=bob["headers"], json={
        "skills_offered": [{"name": "Python", "level": "expert"}]})
    assert resp.status == 200
    assert await matched(eve) == [dan["id"]]
    assert await matched(ada) == [dan["id"]]


async def test_reading_matches_does_not_rewrite_an_unchanged_skill_index(make_client):
    """Ranking someone whose skills did not change writes nothing (it used
    to rewrite their skill index entry on every ranking)."""
    clock = FrozenClock()
    client = await make_client(clock=clock, read_cache_ttl=LONG_TTL)
    ada = await new_user(client, "Ada", skills_wanted=[{"name": "Guitar", "level": "beginner"}])
    await new_user(client, "Bob", skills_offered=[{"name": "Guitar", "level": "expert"}])
    await page_all(client, "/api/v1/matches", ada["headers"])
    index = client.app[DB]["skill_index"]
    before = (await index.find_one({"_id": ada["id"]}))["updated_at"]
    clock.advance(60)
    # someone else's change: Ada's cached ranking is dropped, she is ranked again
    cat = await new_user(client, "Cat")
    resp = await client.patch("/api/v1/users/me", headers=cat["headers"], json={
        "skills_offered": [{"name": "Guitar", "level": "advanced"}]})
    assert resp.status == 200
    assert cat["id"] in [m["user"]["id"] for m in
                         await page_all(client, "/api/v1/matches", ada["headers"])]
    assert (await index.find_one({"_id": ada["id"]}))["updated_at"] == before


async def test_a_skill_index_entry_in_another_order_is_not_rewritten(make_client):
    """The index is queried by ``$in``, so the order of its keys does not
    matter: an entry holding the same keys in another order (e.g. written
    by the seed, or listing tags read back in another order) is neither
    rewritten by a ranking nor drops everyone's cached candidates."""
    clock = FrozenClock()
    client = await make_client(clock=clock, read_cache_ttl=LONG_TTL)
    ada = await new_user(client, "Ada", skills_wanted=[{"name": "Guitar", "level": "beginner"}],
                         skills_offered=[{"name": "Python", "level": "expert"},
                                         {"name": "Baking", "level": "expert"}])
    await new_user(client, "Bob", skills_offered=[{"name": "Guitar", "level": "expert"}])
    index = client.app[DB]["skill_index"]
    entry = await index.find_one({"_id": ada["id"]})
    assert len(entry["offered"]) == 2
    await index.update_one({"_id": ada["id"]},
                           {"$set": {"offered": entry["offered"][::-1]}})
    clock.advance(60)
    await page_all(client, "/api/v1/matches", ada["headers"])
    after = await index.find_one({"_id": ada["id"]})
    assert after["updated_at"] == entry["updated_at"]
    assert after["offered"] == entry["offered"][::-1]


async def _search(client, headers=None, **params):
    resp = await client.get("/api/v1/skills", params={"q": "guitar", "limit": 2, **params},
                            headers=headers or {})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_relevance_search_is_stored_once_and_its_cursors_stay_personal(
        make_client, redis_url):
    """Everyone running the same search in the same window gets one stored
    ranking (not a snapshot write each), each with a cursor of their own:
    theirs pages, another's is refused. A listing created or edited on
    another node shows on the next first page at once."""
    one = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    two = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    ada, bob, cat = (await new_user(one, "Ada"), await new_user(one, "Bob"),
                     await new_user(one, "Cat"))
    for i in range(3):
        await create_listing(one, ada, title=f"Guitar lesson {i}", tags=["guitar"])
    snapshots = one.app[DB]["ranking_snapshots"]
    before = await snapshots.count_documents({})
    bobs = await _search(one, bob["headers"])
    cats = await _search(one, cat["headers"])
    anonymous = await _search(one)
    assert bobs["items"] == cats["items"] == anonymous["items"]
    assert await snapshots.count_documents({}) == before + 1
    assert len({bobs["next_cursor"], cats["next_cursor"], anonymous["next_cursor"]}) == 3

    rest = await _search(one, bob["headers"], cursor=bobs["next_cursor"])
    assert len(bobs["items"]) + len(rest["items"]) == 3 and rest["next_cursor"] is None
    resp = await one.get("/api/v1/skills", params={"q": "guitar", "limit": 2,
                                                   "cursor": bobs["next_cursor"]},
                         headers=cat["headers"])
    assert (await error_of(resp))["details"][0]["message"] == (
        "This cursor was issued to another user.")
    resp = await one.get("/api/v1/skills", params={"q": "guitar", "limit": 2,
                                                   "cursor": bobs["next_cursor"]})
    assert resp.status == 400
    assert (await _search(one, cat["headers"], cursor=anonymous["next_cursor"]))["items"]

    await _search(two, bob["headers"])  # cached on the other node too
    newest = await create_listing(one, ada, title="Guitar chords", tags=["guitar"])

    async def seen_on_two():
        while True:
            page = await _search(two, bob["headers"])  # the cached first page, limit 2
            ids = [i["id"] for i in page["items"]]
            while page["next_cursor"]:
                page = await _search(two, bob["headers"], cursor=page["next_cursor"])
                ids += [i["id"] for i in page["items"]]
            if newest["id"] in ids and len(ids) == 4:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(seen_on_two(), timeout=20)
    assert newest["id"] in [i["id"] for i in (await _search(one, cat["headers"], limit=10))["items"]]


async def test_a_persons_first_matches_page_is_stored_once_per_window(make_client, redis_url):
    """Asking for one's matches again within the window reuses the stored
    ranking (no snapshot write per first page) and its cursor still pages;
    a skill change on another node shows on the next first page at once."""
    one = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    two = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    ada = await new_user(one, "Ada", skills_wanted=[{"name": "Guitar", "level": "beginner"}])
    teachers = [await new_user(one, name, skills_offered=[{"name": "Guitar", "level": "expert"}])
                for name in ("Bob", "Cat", "Dan")]
    snapshots = one.app[DB]["ranking_snapshots"]

    async def all_matches(client):
        page = await _get(client, "/api/v1/matches?limit=2", ada["headers"])
        ids = [m["user"]["id"] for m in page["items"]]
        while page["next_cursor"]:
            page = await _get(client, f"/api/v1/matches?limit=2&cursor={page['next_cursor']}",
                              ada["headers"])
            ids += [m["user"]["id"] for m in page["items"]]
        return sorted(ids)

    expected = sorted(t["id"] for t in teachers)
    assert await all_matches(one) == expected
    assert await all_matches(one) == expected
    assert await snapshots.count_documents({"viewer_id": ada["id"]}) == 1
    assert await all_matches(two) == expected

    eve = await new_user(one, "Eve")
    resp = await one.patch("/api/v1/users/me", headers=eve["headers"], json={
        "skills_offered": [{"name": "Guitar", "level": "advanced"}]})
    assert resp.status == 200

    async def seen_on_two():
        while await all_matches(two) != sorted([*expected, eve["id"]]):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(seen_on_two(), timeout=20)
    assert await all_matches(one) == sorted([*expected, eve["id"]])


async def test_my_profile_shows_my_changes_at_once_on_every_node(make_client, redis_url):
    """GET /users/me reads the caller from the read cache: a profile edit
    made on another node shows there at once, and so does a ban."""
    one = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    two = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    ada, admin = await new_user(one, "Ada"), await new_admin(one)
    assert (await _get(two, "/api/v1/users/me", ada["headers"]))["display_name"] == "Ada"
    assert (await _get(one, "/api/v1/users/me", ada["headers"]))["display_name"] == "Ada"
    resp = await one.patch("/api/v1/users/me", headers=ada["headers"],
                           json={"display_name": "Ada L.", "timezone": "Europe/London"})
    assert resp.status == 200
    me = await _get(one, "/api/v1/users/me", ada["headers"])
    assert (me["display_name"], me["timezone"]) == ("Ada L.", "Europe/London")

    async def seen_on_two():
        while (await _get(two, "/api/v1/users/me", ada["headers"]))["timezone"] != (
                "Europe/London"):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(seen_on_two(), timeout=20)
    resp = await one.post(f"/api/v1/admin/users/{ada['id']}/ban", json={"reason": "Spam"},
                          headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    for client in (one, two):
        async def refused(client=client):
            while (await client.get("/api/v1/users/me", headers=ada["headers"])).status != 401:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(refused(), timeout=20)


async def _listing_finds(client) -> float:
    """The ``find`` commands this node sent to the listings collection so far."""
    metrics = await (await client.get("/metrics")).text()
    return sample(metrics, "skillshare_db_commands_total", command="find",
                   collection="listings", outcome="ok")


async def test_a_review_redraws_only_its_listing(make_client):
    """A review changes one listing's rating and reviews: the cached pages
    keep their ids and the other listings their cards (no listing query
    for them), while the reviewed listing shows its new rating at once."""
    # a frozen clock: the relevance search's first page stays in one window
    client = await make_client(read_cache_ttl=LONG_TTL, clock=FrozenClock())
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    reviewed = await create_listing(client, ada, title="Python for beginners")
    other = await create_listing(client, ada, title="Rust for beginners")
    request_id = await _completed_request(client, ada, bob, reviewed)
    await _warm(client, reviewed["id"])
    await _warm(client, other["id"])
    await _newest(client, q="beginners")
    resp = await client.post(f"/api/v1/requests/{request_id}/review",
                             json={"rating": 4, "comment": "Good"}, headers=bob["headers"])
    assert resp.status == 201, await resp.text()

    before = await _listing_finds(client)
    assert (await _get(client, f"/api/v1/skills/{other['id']}"))["title"] == "Rust for beginners"
    assert await _get(client, f"/api/v1/skills/{other['id']}/reviews") == {
        "items": [], "next_cursor": None}
    assert await _listing_finds(client) == before

    rating = {"average": 4.0, "count": 1}
    for page in (await _newest(client), await _newest(client, category="programming"),
                 await _newest(client, q="beginners")):
        assert [(i["id"], i["rating"]) for i in page] == [
            (other["id"], {"average": None, "count": 0}), (reviewed["id"], rating)]
    assert (await _get(client, f"/api/v1/skills/{reviewed['id']}"))["rating"] == rating
    reviews = await _get(client, f"/api/v1/skills/{reviewed['id']}/reviews")
    assert [r["rating"] for r in reviews["items"]] == [4]
    # one query: the reviewed listing's card, shared by the three pages and the listing
    assert await _listing_finds(client) == before + 1


async def test_a_new_name_shows_on_cached_pages_of_every_node(make_client, redis_url):
    """A display name change drops only that person: both nodes show the
    new name on their cached pages, search results and listings without
    querying the listings again."""
    clock = FrozenClock()  # the relevance search's first page stays in one window
    one = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url, clock=clock)
    two = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url, clock=clock)
    ada = await new_user(one, "Ada")
    listing = await create_listing(one, ada, title="Python for beginners")
    await create_listing(one, ada, title="Python, gently")

    async def owner_names(client):
        pages = [await _newest(client), await _newest(client, category="programming"),
                 await _newest(client, q="python"), await _newest(client, limit=1)]
        names = {i["owner"]["display_name"] for page in pages for i in page}
        names.add((await _get(client, f"/api/v1/skills/{listing['id']}"))["owner"][
            "display_name"])
        return names

    for client in (one, two):
        assert await owner_names(client) == {"Ada"}
    before_two = await _listing_finds(two)
    resp = await one.patch("/api/v1/users/me", json={"display_name": "Ada L."},
                           headers=ada["headers"])
    assert resp.status == 200
    before_one = await _listing_finds(one)  # (the edit itself reads her listings' tags)
    assert await owner_names(one) == {"Ada L."}
    assert await _listing_finds(one) == before_one

    async def seen_on_two():
        while await owner_names(two) != {"Ada L."}:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(seen_on_two(), timeout=20)
    assert await _listing_finds(two) == before_two


async def test_an_edit_that_moves_no_listing_keeps_the_cached_pages(make_client):
    """An edit of what only the card shows (here: a description with the
    same words) redraws that card; the pages keep their ids."""
    client = await make_client(read_cache_ttl=LONG_TTL)
    ada = await new_user(client, "Ada")
    listing = await create_listing(client, ada, description="Loops, variables, functions.")
    await _warm(client, listing["id"])
    resp = await client.patch(f"/api/v1/skills/{listing['id']}", headers=ada["headers"],
                              json={"description": "Variables, loops, functions!"})
    assert resp.status == 200, await resp.text()
    metrics = await (await client.get("/metrics")).text()
    hits = sample(metrics, "skillshare_read_cache_requests_total",
                   namespace="listing_pages", result="hit")
    assert [i["description"] for i in await _newest(client)] == ["Variables, loops, functions!"]
    metrics = await (await client.get("/metrics")).text()
    assert sample(metrics, "skillshare_read_cache_requests_total",
                   namespace="listing_pages", result="hit") == hits + 1


async def test_a_review_on_one_node_shows_on_the_others_cached_reads(make_client, redis_url):
    one = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    two = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    ada, bob = await new_user(one, "Ada"), await new_user(one, "Bob")
    listing = await create_listing(one, ada)
    request_id = await _completed_request(one, ada, bob, listing)
    await _warm(two, listing["id"])
    resp = await one.post(f"/api/v1/requests/{request_id}/review",
                          json={"rating": 5, "comment": "Great"}, headers=bob["headers"])
    assert resp.status == 201, await resp.text()
    rating = {"average": 5.0, "count": 1}

    async def seen_on_two():
        while True:
            page = await _newest(two)
            shown = await _get(two, f"/api/v1/skills/{listing['id']}")
            reviews = await _get(two, f"/api/v1/skills/{listing['id']}/reviews")
            if (page[0]["rating"] == shown["rating"] == rating
                    and [r["rating"] for r in reviews["items"]] == [5]):
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(seen_on_two(), timeout=20)

async def _cache_hits(client, namespace):
    text = await (await client.get("/metrics")).text()
    line = f'skillshare_read_cache_requests_total{{namespace="{namespace}",result="hit"}} '
    return sum(float(row[len(line):]) for row in text.splitlines() if row.startswith(line))


async def test_my_requests_are_cached_and_every_write_of_either_party_shows_on_every_node(
        make_client, redis_url):
    """A first page of GET /requests comes from the read cache; a request
    created, accepted, completed or reviewed on one node shows on the
    other at once, for both parties, whatever the role and status filter."""
    one = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    two = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    ada, bob = await new_user(one, "Ada"), await new_user(one, "Bob")
    listing = await create_listing(one, bob, title="Guitar for beginners")

    async def seen(client, user, **params):
        page = await _get(client, "/api/v1/requests?" + "&".join(
            f"{k}={v}" for k, v in params.items()), user["headers"])
        return [(r["id"], r["status"], r["reviewed"]) for r in page["items"]]

    async def until(client, user, expected, **params):
        async def wait():
            while await seen(client, user, **params) != expected:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(wait(), timeout=20)

    views = [(ada, {}), (ada, {"role": "outgoing"}), (bob, {}), (bob, {"role": "incoming"}),
             (bob, {"status": "accepted"}), (ada, {"status": "pending"})]
    for user, params in views:  # cached on both nodes
        for client in (one, two):
            assert await seen(client, user, **params) == []
    assert await seen(two, ada) == []
    assert await _cache_hits(two, "requests") >= 1

    resp = await one.post(f"/api/v1/skills/{listing['id']}/requests",
                          json={"message": "Teach me"}, headers=ada["headers"])
    assert resp.status == 201, await resp.text()
    request_id = (await resp.json())["id"]
    for client in (two, one):
        await until(client, ada, [(request_id, "pending", False)])
        await until(client, bob, [(request_id, "pending", False)], role="incoming")
        await until(client, ada, [(request_id, "pending", False)], status="pending")
        assert await seen(client, bob, role="outgoing") == []

    resp = await one.post(f"/api/v1/requests/{request_id}/accept", headers=bob["headers"])
    assert resp.status == 200, await resp.text()
    for client in (two, one):
        await until(client, ada, [(request_id, "accepted", False)], role="outgoing")
        await until(client, bob, [(request_id, "accepted", False)], status="accepted")
        assert await seen(client, ada, status="pending") == []

    await talk(one, ada, request_id)
    resp = await one.post(f"/api/v1/requests/{request_id}/complete", headers=ada["headers"])
    assert resp.status == 200, await resp.text()
    await until(two, bob, [(request_id, "completed", False)])
    resp = await one.post(f"/api/v1/requests/{request_id}/review", headers=ada["headers"],
                          json={"rating": 5, "comment": "Great"})
    assert resp.status == 201, await resp.text()
    for client in (two, one):
        await until(client, ada, [(request_id, "completed", True)])
        await until(client, bob, [(request_id, "completed", True)], role="incoming")


async def _marker_finds(client) -> float:
    resp = await client.get("/metrics")
    return sample(await resp.text(), "skillshare_db_commands_total", collection="read_markers",
                  command="find", outcome="ok")


async def test_a_read_on_one_node_shows_in_rooms_on_the_other(make_client, redis_url):
    """GET /rooms reads each room's read marker from the read cache: the
    owner reading the room on another node moves it there at once."""
    one = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    two = await make_client(read_cache_ttl=LONG_TTL, redis_url=redis_url)
    ada, bob = await new_user(one, "Ada"), await new_user(one, "Bob")
    listing = await create_listing(one, bob, title="Guitar")
    resp = await one.post(f"/api/v1/skills/{listing['id']}/requests", json={"message": "hi"},
                          headers=ada["headers"])
    assert resp.status == 201, await resp.text()
    request_id = (await resp.json())["id"]
    resp = await one.post(f"/api/v1/requests/{request_id}/accept", headers=bob["headers"])
    assert resp.status == 200, await resp.text()
    message = await talk(one, bob, request_id)

    async def room_on(client):
        rooms = (await _get(client, "/api/v1/rooms", ada["headers"]))["items"]
        return next(r for r in rooms if r["id"] == message["room_id"])

    room = await room_on(two)
    assert (room["read_seq"], room["unread_count"]) == (0, 1)
    finds = await _marker_finds(two)
    assert (await room_on(two))["read_seq"] == 0
    assert await _marker_finds(two) == finds, "the marker came from the cache"

    await one.app[CHAT].mark_read(ada["id"], message["room_id"], message["seq"])

    async def read_on_two():
        while (room := await room_on(two))["read_seq"] != message["seq"]:
            await asyncio.sleep(0.02)
        return room

    room = await asyncio.wait_for(read_on_two(), timeout=20)
    assert room["unread_count"] == 0
    assert (await room_on(one))["read_seq"] == message["seq"]
