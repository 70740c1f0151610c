import asyncio

from server.keys import DB, FIELDS
from tests.support.api import error_of
from tests.support.market import create_listing, new_user, page_all, talk


async def _setup(client):
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    listing = await create_listing(client, ada, title="Python for beginners")
    return ada, bob, listing


async def _request(client, learner, listing, message="Teach me please"):
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests",
                             json={"message": message}, headers=learner["headers"])
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _act(client, user, request_id, action, status=200):
    resp = await client.post(f"/api/v1/requests/{request_id}/{action}", headers=user["headers"])
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _complete(client, user, request_id):
    """Marks completed after the two have talked (the server's rule)."""
    await talk(client, user, request_id)
    return await _act(client, user, request_id, "complete")


async def _mails(client, kind):
    docs = await client.app[DB]["mail_queue"].find({"kind": kind}).to_list(length=None)
    return sorted(d["to"] for d in client.app[FIELDS].open_all("mail_queue", docs))


async def test_request_accept_complete_review(client):
    ada, bob, listing = await _setup(client)
    created = await _request(client, bob, listing)
    assert created["status"] == "pending"
    assert created["learner"] == {"id": bob["id"], "display_name": "Bob"}
    assert created["teacher"] == {"id": ada["id"], "display_name": "Ada"}
    assert created["listing"] == {"id": listing["id"], "title": "Python for beginners"}
    assert await _mails(client, "request_created") == [ada["email"]]

    incoming = await page_all(client, "/api/v1/requests", ada["headers"], role="incoming")
    outgoing = await page_all(client, "/api/v1/requests", bob["headers"], role="outgoing")
    assert [r["id"] for r in incoming] == [r["id"] for r in outgoing] == [created["id"]]
    assert await page_all(client, "/api/v1/requests", ada["headers"], role="outgoing") == []
    assert len(await page_all(client, "/api/v1/requests", ada["headers"], status="pending")) == 1

    accepted = await _act(client, ada, created["id"], "accept")
    assert accepted["status"] == "accepted"
    assert accepted["room_id"]
    # only the learner: the teacher accepted it themselves
    assert await _mails(client, "request_accepted") == [bob["email"]]
    # the same two people share one direct room, whichever request opened it
    other = await create_listing(client, ada, title="Advanced Python")
    second = await _request(client, bob, other)
    assert (await _act(client, ada, second["id"], "accept"))["room_id"] == accepted["room_id"]

    done = await _complete(client, bob, created["id"])
    assert done["status"] == "completed"
    resp = await client.get(f"/api/v1/requests/{created['id']}", headers=ada["headers"])
    assert (await resp.json())["status"] == "completed"

    resp = await client.post(f"/api/v1/requests/{created['id']}/review",
                             json={"rating": 5, "comment": "Great teacher"},
                             headers=bob["headers"])
    assert resp.status == 201, await resp.text()
    review = await resp.json()
    assert review["rating"] == 5 and review["reviewer"]["id"] == bob["id"]
    resp = await client.get(f"/api/v1/skills/{listing['id']}")
    assert (await resp.json())["rating"] == {"average": 5.0, "count": 1}
    reviews = await page_all(client, f"/api/v1/skills/{listing['id']}/reviews")
    assert [r["id"] for r in reviews] == [review["id"]]

    again = await client.post(f"/api/v1/requests/{created['id']}/review",
                              json={"rating": 1}, headers=bob["headers"])
    assert again.status == 409
    assert (await error_of(again))["code"] == "already_reviewed"


async def test_listing_rating_average_over_learners(client):
    ada = await new_user(client, "Ada")
    listing = await create_listing(client, ada)
    ratings = [5, 4, 2]
    for n, rating in enumerate(ratings):
        learner = await new_user(client, f"Learner {n}")
        req = await _request(client, learner, listing)
        await _act(client, ada, req["id"], "accept")
        await _complete(client, ada, req["id"])
        resp = await client.post(f"/api/v1/requests/{req['id']}/review",
                                 json={"rating": rating}, headers=learner["headers"])
        assert resp.status == 201
    resp = await client.get(f"/api/v1/skills/{listing['id']}")
    assert (await resp.json())["rating"] == {"average": 3.67, "count": 3}


