"""The read queries shaped for the embedded database's planner (only
indexed fields in a query; filters, visibility and the two sides of "my
requests" applied after it): paging through them returns every matching
item exactly once, newest first, as the plain query would."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, UTC

from bson import ObjectId

from server.keys import DB, FIELDS
from server.marketplace.listings import searchable
from server.storage.listings import ListingStore
from server.storage.skill_requests import SkillRequestStore
from tests.support.market import new_user, page_all

CATEGORIES = ["programming", "music", "languages"]
LEVELS = ["all", "beginner", "intermediate", "advanced"]
MODES = ["online", "in_person", "hybrid"]
TAGS = ["python", "guitar", "spanish", "rust"]


def _id_at(moment: datetime, n: int) -> str:
    return str(ObjectId(int(moment.timestamp()).to_bytes(4, "big") + n.to_bytes(8, "big")))


def _listings(owners: list[str], count: int, rng: random.Random) -> list[dict]:
    now = datetime.now(UTC)
    docs = []
    for n in range(count):
        # Spread over 120 days, clustered so that some windows are empty and
        # some hold many (several in the same second too).
        created = now - timedelta(days=rng.choice([0.001, 0.3, 2, 9, 40, 119]),
                                  seconds=rng.randint(0, 3))
        fields = {"title": f"Listing {n}", "description": "Text.",
                  "tags": rng.sample(TAGS, rng.randint(1, 2))}
        status = rng.choices(["active", "hidden", "deleted"], [8, 1, 1])[0]
        docs.append({
            "_id": _id_at(created, n), "owner_id": rng.choice(owners), **fields,
            "category": rng.choice(CATEGORIES), "level": rng.choice(LEVELS),
            "mode": rng.choice(MODES), **searchable(fields), "status": status,
            "owner_active": True, "visible": status == "active", "rating_sum": 0,
            "rating_count": 0, "created_at": created, "updated_at": created,
        })
    return docs


def _expected(docs: list[dict], *, category=None, tag=None, owner=None, level=None,
              mode=None, q=None) -> list[str]:
    def keep(d: dict) -> bool:
        return (d["visible"] and (category is None or d["category"] == category)
                and (tag is None or tag in d["tags"]) and (owner is None or d["owner_id"] == owner)
                and (level is None or d["level"] in (level, "all"))
                and (mode is None or d["mode"] in ({mode, "hybrid"} if mode != "hybrid"
                                                   else {"hybrid"}))
                and (q is None or q in d["tokens"]))
    return [d["_id"] for d in sorted(docs, key=lambda d: d["_id"], reverse=True) if keep(d)]


async def test_newest_pages_return_every_listing_once_in_order(make_client):
    client = await make_client(rate_limits="off", read_cache_size=0)  # the queries themselves
    rng = random.Random(7)
    owners = [(await new_user(client, f"Owner {i}"))["id"] for i in range(3)]
    docs = _listings(owners, 240, rng)
    await ListingStore(client.app[DB]).insert_many(docs)
    cases = [{}, {"category": "music"}, {"tag": "python"}, {"owner": owners[1]},
             {"level": "beginner"}, {"mode": "online"}, {"mode": "hybrid"},
             {"category": "programming", "level": "advanced", "mode": "in_person"},
             {"owner": owners[0], "tag": "rust"}, {"q": "guitar"}]
    for case in cases:
        params = {"sort": "newest", **case} if "q" in case else dict(case)
        for limit in (1, 7, 50):
            got = [i["id"] for i in await page_all(client, "/api/v1/skills", limit=limit,
                                                   **params)]
            assert got == _expected(docs, **case), (case, limit)


async def test_my_requests_pages_merge_both_sides_once_in_order(make_client):
    client = await make_client(rate_limits="off")
    me, other = await new_user(client, "Me"), await new_user(client, "Other")
    store = SkillRequestStore(client.app[DB], client.app[FIELDS])
    rng = random.Random(3)
    now = datetime.now(UTC)
    docs = []
    for n in range(60):
        mine_teaching = rng.random() < 0.5
        created = now - timedelta(hours=rng.randint(0, 500))
        docs.append({
            "_id": _id_at(created, n), "listing_id": _id_at(created, 1000 + n),
            "listing_title": f"L{n}",
            "learner_id": other["id"] if mine_teaching else me["id"],
            "teacher_id": me["id"] if mine_teaching else other["id"],
            "message": "Hi", "status": rng.choice(["pending", "accepted", "declined"]),
            "room_id": None, "reviewed": False, "created_at": created, "updated_at": created,
        })
    await store.insert_many(docs)
    newest = sorted(docs, key=lambda d: d["_id"], reverse=True)
    cases = [({}, newest),
             ({"role": "incoming"}, [d for d in newest if d["teacher_id"] == me["id"]]),
             ({"role": "outgoing"}, [d for d in newest if d["learner_id"] == me["id"]]),
             ({"status": "pending"}, [d for d in newest if d["status"] == "pending"]),
             ({"role": "incoming", "status": "declined"},
              [d for d in newest if d["teacher_id"] == me["id"] and d["status"] == "declined"])]
    for params, expected in cases:
        for limit in (1, 6, 100):
            got = await page_all(client, "/api/v1/requests", me["headers"], limit=limit,
                                 **params)
            assert [r["id"] for r in got] == [d["_id"] for d in expected], (params, limit)
