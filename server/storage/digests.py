"""``digests``: one document per person who went away, for the email digest.

``{_id: user id, away_since, next_check_at, last_sent_at, missed_calls:
[{from, at}]}`` — times are epoch seconds. ``away_since`` is set when the
person's last socket goes and unset when they are back; ``next_check_at`` is
when a node should look at them next (claimed with a compare-and-set, so two
nodes never build the same digest); ``last_sent_at`` keeps digests at most
one per interval."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

COLLECTION = "digests"
MAX_MISSED_CALLS = 20  # kept per person (the digest lists the newest)


class DigestStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._digests = db[COLLECTION]

    async def create_indexes(self) -> None:
        await self._digests.create_index([("next_check_at", ASCENDING)], name="digest_due")

    async def mark_away(self, user_id: str, *, now: float, check_at: float) -> None:
        await self._digests.update_one(
            {"_id": user_id},
            {"$set": {"away_since": now, "next_check_at": check_at}},
            upsert=True,
        )

    async def mark_back(self, user_id: str) -> None:
        """They are here again: nothing to mail about (missed calls included)."""
        await self._digests.update_one(
            {"_id": user_id},
            {"$set": {"away_since": None, "next_check_at": None, "missed_calls": []}},
        )

    async def add_missed_call(self, user_id: str, *, caller_id: str, at: float) -> None:
        await self._digests.update_one(
            {"_id": user_id},
            {"$push": {"missed_calls": {"$each": [{"from": caller_id, "at": at}],
                                        "$slice": -MAX_MISSED_CALLS}}},
            upsert=True,
        )

    async def due(self, *, now: float, limit: int) -> list[dict[str, Any]]:
        cursor = self._digests.find({"next_check_at": {"$ne": None, "$lte": now},
                                     "away_since": {"$ne": None}}).limit(limit)
        return await cursor.to_list(length=limit)

    async def claim(self, doc: dict[str, Any], *, until: float) -> bool:
        """Take ``doc`` for building its digest, unless another node did
        (its ``next_check_at`` moved since it was read)."""
        result = await self._digests.update_one(
            {"_id": doc["_id"], "next_check_at": doc["next_check_at"]},
            {"$set": {"next_check_at": until}},
        )
        return result.modified_count == 1

    async def checked(self, user_id: str, *, next_check_at: float | None,
                      sent_at: float | None = None) -> None:
        update: dict[str, Any] = {"next_check_at": next_check_at}
        if sent_at is not None:
            update.update(last_sent_at=sent_at, missed_calls=[])
        await self._digests.update_one({"_id": user_id}, {"$set": update})

    async def forget(self, user_id: str) -> int:
        """A purged account: its digest state goes."""
        return (await self._digests.delete_one({"_id": user_id})).deleted_count
