import asyncio

from server.clock import FrozenClock
from server.storage.ids import encode_cursor
from tests.support.api import error_of
from tests.support.market import create_listing, listing_body, new_admin, new_user, page_all


async def test_create_read_update_delete_listing(client):
    ada = await new_user(client, "Ada")
    created = await create_listing(
        client, ada, title="  Pandas for data analysis ",
        tags=["  Data Science ", "data_science", "Pandas", "PANDAS"],
    )
    assert created["title"] == "Pandas for data analysis"
    assert created["tags"] == ["data-science", "pandas"]
    assert created["owner"] == {"id": ada["id"], "display_name": "Ada"}
    assert created["rating"] == {"average": None, "count": 0}
    assert created["status"] == "active"

    resp = await client.get(f"/api/v1/skills/{created['id']}")
    assert resp.status == 200
    assert (await resp.json())["id"] == created["id"]

    resp = await client.patch(f"/api/v1/skills/{created['id']}", headers=ada["headers"],
                              json={"level": "advanced", "tags": ["numpy"]})
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert patched["level"] == "advanced" and patched["tags"] == ["numpy"]

    resp = await client.get("/api/v1/skills", params={"q": "numpy"})
    assert [i["id"] for i in (await resp.json())["items"]] == [created["id"]]

    resp = await client.delete(f"/api/v1/skills/{created['id']}", headers=ada["headers"])
    assert resp.status == 204
    resp = await client.get(f"/api/v1/skills/{created['id']}")
    assert (await error_of(resp))["code"] == "not_found"
    resp = await client.get("/api/v1/skills")
    assert (await resp.json())["items"] == []


async def test_listing_validation(client):
    ada = await new_user(client)
    cases = [
        ({"title": "ab"}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"description": "x" * 4001}, "description"),
        ({"category": "astrology"}, "category"),
        ({"level": "guru"}, "level"),
        ({"mode": "telepathy"}, "mode"),
        ({"tags": [f"tag{i}" for i in range(11)]}, "tags"),
        ({"title": "bad\x00title"}, "title"),
        ({"owner_id": "someone"}, "owner_id"),
    ]
    for override, field in cases:
        resp = await client.post("/api/v1/skills", json=listing_body(**override),
                                 headers=ada["headers"])
        assert resp.status == 400, override
        error = await error_of(resp)
        assert error["code"] == "validation_error"
        assert any(d["field"].startswith(field) for d in error["details"]), error
    resp = await client.post("/api/v1/skills", json=listing_body())
    assert resp.status == 401
    resp = await client.post("/api/v1/skills", data="title=x", headers={
        **ada["headers"], "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    resp = await client.get("/api/v1/skills", params={"limit": "0"})
    assert (await error_of(resp))["code"] == "validation_error"
    resp = await client.get("/api/v1/skills", params={"cursor": "!!not-a-cursor"})
    assert (await error_of(resp))["code"] == "validation_error"


async def test_only_owner_edits_and_deletes(client):
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    listing = await create_listing(client, ada)
    resp = await client.patch(f"/api/v1/skills/{listing['id']}", json={"title": "Mine now"},
                              headers=bob["headers"])
    assert (await error_of(resp))["code"] == "forbidden"
    resp = await client.delete(f"/api/v1/skills/{listing['id']}", headers=bob["headers"])
    assert resp.status == 403
    resp = await client.get("/api/v1/skills/000000000000000000000000")
    assert resp.status == 404
    resp = await client.get("/api/v1/skills/not-an-id")
    assert resp.status == 404


async def test_categories_and_filters(client):
    resp = await client.get("/api/v1/skills/categories")
    categories = [c["id"] for c in (await resp.json())["items"]]
    assert "programming" in categories and "music" in categories

    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    py = await create_listing(client, ada, tags=["python"], level="beginner")
    guitar = await create_listing(client, bob, title="Jazz guitar", category="music",
                                  tags=["guitar", "jazz"], level="all", mode="in_person")
    spanish = await create_listing(client, bob, title="Conversational Spanish",
                                   category="languages", tags=["spanish"], level="advanced",
                                   mode="hybrid")

    async def ids(**params):
        resp = await client.get("/api/v1/skills", params=params)
        assert resp.status == 200, await resp.text()
        return [i["id"] for i in (await resp.json())["items"]]

    assert await ids() == [spanish["id"], guitar["id"], py["id"]]
    assert await ids(category="music") == [guitar["id"]]
    assert await ids(tag="  JAZZ ") == [guitar["id"]]
    assert await ids(owner=bob["id"]) == [spanish["id"], guitar["id"]]
    # "all levels" listings suit every level; hybrid suits both modes
    assert await ids(level="beginner") == [guitar["id"], py["id"]]
    assert await ids(mode="in_person") == [spanish["id"], guitar["id"]]
    assert await ids(owner=bob["id"], category="languages") == [spanish["id"]]


async def test_newest_pagination_under_concurrent_inserts(make_client):
    client = await make_client(listing_create_limit="1000/hour")
    ada = await new_user(client)
    before = [await create_listing(client, ada, title=f"Lesson {i}") for i in range(23)]
    seen: list[str] = []
    cursor = None
    inserted = 0
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/api/v1/skills", params=params)
        body = await resp.json()
        seen.extend(i["id"] for i in body["items"])
        # others keep publishing while we page
        await asyncio.gather(*(create_listing(client, ada, title=f"New {inserted + k}")
                               for k in range(3)))
        inserted += 3
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)), "no repeats"
    assert seen == [l["id"] for l in reversed(before)], "no gaps, newest first"


