"""The ``reviews`` collection: one per completed request (unique index on
``request_id``). Listing averages live on the listing as a sum and a count
updated with ``$inc``; nothing here recomputes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..errors import AlreadyReviewed
from ..read_cache import REVIEWS, ReadCache
from .fields import FieldCrypto
from .ids import DELETED_USER_ID, new_id
from .transactions import Tx


COLLECTION = "reviews"


class ReviewStore:
    """``comment`` is stored encrypted (server/storage/fields.py)."""

    def __init__(self, db: AsyncDatabase, fields: FieldCrypto, *,
                 cache: ReadCache | None = None) -> None:
        self._reviews = db[COLLECTION]
        self._fields = fields
        self._cache = cache

    def _changed(self, listing_id: str | None) -> None:
        """The listing's cached reviews (``None``: every listing's) are
        stale (here and on every node)."""
        if self._cache is not None:
            self._cache.changed(REVIEWS, listing_id)

    async def create_indexes(self) -> None:
        await self._reviews.create_index([("request_id", ASCENDING)], unique=True)
        await self._reviews.create_index([("listing_id", ASCENDING), ("_id", DESCENDING)])
        await self._reviews.create_index([("reviewer_id", ASCENDING)])
        await self._reviews.create_index([("teacher_id", ASCENDING)])

    async def create(
        self, *, request: dict[str, Any], rating: int, comment: str, now: datetime,
        tx: Tx = None,
    ) -> dict[str, Any]:
        doc = {
            "_id": new_id(),
            "request_id": request["_id"],
            "listing_id": request["listing_id"],
            "reviewer_id": request["learner_id"],
            "teacher_id": request["teacher_id"],
            "rating": rating,
            "comment": comment,
            "created_at": now,
        }
        try:
            await self._reviews.insert_one(self._fields.seal(COLLECTION, doc), session=tx)
        except DuplicateKeyError:
            raise AlreadyReviewed() from None
        self._changed(doc["listing_id"])
        return doc

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        if docs:
            await self._reviews.insert_many([self._fields.seal(COLLECTION, d) for d in docs])
            self._changed(None)

    async def page(
        self, listing_id: str, *, limit: int, before_id: str | None
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"listing_id": listing_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        cursor = self._reviews.find(query).sort("_id", DESCENDING).limit(limit)
        return self._fields.open_all(COLLECTION, await cursor.to_list(length=limit))

    async def of_user(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        written = await self._reviews.find({"reviewer_id": user_id}).to_list(length=None)
        received = await self._reviews.find({"teacher_id": user_id}).to_list(length=None)
        self._fields.open_all(COLLECTION, written)
        self._fields.open_all(COLLECTION, received)
        return {"written": written, "received": received}

    async def anonymise_reviewer(self, reviewer_id: str) -> int:
        """The reviewer's reviews stay (their ratings are counted in the
        listings' averages) without comment or author."""
        result = await self._reviews.update_many(
            {"reviewer_id": reviewer_id},
            {"$set": {"reviewer_id": DELETED_USER_ID, "comment": ""}},
        )
        self._changed(None)
        return result.modified_count
