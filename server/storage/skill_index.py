"""The ``skill_index`` collection: per user, the normalised keys of the
skills they offer and want (profile skills plus their listings' tags), with
multikey indexes so match candidates are found without scanning users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

MAX_MATCH_CANDIDATES = 1000


class SkillIndexStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._index = db["skill_index"]

    async def create_indexes(self) -> None:
        await self._index.create_index([("offered", ASCENDING)])
        await self._index.create_index([("wanted", ASCENDING)])

    async def put(
        self, user_id: str, *, offered: list[str], wanted: list[str], now: datetime
    ) -> None:
        await self._index.update_one(
            {"_id": user_id},
            {"$set": {"offered": offered, "wanted": wanted, "updated_at": now}},
            upsert=True,
        )

    async def put_many(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            await self._index.bulk_write([
                UpdateOne({"_id": e["_id"]}, {"$set": e}, upsert=True) for e in entries
            ], ordered=False)

    async def remove(self, user_id: str) -> None:
        await self._index.delete_one({"_id": user_id})

    async def candidates(
        self, user_id: str, *, offered: list[str], wanted: list[str]
    ) -> list[dict[str, Any]]:
        clauses = []
        if wanted:
            clauses.append({"offered": {"$in": wanted}})
        if offered:
            clauses.append({"wanted": {"$in": offered}})
        if not clauses:
            return []
        cursor = self._index.find({"$or": clauses, "_id": {"$ne": user_id}})
        return await cursor.to_list(length=MAX_MATCH_CANDIDATES)