async def test_relevance_pagination_is_stable(client):
    ada = await new_user(client)
    for i in range(12):
        await create_listing(client, ada, title=f"Guitar lesson {i}" if i % 2 else f"Lesson {i}",
                             description="guitar" if i % 3 == 0 else "music",
                             category="music", tags=["guitar"] if i % 4 == 0 else [])
    full = await page_all(client, "/api/v1/skills", q="guitar", limit="50")
    scores = [i["score"] for i in full]
    assert scores == sorted(scores, reverse=True)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": "guitar", "limit": "3", **({"cursor": cursor} if cursor else {})}
        body = await (await client.get("/api/v1/skills", params=params)).json()
        seen.extend(i["id"] for i in body["items"])
        await create_listing(client, ada, title="Guitar guitar guitar", category="music")
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [i["id"] for i in full]


async def _guitar_page(client, cursor=None, headers=None, q="guitar", limit="3"):
    params = {"q": q, "limit": limit, **({"cursor": cursor} if cursor else {})}
    return await client.get("/api/v1/skills", params=params, headers=headers or {})


async def test_relevance_pages_keep_the_first_page_ranking_while_listings_change(client):
    ada = await new_user(client)
    for i in range(10):
        await create_listing(client, ada, title=f"Guitar lesson {i}" if i % 2 else f"Lesson {i}",
                             description="guitar" if i % 3 == 0 else "music and guitar",
                             category="music", tags=["guitar"] if i % 4 == 0 else [])
    ranked = await page_all(client, "/api/v1/skills", q="guitar", limit="100")
    assert len(ranked) == 10

    resp = await _guitar_page(client)
    body = await resp.json()
    first = body["items"]
    assert [i["id"] for i in first] == [i["id"] for i in ranked[:3]]
    assert set(body) == {"items", "next_cursor"} and body["next_cursor"]

    # Between pages: the last-ranked listing becomes the best match, a page-1
    # listing drops to the bottom, and brand new better listings appear.
    promoted, demoted = ranked[-1], ranked[0]
    resp = await client.patch(f"/api/v1/skills/{promoted['id']}", headers=ada["headers"],
                              json={"title": "Guitar guitar guitar", "tags": ["guitar"]})
    assert resp.status == 200
    resp = await client.patch(f"/api/v1/skills/{demoted['id']}", headers=ada["headers"],
                              json={"title": "Music theory", "tags": [],
                                    "description": "some guitar"})
    assert resp.status == 200
    new = [await create_listing(client, ada, title="Guitar for everyone", tags=["guitar"],
                                category="music")]
    live = await page_all(client, "/api/v1/skills", q="guitar", limit="100")
    assert live[0]["id"] in {promoted["id"], new[0]["id"]}, "the live ranking did change"

    seen = list(first)
    cursor = body["next_cursor"]
    while cursor:
        body = await (await _guitar_page(client, cursor)).json()
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if body["items"]:  # keep promoting what the next page would show
            nxt = ranked[len(seen)] if len(seen) < len(ranked) else None
            if nxt is not None:
                await client.patch(f"/api/v1/skills/{nxt['id']}", headers=ada["headers"],
                                   json={"title": "Guitar guitar lesson", "tags": ["guitar"]})
            new.append(await create_listing(client, ada, title="Guitar guitar guitar",
                                            category="music"))
    ids = [i["id"] for i in seen]
    assert len(ids) == len(set(ids)), "no repeats"
    assert ids == [i["id"] for i in ranked], "no skips, the first page's order"
    assert not {n["id"] for n in new} & set(ids), "listings created after page 1 stay out"
    assert [i["score"] for i in seen] == [i["score"] for i in ranked], "scores as ranked then"
    promoted_now = next(i for i in seen if i["id"] == promoted["id"])
    assert promoted_now["title"].startswith("Guitar guitar"), "documents themselves are live"


