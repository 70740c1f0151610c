"""The ``rooms`` collection: direct rooms (one per pair of users, found by
``direct_key``) and group rooms. Membership is the ``member_ids`` array.

A direct room also has ``active_ids``: the members who opened it or wrote in
it, i.e. who chose to talk to the other (consent, ``server/consent``). Rooms
stored before that field existed count every member as active.

Each person's ``NEWEST_CACHED`` newest rooms (the documents of a first page
of ``GET /rooms``) are kept in the read cache (``rooms`` namespace, by user
id); every write that changes a room's membership or what ``GET /rooms``
shows of it drops the entries of all its members, on every node.
``active_ids`` (``mark_active``) is not shown there and drops nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..read_cache import ROOMS, ReadCache
from .ids import DELETED_USER_ID, new_id

DIRECT = "direct"
GROUP = "group"
# Rooms kept per person: a default page (20) and one more, which says whether
# there is a next page. Bigger pages, and later ones, are read.
NEWEST_CACHED = 21


def direct_key(user_a: str, user_b: str) -> str:
    """The same key whichever of the two users asks."""
    return ":".join(sorted((user_a, user_b)))


class RoomStore:
    def __init__(self, db: AsyncDatabase, *, cache: ReadCache | None = None) -> None:
        self._rooms = db["rooms"]
        self._cache = cache

    def _changed(self, user_ids: list[str]) -> None:
        """These people's cached room pages are stale (here and on every node)."""
        if self._cache is not None:
            for user_id in dict.fromkeys(user_ids):
                self._cache.changed(ROOMS, user_id)

    async def create_indexes(self) -> None:
        # Sparse, not partial (group rooms have no direct_key): the embedded
        # database scans the collection for a query on a partial index. The
        # partial one of earlier versions is replaced once.
        if "direct_key_unique" in await self._rooms.index_information():
            await self._rooms.drop_index("direct_key_unique")
        await self._rooms.create_index(
            [("direct_key", ASCENDING)], unique=True, sparse=True, name="direct_key_sparse_unique",
        )
        await self._rooms.create_index([("member_ids", ASCENDING), ("_id", DESCENDING)])

    async def get(self, room_id: str) -> dict[str, Any] | None:
        return await self._rooms.find_one({"_id": room_id})

    async def get_direct(self, user_a: str, user_b: str) -> dict[str, Any] | None:
        return await self._rooms.find_one({"direct_key": direct_key(user_a, user_b)})

    async def create_direct(
        self, user_a: str, user_b: str, *, now: datetime
    ) -> tuple[dict[str, Any], bool]:
        """The pair's direct room, created when missing; ``created`` tells
        which. Concurrent callers get the same room (unique ``direct_key``)."""
        doc = {
            "_id": new_id(), "type": DIRECT, "name": None,
            "member_ids": sorted({user_a, user_b}), "direct_key": direct_key(user_a, user_b),
            "active_ids": [user_a], "created_by": user_a, "created_at": now,
        }
        try:
            await self._rooms.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.get_direct(user_a, user_b)
            if existing is not None:
                return existing, False
            await self._rooms.insert_one(doc)  # deleted between the two calls; once more
        self._changed([user_a, user_b])
        return doc, True

    async def create_group(
        self, *, name: str, member_ids: list[str], created_by: str, now: datetime
    ) -> dict[str, Any]:
        doc = {
            "_id": new_id(), "type": GROUP, "name": name,
            "member_ids": sorted(set(member_ids)), "created_by": created_by,
            "created_at": now,
        }
        await self._rooms.insert_one(doc)
        self._changed(member_ids)
        return doc

    async def list_for_member(
        self, user_id: str, *, before_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest rooms first, ``_id`` below ``before_id``; a first page
        from the person's cached newest rooms (shared documents: read-only)."""
        if before_id is None and self._cache is not None and limit <= NEWEST_CACHED:
            newest = await self._cache.read(ROOMS, user_id, lambda: self._newest(user_id))
            return newest[:limit]
        return await self._page(user_id, before_id=before_id, limit=limit)

    async def _newest(self, user_id: str) -> list[dict[str, Any]]:
        return await self._page(user_id, before_id=None, limit=NEWEST_CACHED)

    async def _page(self, user_id: str, *, before_id: str | None, limit: int
                    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"member_ids": user_id}
        if before_id is not None:
            query["_id"] = {"$lt": before_id}
        cursor = self._rooms.find(query).sort("_id", DESCENDING).limit(limit)
        return await cursor.to_list(length=limit)

    async def list_all_for_member(self, user_id: str) -> list[dict[str, Any]]:
        return await self._rooms.find({"member_ids": user_id}).to_list(length=None)

    async def room_ids_of_member(self, user_id: str) -> list[str]:
        cursor = self._rooms.find({"member_ids": user_id}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def forget_member(self, user_id: str) -> int:
        """A purged account: gone from its group rooms' members and from
        ``created_by``. Direct rooms keep its id as the other member's
        counterpart (``direct_key`` is built from it); the id resolves to no
        one once the account is purged. Drops every cached room page (the
        rooms' members are not known here)."""
        try:
            return await self._forget_member(user_id)
        finally:
            if self._cache is not None:
                self._cache.changed(ROOMS)

    async def _forget_member(self, user_id: str) -> int:
        await self._rooms.update_many(
            {"member_ids": user_id, "created_by": user_id},
            {"$set": {"created_by": DELETED_USER_ID}},
        )
        result = await self._rooms.update_many(
            {"member_ids": user_id, "type": GROUP}, {"$pull": {"member_ids": user_id}}
        )
        return result.modified_count
    async def mark_active(self, room_id: str, user_id: str) -> bool:
        """Record that a member of a direct room took part in it (opened it
        or wrote); True when that is new."""
        result = await self._rooms.update_one(
            {"_id": room_id, "member_ids": user_id, "active_ids": {"$exists": True, "$ne": user_id}},
            {"$addToSet": {"active_ids": user_id}},
        )
        return result.modified_count == 1

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        """Take ``user_id`` out of a group room; False if not a member."""
        result = await self._rooms.update_one(
            {"_id": room_id, "type": GROUP, "member_ids": user_id},
            {"$pull": {"member_ids": user_id}},
        )
        if result.modified_count == 1 and self._cache is not None:
            room = await self.get(room_id)
            self._changed([user_id, *(room["member_ids"] if room else [])])
        return result.modified_count == 1

    async def add_members(self, room_id: str, user_ids: list[str]) -> dict[str, Any] | None:
        """Add people to a group room; the updated room, None if it is gone."""
        await self._rooms.update_one(
            {"_id": room_id, "type": GROUP},
            {"$addToSet": {"member_ids": {"$each": list(user_ids)}}},
        )
        room = await self.get(room_id)
        if room is not None:
            self._changed(room["member_ids"])
        return room

    async def memberships(self, user_id: str) -> list[dict[str, Any]]:
        """Type, members and active members of every room of ``user_id``."""
        cursor = self._rooms.find(
            {"member_ids": user_id}, projection={"type": 1, "member_ids": 1, "active_ids": 1}
        )
        return await cursor.to_list(length=None)
