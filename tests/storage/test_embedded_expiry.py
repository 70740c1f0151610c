"""TTL indexes on the embedded database: the node's sweep
(``EmbeddedExpiry``) deletes what expired, as MongoDB's own TTL monitor
would, by an indexed range delete per TTL index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.storage.database import open_database
from server.storage.embedded_expiry import EmbeddedExpiry, ttl_query

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_expired_documents_go_and_the_rest_stay(tmp_path):
    async with open_database(mongo_url=None, db_name="skillshare_t",
                             data_dir=tmp_path / "data") as db:
        at = db["expire_at"]
        await at.create_index("expires_at", expireAfterSeconds=0)
        after = db["expire_after"]
        await after.create_index("created_at", expireAfterSeconds=3600)
        partial = db["expire_partial"]
        await partial.create_index("sent_at", expireAfterSeconds=0,
                                   partialFilterExpression={"status": "sent"})
        await at.insert_many([
            {"_id": "past", "expires_at": NOW - timedelta(seconds=1)},
            {"_id": "future", "expires_at": NOW + timedelta(seconds=1)},
            {"_id": "any-past-date", "expires_at": [NOW + timedelta(days=1), NOW - timedelta(days=1)]},
            {"_id": "not-a-date", "expires_at": "yesterday"},
            {"_id": "no-field"},
        ])
        await after.insert_many([
            {"_id": "old", "created_at": NOW - timedelta(hours=2)},
            {"_id": "young", "created_at": NOW - timedelta(minutes=30)},
        ])
        await partial.insert_many([
            {"_id": "sent", "status": "sent", "sent_at": NOW - timedelta(days=1)},
            {"_id": "pending", "status": "pending", "sent_at": NOW - timedelta(days=1)},
        ])
        plain = db["no_ttl"]
        await plain.create_index("expires_at")
        await plain.insert_one({"_id": "kept", "expires_at": NOW - timedelta(days=1)})

        assert await EmbeddedExpiry(db).sweep(now=NOW) == 4
        assert sorted(await at.distinct("_id")) == ["future", "no-field", "not-a-date"]
        assert await after.distinct("_id") == ["young"]
        assert await partial.distinct("_id") == ["pending"]
        assert await plain.distinct("_id") == ["kept"]


def test_only_indexes_mongodb_expires_by_are_swept():
    one_field = {"key": {"expires_at": 1}, "expireAfterSeconds": 0}
    assert ttl_query(one_field, NOW) == {"expires_at": {"$lt": NOW}}
    assert ttl_query({"key": {"a": 1, "b": 1}, "expireAfterSeconds": 0}, NOW) is None
    assert ttl_query({"key": {"_id": 1}, "expireAfterSeconds": 0}, NOW) is None
    assert ttl_query({"key": {"expires_at": 1}}, NOW) is None
    assert ttl_query({"key": {"expires_at": 1}, "expireAfterSeconds": True}, NOW) is None