async def test_relevance_pages_drop_listings_gone_since_the_first_page(client):
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    admin = await new_admin(client)
    bobs = [await create_listing(client, bob, title=f"Guitar class {i}", category="music")
            for i in range(2)]
    mine = [await create_listing(client, ada, title=f"Guitar lesson {i}", category="music")
            for i in range(6)]
    ranked = [i["id"] for i in await page_all(client, "/api/v1/skills", q="guitar")]
    assert ranked == [m["id"] for m in reversed(mine)] + [b["id"] for b in reversed(bobs)]
    body = await (await _guitar_page(client, limit="2")).json()
    seen = [i["id"] for i in body["items"]]
    deleted, hidden = ranked[2], ranked[3]
    resp = await client.delete(f"/api/v1/skills/{deleted}", headers=ada["headers"])
    assert resp.status == 204
    resp = await client.post(f"/api/v1/admin/skills/{hidden}/hide", json={"reason": "spam"},
                             headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/api/v1/admin/users/{bob['id']}/ban", json={"reason": "spam"},
                             headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    cursor = body["next_cursor"]
    while cursor:
        body = await (await _guitar_page(client, cursor, limit="2")).json()
        seen.extend(i["id"] for i in body["items"])
        cursor = body["next_cursor"]
    assert seen == ranked[:2] + ranked[4:6], "deleted, hidden and banned owners' are gone"


async def test_relevance_cursor_is_per_viewer_per_query_and_expires(make_client):
    clock = FrozenClock()
    client = await make_client(clock=clock, access_token_ttl=86400)
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    for i in range(5):
        await create_listing(client, ada, title=f"Guitar lesson {i}", category="music")

    async def cursor_error(resp):
        assert resp.status == 400
        error = await error_of(resp)
        assert error["code"] == "validation_error"
        assert [d["field"] for d in error["details"]] == ["cursor"]
        return error["details"][0]["message"]

    adas = (await (await _guitar_page(client, headers=ada["headers"])).json())["next_cursor"]
    assert "another user" in await cursor_error(await _guitar_page(client, adas, bob["headers"]))
    assert "another user" in await cursor_error(await _guitar_page(client, adas))
    assert "different" in await cursor_error(
        await _guitar_page(client, adas, ada["headers"], q="guitar lesson"))
    assert (await _guitar_page(client, adas, ada["headers"])).status == 200

    anonymous = (await (await _guitar_page(client)).json())["next_cursor"]
    resp = await _guitar_page(client, anonymous, bob["headers"])
    assert resp.status == 200, "an anonymous snapshot is readable with its cursor"

    # a (score, id) cursor from before snapshots, or an unknown snapshot
    for stale in (encode_cursor({"k": "r", "s": 3, "id": "0" * 24}),
                  encode_cursor({"k": "s", "id": "no-such-snapshot", "o": 3})):
        assert "expired" in await cursor_error(await _guitar_page(client, stale))

    clock.advance(29 * 60)
    assert (await _guitar_page(client, adas, ada["headers"])).status == 200
    clock.advance(2 * 60)
    message = await cursor_error(await _guitar_page(client, adas, ada["headers"]))
    assert message == "This cursor has expired; start again from the first page."
    assert "expired" in await cursor_error(await _guitar_page(client, anonymous))
    resp = await _guitar_page(client)
    assert resp.status == 200 and (await resp.json())["next_cursor"], "page 1 starts afresh"


async def test_search_relevance_on_corpus(client):
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    corpus = {
        "py_title": dict(title="Python programming from scratch", tags=["programming"],
                         description="Start coding today."),
        "py_tag": dict(title="Automate boring office work", tags=["python", "excel"],
                       description="Scripts that save you hours."),
        "py_desc": dict(title="Data visualisation", tags=["charts"],
                        description="We use Python and matplotlib for charts."),
        "py_data": dict(title="Python for data science", tags=["python", "data-science"],
                        description="Pandas and notebooks.", category="data"),
        "guitar": dict(title="Fingerstyle guitar", tags=["guitar"], category="music",
                       description="Arpeggios and Travis picking."),
        "cafe": dict(title="Café latte art", tags=["coffee"], category="cooking",
                     description="Milk steaming and pouring."),
    }
    ids = {}
    for n, (key, fields) in enumerate(corpus.items()):
        owner = ada if n % 2 else bob
        ids[key] = (await create_listing(client, owner, **fields))["id"]
    names = {v: k for k, v in ids.items()}

    async def search(q, **params):
        resp = await client.get("/api/v1/skills", params={"q": q, **params})
        assert resp.status == 200, await resp.text()
        return [names[i["id"]] for i in (await resp.json())["items"]]

    ranked = await search("python")
    assert ranked[:2] == ["py_data", "py_title"]  # title hits first, newest breaks the tie
    assert ranked[2:] == ["py_tag", "py_desc"]  # then tag, then description
    assert (await search("python data science"))[0] == "py_data"
    assert await search("PYTHON3") == ranked  # case and version folded
    assert await search("cafe") == ["cafe"]  # accents folded
    assert await search("lattes") == ["cafe"]  # plural folded
    assert await search("python", category="data") == ["py_data"]
    assert await search("python", sort="newest") == ["py_data", "py_desc", "py_tag",
                                                     "py_title"]
    assert await search("the and") != []  # only stop words: plain newest listing
    assert await search("zzzz") == []


async def test_hidden_listing_visible_to_owner_only(client):
    from tests.support.market import new_admin

    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    admin = await new_admin(client)
    listing = await create_listing(client, ada)
    resp = await client.post(f"/api/v1/admin/skills/{listing['id']}/hide",
                             json={"reason": "spam"}, headers=admin["headers"])
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "hidden"
    assert (await client.get(f"/api/v1/skills/{listing['id']}")).status == 404
    assert (await client.get(f"/api/v1/skills/{listing['id']}", headers=bob["headers"])).status == 404
    mine = await client.get(f"/api/v1/skills/{listing['id']}", headers=ada["headers"])
    assert (await mine.json())["status"] == "hidden"
    assert (await (await client.get("/api/v1/skills")).json())["items"] == []
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests", json={},
                             headers=bob["headers"])
    assert resp.status == 404
    resp = await client.post(f"/api/v1/admin/skills/{listing['id']}/unhide",
                             headers=admin["headers"])
    assert resp.status == 200
    assert len((await (await client.get("/api/v1/skills")).json())["items"]) == 1


