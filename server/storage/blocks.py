"""The ``blocks`` collection: who blocked whom. ``_id`` is
``"<blocker_id>:<blocked_id>"``, so a block is unique; checks read everyone
a person blocked or was blocked by (``involving``, two indexed finds), which
the consent area caches per person.

``block_counts`` holds, per blocker, how many blocks they hold, so the limit
is a unit taken atomically before the insert (a conditional ``$inc``, the
upsert failing on ``_id`` when the counter is full), not a count that
concurrent requests could all pass."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .ids import new_id


def block_id(blocker_id: str, blocked_id: str) -> str:
    return f"{blocker_id}:{blocked_id}"


class BlockStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._blocks = db["blocks"]
        self._counts = db["block_counts"]

    async def create_indexes(self) -> None:
        await self._blocks.create_index([("blocker_id", ASCENDING), ("seq_id", DESCENDING)])
        await self._blocks.create_index([("blocked_id", ASCENDING)])

    async def add(self, blocker_id: str, blocked_id: str, *, now: datetime) -> tuple[dict[str, Any], bool]:
        """The block, created when missing; ``created`` tells which."""
        doc = {
            "_id": block_id(blocker_id, blocked_id), "seq_id": new_id(),
            "blocker_id": blocker_id, "blocked_id": blocked_id, "created_at": now,
        }
        try:
            await self._blocks.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            existing = await self._blocks.find_one({"_id": doc["_id"]})
            return (existing or doc), False

    async def get(self, blocker_id: str, blocked_id: str) -> dict[str, Any] | None:
        return await self._blocks.find_one({"_id": block_id(blocker_id, blocked_id)})

    async def remove(self, blocker_id: str, blocked_id: str) -> bool:
        result = await self._blocks.delete_one({"_id": block_id(blocker_id, blocked_id)})
        return result.deleted_count == 1

    async def count_by(self, blocker_id: str) -> int:
        return await self._blocks.count_documents({"blocker_id": blocker_id})

    async def reserve(self, blocker_id: str, *, limit: int) -> bool:
        """Take one of ``limit`` block units of ``blocker_id``; False when all
        are taken. (A crash between taking a unit and storing the block
        leaves the unit taken: the limit errs on the safe side.)"""
        try:
            await self._counts.update_one(
                {"_id": blocker_id, "count": {"$lt": limit}}, {"$inc": {"count": 1}}, upsert=True,
            )
        except DuplicateKeyError:  # the counter exists and is at the limit
            return False
        return True

    async def release(self, blocker_id: str) -> None:
        await self._counts.update_one({"_id": blocker_id, "count": {"$gt": 0}},
                                      {"$inc": {"count": -1}})

    async def involving(self, user_id: str) -> set[str]:
        """Everyone ``user_id`` blocked or was blocked by."""
        out: set[str] = set()
        for side, other in (("blocker_id", "blocked_id"), ("blocked_id", "blocker_id")):
            # one indexed query per side: an $or is a collection scan on the
            # embedded database
            async for doc in self._blocks.find({side: user_id}, projection={other: 1}):
                out.add(doc[other])
        return out

    async def page_by(
        self, blocker_id: str, *, before: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest blocks first; ``before`` is the ``seq_id`` of the last one seen."""
        query: dict[str, Any] = {"blocker_id": blocker_id}
        if before is not None:
            query["seq_id"] = {"$lt": before}
        cursor = self._blocks.find(query).sort("seq_id", DESCENDING).limit(limit)
        return await cursor.to_list(length=limit)

    async def forget_user(self, user_id: str) -> int:
        """A purged account: every block it made or was the target of is
        gone, and each person who had blocked it gets that unit back."""
        involved = {"$or": [{"blocker_id": user_id}, {"blocked_id": user_id}]}
        blockers = [doc["blocker_id"] async for doc in
                    self._blocks.find({"blocked_id": user_id}, projection={"blocker_id": 1})]
        result = await self._blocks.delete_many(involved)
        for blocker_id in blockers:
            await self.release(blocker_id)
        await self._counts.delete_one({"_id": user_id})
        return result.deleted_count

    async def all_by(self, blocker_id: str) -> list[dict[str, Any]]:
        return await self._blocks.find({"blocker_id": blocker_id}).to_list(length=None)
