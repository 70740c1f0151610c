"""RankingSnapshotStore against the real database: a ranking is stored as
one packed value (not ~1,000 array elements and small documents) and reads
back exactly; documents in the older layout (arrays) still read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from server.storage.ranking_snapshots import RankingSnapshotStore

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
RANKED = 1000


@pytest.fixture
async def db(mongo_url, db_name):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[db_name]
    await client.close()


async def test_a_ranking_is_stored_as_one_packed_value_and_reads_back_exactly(db):
    store = RankingSnapshotStore(db)
    await store.create_indexes()
    ids = [f"user{i:04d}" for i in range(RANKED)]
    extras = [{"score": 13 - i % 7, "mutual": i % 2 == 0, "they_teach": ["Python", "Go"],
               "you_teach": ["Español"] if i % 3 else []} for i in range(RANKED)]
    snapshot_id = await store.create(viewer_id="ada", kind="matches", key="matches", ids=ids,
                                     extras=extras, now=NOW,
                                     expires_at=NOW + timedelta(minutes=30))

    raw = await db["ranking_snapshots"].find_one({"_id": snapshot_id})
    assert "ids" not in raw and "extras" not in raw
    assert isinstance(raw["ranking"], bytes)

    found = await store.get(snapshot_id, now=NOW)
    assert (found["ids"], found["extras"]) == (ids, extras)
    assert (found["viewer_id"], found["kind"], found["key"]) == ("ada", "matches", "matches")
    scores = [0.1 * i + 1e-9 for i in range(5)]
    search_id = await store.create(viewer_id=None, kind="listings", key="k", ids=ids[:5],
                                   extras=scores, now=NOW, expires_at=NOW + timedelta(minutes=1),
                                   shared=True)
    assert (await store.get(search_id, now=NOW))["extras"] == scores
    assert await store.get(search_id, now=NOW + timedelta(minutes=2)) is None


async def test_a_snapshot_stored_with_arrays_still_reads(db):
    store = RankingSnapshotStore(db)
    await db["ranking_snapshots"].insert_one({
        "_id": "old", "viewer_id": "ada", "kind": "matches", "key": "matches",
        "ids": ["b", "c"], "extras": [{"score": 3}, {"score": 2}], "created_at": NOW,
        "expires_at": NOW + timedelta(minutes=30)})
    found = await store.get("old", now=NOW)
    assert (found["ids"], found["extras"]) == (["b", "c"], [{"score": 3}, {"score": 2}])
