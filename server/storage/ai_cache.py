"""The ``ai_cache`` collection: what Gemini answered, by content hash —
embeddings of texts (listing text, skill names, search queries) and the
short "why" of a match — so the same text is never sent twice. Entries
hold no personal data: the hash of a text and the vector or sentence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase


# An entry is dropped this long after it was written: listings keep their
# own vector, so an expired entry only costs a call when a text comes back.
CACHE_TTL = timedelta(days=30)


class AiCacheStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._cache = db["ai_cache"]

    async def create_indexes(self) -> None:
        await self._cache.create_index("at", expireAfterSeconds=int(CACHE_TTL.total_seconds()))

    async def get_many(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        docs = await self._cache.find({"_id": {"$in": ids}}).to_list(length=len(ids))
        return {d["_id"]: d for d in docs}

    async def put_many(self, entries: dict[str, dict[str, Any]], *, now: datetime) -> None:
        if entries:
            await self._cache.bulk_write([
                UpdateOne({"_id": key}, {"$set": {**value, "at": now}}, upsert=True)
                for key, value in entries.items()
            ], ordered=False)