async def test_illegal_transitions_are_409_with_a_clear_message(client):
    ada, bob, listing = await _setup(client)
    carol = await new_user(client, "Carol")
    req = await _request(client, bob, listing)

    resp = await client.post(f"/api/v1/requests/{req['id']}/complete", headers=ada["headers"])
    error = await error_of(resp)
    assert resp.status == 409 and error["code"] == "invalid_transition"
    assert "pending" in error["message"] and "accepted" in error["message"]
    resp = await client.post(f"/api/v1/requests/{req['id']}/review", json={"rating": 4},
                             headers=bob["headers"])
    assert resp.status == 409

    # who may do what
    assert (await error_of(await client.post(f"/api/v1/requests/{req['id']}/accept",
                                             headers=bob["headers"])))["code"] == "forbidden"
    assert (await client.post(f"/api/v1/requests/{req['id']}/cancel",
                              headers=ada["headers"])).status == 403
    assert (await client.post(f"/api/v1/requests/{req['id']}/accept",
                              headers=carol["headers"])).status == 404
    assert (await client.get(f"/api/v1/requests/{req['id']}",
                             headers=carol["headers"])).status == 404

    await _act(client, ada, req["id"], "decline")
    assert await _mails(client, "request_declined") == [bob["email"]]
    for action in ("accept", "decline"):
        resp = await client.post(f"/api/v1/requests/{req['id']}/{action}",
                                 headers=ada["headers"])
        error = await error_of(resp)
        assert resp.status == 409
        assert error["message"].startswith("This request is declined")
    resp = await client.post(f"/api/v1/requests/{req['id']}/cancel", headers=bob["headers"])
    assert resp.status == 409

    req2 = await _request(client, bob, listing)
    assert (await _act(client, bob, req2["id"], "cancel"))["status"] == "cancelled"
    resp = await client.post(f"/api/v1/requests/{req2['id']}/accept", headers=ada["headers"])
    assert resp.status == 409
    resp = await client.post(f"/api/v1/requests/{req2['id']}/review", json={"rating": 6},
                             headers=bob["headers"])
    assert (await error_of(resp))["code"] == "validation_error"


async def test_one_open_request_per_learner_and_listing(client):
    ada, bob, listing = await _setup(client)
    results = await asyncio.gather(*(
        client.post(f"/api/v1/skills/{listing['id']}/requests", json={"message": str(i)},
                    headers=bob["headers"])
        for i in range(5)
    ))
    statuses = sorted(r.status for r in results)
    assert statuses == [201, 409, 409, 409, 409]
    conflict = next(r for r in results if r.status == 409)
    assert (await error_of(conflict))["code"] == "request_exists"
    first = next(r for r in results if r.status == 201)
    req = await first.json()
    await _act(client, ada, req["id"], "accept")
    # accepted is still open
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests", json={},
                             headers=bob["headers"])
    assert resp.status == 409
    await _complete(client, bob, req["id"])
    await _request(client, bob, listing, "Again, please")


async def test_cannot_request_own_or_missing_listing(client):
    ada, bob, listing = await _setup(client)
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests", json={},
                             headers=ada["headers"])
    assert resp.status == 403
    assert "own listing" in (await error_of(resp))["message"]
    resp = await client.post("/api/v1/skills/000000000000000000000000/requests", json={},
                             headers=bob["headers"])
    assert resp.status == 404
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests",
                             json={"message": "x" * 1001}, headers=bob["headers"])
    assert (await error_of(resp))["code"] == "validation_error"
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests", json={})
    assert resp.status == 401
    resp = await client.get("/api/v1/requests", params={"role": "sideways"},
                            headers=bob["headers"])
    assert resp.status == 400


async def test_request_list_pagination(client):
    ada = await new_user(client, "Ada")
    learners = [await new_user(client, f"L{i}") for i in range(3)]
    listings = [await create_listing(client, ada, title=f"Topic {i}") for i in range(3)]
    made = []
    for learner in learners:
        for listing in listings:
            made.append((await _request(client, learner, listing))["id"])
    items = await page_all(client, "/api/v1/requests", ada["headers"], role="incoming",
                           limit="4")
    assert [i["id"] for i in items] == list(reversed(made))


async def test_both_parties_get_a_request_event_on_accept(client):
    from tests.support.realtime import SocketUser

    ada, bob, listing = await _setup(client)
    base = str(client.make_url("")).rstrip("/")
    sockets = []
    for user in (ada, bob):
        sock = SocketUser(base, user["token"], name=user["user"]["display_name"])
        sock.sio.on("request", sock._recorder("request"))
        sockets.append(await sock.connect())
    ada_sock, bob_sock = sockets
    try:
        req = await _request(client, bob, listing)
        created = await ada_sock.wait_for("request", lambda d: d["event"] == "created")
        assert created["request"]["id"] == req["id"]
        accepted = await _act(client, ada, req["id"], "accept")
        for sock in sockets:
            event = await sock.wait_for("request", lambda d: d["event"] == "accepted")
            assert event["request"]["room_id"] == accepted["room_id"]
            assert event["request"]["status"] == "accepted"
        # the room opened on accept is a real chat room for the two of them
        resp = await client.get(f"/api/v1/rooms/{accepted['room_id']}/messages",
                                headers=bob["headers"])
        assert resp.status == 200, await resp.text()
    finally:
        for sock in sockets:
            await sock.close()


