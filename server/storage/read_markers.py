"""The ``read_markers`` collection: per (room, user) the highest seq the
user has read. ``_id`` is ``"<room_id>:<user_id>"``; markers only move up."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


def marker_id(room_id: str, user_id: str) -> str:
    return f"{room_id}:{user_id}"


class ReadMarkerStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._markers = db["read_markers"]

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
        doc = await self._markers.find_one(key, {"seq": 1})
        return max(seq, int(doc["seq"])) if doc else seq

    async def get_many(self, room_ids: list[str], user_id: str) -> dict[str, int]:
        if not room_ids:
            return {}
        cursor = self._markers.find(
            {"_id": {"$in": [marker_id(r, user_id) for r in room_ids]}}, {"room_id": 1, "seq": 1}
        )
        return {doc["room_id"]: int(doc["seq"]) async for doc in cursor}

    async def delete_for_user(self, room_ids: list[str], user_id: str) -> int:
        if not room_ids:
            return 0
        result = await self._markers.delete_many(
            {"_id": {"$in": [marker_id(r, user_id) for r in room_ids]}}
        )
        return result.deleted_count