async def test_deleted_account_listings_disappear(client):
    ada = await new_user(client)
    listing = await create_listing(client, ada)
    resp = await client.delete("/api/v1/users/me", headers=ada["headers"])
    assert resp.status == 204
    assert (await client.get(f"/api/v1/skills/{listing['id']}")).status == 404
    assert (await (await client.get("/api/v1/skills")).json())["items"] == []
    resp = await client.get("/api/v1/skills", params={"q": "python"})
    assert (await resp.json())["items"] == []


async def test_openapi_documents_marketplace(client):
    doc = await (await client.get("/openapi.json")).json()
    expected = {
        ("/api/v1/skills", "post"), ("/api/v1/skills", "get"),
        ("/api/v1/skills/{id}", "get"), ("/api/v1/skills/{id}", "patch"),
        ("/api/v1/skills/{id}", "delete"), ("/api/v1/skills/{id}/requests", "post"),
        ("/api/v1/skills/{id}/reviews", "get"), ("/api/v1/skills/categories", "get"),
        ("/api/v1/requests", "get"), ("/api/v1/requests/{id}", "get"),
        ("/api/v1/requests/{id}/accept", "post"), ("/api/v1/requests/{id}/decline", "post"),
        ("/api/v1/requests/{id}/cancel", "post"), ("/api/v1/requests/{id}/complete", "post"),
        ("/api/v1/requests/{id}/review", "post"), ("/api/v1/matches", "get"),
        ("/api/v1/admin/skills/{id}/hide", "post"), ("/api/v1/admin/skills/{id}/unhide", "post"),
        ("/api/v1/admin/users/{id}/ban", "post"), ("/api/v1/admin/users/{id}/unban", "post"),
        ("/api/v1/admin/users/{id}/role", "post"), ("/api/v1/admin/audit", "get"),
    }
    for path, method in expected:
        assert method in doc["paths"].get(path, {}), (path, method)
    schemas = doc["components"]["schemas"]
    for name in ("ListingIn", "ListingOut", "RequestIn", "RequestOut", "ReviewIn", "ReviewOut",
                 "MatchOut", "AuditEntryOut", "RoleIn", "ReasonIn"):
        assert schemas[name].get("examples"), name
    params = {p["name"] for p in doc["paths"]["/api/v1/skills"]["get"]["parameters"]}
    assert {"q", "category", "tag", "owner", "level", "mode", "sort", "limit", "cursor"} <= params


async def test_publishing_and_new_searches_are_rate_limited(make_client):
    client = await make_client(listing_create_limit="2/hour", search_limit="3/minute")
    ada = await new_user(client)
    await create_listing(client, ada, title="Python one")
    await create_listing(client, ada, title="Python two")
    resp = await client.post("/api/v1/skills", headers=ada["headers"],
                             json=listing_body(title="Python three"))
    assert resp.status == 429
    assert (await error_of(resp))["code"] == "rate_limited"
    for _ in range(3):
        assert (await client.get("/api/v1/skills", params={"q": "python"})).status == 200
    limited = await client.get("/api/v1/skills", params={"q": "python"})
    assert limited.status == 429 and "Retry-After" in limited.headers
    # Browsing newest-first is not a ranked search and stays open.
    assert (await client.get("/api/v1/skills")).status == 200