async def test_export_contains_marketplace_data(client):
    ada, bob, listing = await _setup(client)
    req = await _request(client, bob, listing)
    await _act(client, ada, req["id"], "accept")
    await _complete(client, ada, req["id"])
    await client.post(f"/api/v1/requests/{req['id']}/review", json={"rating": 4},
                      headers=bob["headers"])
    ada_export = await (await client.get("/api/v1/users/me/export",
                                         headers=ada["headers"])).json()
    bob_export = await (await client.get("/api/v1/users/me/export",
                                         headers=bob["headers"])).json()
    assert [l["id"] for l in ada_export["listings"]] == [listing["id"]]
    assert [r["id"] for r in ada_export["skill_requests"]] == [req["id"]]
    assert [r["rating"] for r in ada_export["reviews"]["received"]] == [4]
    assert bob_export["listings"] == []
    assert [r["rating"] for r in bob_export["reviews"]["written"]] == [4]


async def test_a_review_is_all_or_nothing(client):
    """The database fails the listing's rating update (the last of the three
    writes): nothing of the review remains, and the retry succeeds."""
    ada, bob, listing = await _setup(client)
    req = await _request(client, bob, listing)
    await _act(client, ada, req["id"], "accept")
    await _complete(client, ada, req["id"])
    db = client.app[DB]
    for _ in range(100):  # let the mail worker go idle: its claims are updates too
        if await db["mail_queue"].count_documents({"status": "pending"}) == 0:
            break
        await asyncio.sleep(0.05)
    admin = db.client.admin
    await admin.command({"configureFailPoint": "failCommand", "mode": {"skip": 1, "times": 1},
                         "data": {"failCommands": ["update"], "errorCode": 8}})
    try:
        failed = await client.post(f"/api/v1/requests/{req['id']}/review",
                                   json={"rating": 5}, headers=bob["headers"])
    finally:
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert failed.status == 500
    assert (await error_of(failed))["code"] == "internal_error"
    assert await db["reviews"].count_documents({"request_id": req["id"]}) == 0
    listing_now = await (await client.get(f"/api/v1/skills/{listing['id']}")).json()
    assert listing_now["rating"]["count"] == 0

    retry = await client.post(f"/api/v1/requests/{req['id']}/review",
                              json={"rating": 5}, headers=bob["headers"])
    assert retry.status == 201, await retry.text()
    listing_now = await (await client.get(f"/api/v1/skills/{listing['id']}")).json()
    assert listing_now["rating"] == {"average": 5.0, "count": 1}


async def test_concurrent_reviews_of_one_request_count_once(client):
    ada, bob, listing = await _setup(client)
    req = await _request(client, bob, listing)
    await _act(client, ada, req["id"], "accept")
    await _complete(client, ada, req["id"])
    results = await asyncio.gather(*[
        client.post(f"/api/v1/requests/{req['id']}/review", json={"rating": 4},
                    headers=bob["headers"]) for _ in range(4)
    ])
    statuses = sorted(r.status for r in results)
    assert statuses == [201, 409, 409, 409], statuses
    listing_now = await (await client.get(f"/api/v1/skills/{listing['id']}")).json()
    assert listing_now["rating"] == {"average": 4.0, "count": 1}


async def test_creating_requests_is_rate_limited_per_learner(make_client):
    """Each new request mails the teacher; request + cancel in a loop must not
    turn the server into a mail cannon aimed at one teacher."""
    client = await make_client(request_create_limit="2/hour")
    ada, bob, listing = await _setup(client)
    for _ in range(2):
        created = await _request(client, bob, listing)
        await _act(client, bob, created["id"], "cancel")
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests",
                             json={"message": "again"}, headers=bob["headers"])
    assert resp.status == 429, await resp.text()
    assert (await error_of(resp))["code"] == "rate_limited"
    assert "Retry-After" in resp.headers
    assert await _mails(client, "request_created") == [ada["email"]] * 2
    # Another learner is not affected.
    carol = await new_user(client, "Carol")
    await _request(client, carol, listing)


async def test_completing_needs_a_conversation_since_the_acceptance(client):
    """Not right after accepting: only once a message was exchanged in the
    room after the acceptance (docs/marketplace.md)."""
    ada, bob, listing = await _setup(client)
    req = await _request(client, bob, listing)
    await _act(client, ada, req["id"], "accept")
    resp = await client.post(f"/api/v1/requests/{req['id']}/complete", headers=ada["headers"])
    assert resp.status == 409, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "not_started" and "message" in error["message"]
    await talk(client, bob, req["id"], "See you Monday")
    done = await _act(client, ada, req["id"], "complete")
    assert done["status"] == "completed"

    # the same room again for a second request: earlier talk does not count
    other = await create_listing(client, ada, title="Advanced Python")
    second = await _request(client, bob, other)
    await _act(client, ada, second["id"], "accept")
    resp = await client.post(f"/api/v1/requests/{second['id']}/complete", headers=bob["headers"])
    assert resp.status == 409
    await _complete(client, bob, second["id"])
