"""The ``skill_index`` collection: per user, the normalised keys of the
skills they offer and want (profile skills plus their listings' tags), with
multikey indexes so match candidates are found without scanning users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

MAX_MATCH_CANDIDATES = 1000
KEYS_PER_QUERY = 8


class SkillIndexStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._index = db["skill_index"]

    async def create_indexes(self) -> None:
        await self._index.create_index([("offered", ASCENDING)])
        await self._index.create_index([("wanted", ASCENDING)])
        await self._index.create_index([("embed_pending", ASCENDING)])

    async def put(
        self, user_id: str, *, offered: list[str], wanted: list[str], now: datetime,
        names: list[str] | None = None,
    ) -> None:
        """``names``: the skills' display names (embedded with Gemini, by a
        background worker, when they change)."""
        extra: dict[str, Any] = {}
        if names is not None:
            current = await self._index.find_one({"_id": user_id}, {"names": 1})
            if current is None or current.get("names") != names:
                extra = {"names": names, "embed_pending": True}
        await self._index.update_one(
            {"_id": user_id},
            {"$set": {"offered": offered, "wanted": wanted, "updated_at": now, **extra}},
            upsert=True,
        )

    async def put_if_changed(
        self, user_id: str, *, offered: list[str], wanted: list[str], now: datetime,
        names: list[str] | None = None,
    ) -> bool:
        """``put`` only when the stored entry differs (a point read instead
        of a write for someone whose skills did not change); True if it wrote.
        Keys compare as sets: the index is queried with ``$in``, and listing
        tags do not come back in one fixed order."""
        current = await self._index.find_one({"_id": user_id},
                                             {"offered": 1, "wanted": 1, "names": 1})
        if (current is not None and set(current.get("offered") or ()) == set(offered)
                and set(current.get("wanted") or ()) == set(wanted)
                and (names is None or current.get("names") == names)):
            return False
        await self.put(user_id, offered=offered, wanted=wanted, now=now, names=names)
        return True

    async def holders(self, side: str, keys: list[str]) -> dict[str, list[str]]:
        """For each key, the ids of the people whose ``side`` ("offered" or
        "wanted") holds it: a few keys per indexed ``$in`` query, split
        here (the match candidates of one skill, cacheable per skill)."""
        if side not in ("offered", "wanted"):
            raise ValueError(f"unknown side {side!r}")
        out: dict[str, list[str]] = {key: [] for key in keys}
        for start in range(0, len(keys), KEYS_PER_QUERY):
            batch = keys[start:start + KEYS_PER_QUERY]
            cursor = self._index.find({side: {"$in": batch}}, {side: 1})
            for doc in await cursor.to_list(length=None):
                for key in set(doc.get(side) or ()) & set(batch):
                    if len(out[key]) < MAX_MATCH_CANDIDATES:
                        out[key].append(doc["_id"])
        return out

    async def recent(self, user_id: str, *, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` most recently indexed people other than ``user_id``
        (semantic match candidates, compared by embedding)."""
        cursor = self._index.find({"_id": {"$ne": user_id}}).sort("updated_at", -1)
        return await cursor.limit(limit).to_list(length=limit)

    async def embedding_pending(self, limit: int) -> list[dict[str, Any]]:
        cursor = self._index.find({"embed_pending": True}, {"names": 1})
        return await cursor.limit(limit).to_list(length=limit)

    async def without_names(self, limit: int) -> list[str]:
        """People indexed before skill names were kept (to re-index)."""
        cursor = self._index.find({"names": {"$exists": False}}, {"_id": 1})
        return [d["_id"] for d in await cursor.limit(limit).to_list(length=limit)]

    async def embedded(self, user_id: str, names: list[str]) -> None:
        """Names embedded, unless they changed meanwhile."""
        await self._index.update_one({"_id": user_id, "names": names},
                                     {"$set": {"embed_pending": False}})

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
        """People offering one of ``wanted`` or wanting one of ``offered``:
        one query per multikey index, merged here (an ``$or`` is a
        collection scan on the embedded database)."""
        found: dict[str, dict[str, Any]] = {}
        for name, keys in (("offered", wanted), ("wanted", offered)):
            for start in range(0, len(keys), KEYS_PER_QUERY):
                # a few keys per query: the embedded database checks every
                # candidate's array against the whole $in list
                cursor = self._index.find({name: {"$in": keys[start:start + KEYS_PER_QUERY]}})
                for doc in await cursor.to_list(length=MAX_MATCH_CANDIDATES + 1):
                    if doc["_id"] != user_id:
                        found.setdefault(doc["_id"], doc)
        return list(found.values())[:MAX_MATCH_CANDIDATES]
