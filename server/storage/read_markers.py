"""The ``read_markers`` collection: per (room, user) the highest seq the
user has read. ``_id`` is ``"<room_id>:<user_id>"``; markers only move up.

Markers are kept in the read cache (``read_markers`` namespace, by ``_id``;
0 for a room not read yet): ``GET /rooms`` reads a page's markers on every
call, and only their owner moves them (``advance``, which drops the entry
here and, through the bus, on every node)."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..read_cache import READ_MARKERS, ReadCache


def marker_id(room_id: str, user_id: str) -> str:
    return f"{room_id}:{user_id}"


class ReadMarkerStore:
    def __init__(self, db: AsyncDatabase, *, cache: ReadCache | None = None) -> None:
        self._markers = db["read_markers"]
        self._cache = cache

    async def create_indexes(self) -> None:
        return None  # point lookups on _id only

    async def advance(self, room_id: str, user_id: str, seq: int, *, now: datetime) -> int:
        """Move the marker up to ``seq``; returns the stored marker, which
        is higher than ``seq`` when an earlier read went further."""
        update = {"$max": {"seq": seq}, "$set": {"updated_at": now},
                  "$setOnInsert": {"room_id": room_id, "user_id": user_id}}
        key = {"_id": marker_id(room_id, user_id)}
        try:
            await self._markers.update_one(key, update, upsert=True)
        except DuplicateKeyError:  # two first reads raced on the upsert
            await self._markers.update_one(key, update)
        if self._cache is not None:
            self._cache.changed(READ_MARKERS, key["_id"])
        doc = await self._markers.find_one(key, {"seq": 1})
        return max(seq, int(doc["seq"])) if doc else seq

    async def get_many(self, room_ids: list[str], user_id: str) -> dict[str, int]:
        """The user's marker in each room (0 where they read nothing yet)."""
        ids = {marker_id(r, user_id): r for r in room_ids}
        cached, version = (self._cache.get_many(READ_MARKERS, list(ids)) if self._cache
                           else ({}, 0))
        missing = [i for i in ids if i not in cached]
        loaded = dict.fromkeys(missing, 0)
        if missing:
            async for doc in self._markers.find({"_id": {"$in": missing}}, {"seq": 1}):
                loaded[doc["_id"]] = int(doc["seq"])
            if self._cache is not None:
                self._cache.put_many(READ_MARKERS, loaded, version)
        return {ids[i]: seq for i, seq in {**cached, **loaded}.items()}

    async def delete_for_user(self, room_ids: list[str], user_id: str) -> int:
        if not room_ids:
            return 0
        result = await self._markers.delete_many(
            {"_id": {"$in": [marker_id(r, user_id) for r in room_ids]}}
        )
        if self._cache is not None:
            self._cache.changed(READ_MARKERS)  # (a purge: rare)
        return result.deleted_count
