"""The ``skill_requests`` collection: a learner asks a listing's owner.

While a request is open (pending or accepted) it carries ``open_key`` =
``<learner>:<listing>``, under a unique partial index: one open request per
learner and listing, enforced by the database. Every transition is one
conditional update on the current status, so concurrent transitions cannot
both win. (``update_one`` then a read, not ``find_one_and_update``: the
embedded database runs the latter as a collection scan.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..errors import RequestExists
from .fields import FieldCrypto
from .ids import DELETED_USER_ID, new_id
from .transactions import Tx

PENDING = "pending"
ACCEPTED = "accepted"
DECLINED = "declined"
CANCELLED = "cancelled"
COMPLETED = "completed"
OPEN_STATES = (PENDING, ACCEPTED)
PURGED_LISTING_TITLE = "Deleted listing"
COLLECTION = "skill_requests"


def open_key(learner_id: str, listing_id: str) -> str:
    return f"{learner_id}:{listing_id}"


class SkillRequestStore:
    """``message`` is stored encrypted (server/storage/fields.py)."""

    def __init__(self, db: AsyncDatabase, fields: FieldCrypto) -> None:
        self._requests = db[COLLECTION]
        self._fields = fields

    async def create_indexes(self) -> None:
        await self._requests.create_index(
            [("open_key", ASCENDING)], unique=True, name="one_open_request",
            partialFilterExpression={"open_key": {"$type": "string"}},
        )
        await self._requests.create_index([("teacher_id", ASCENDING), ("_id", DESCENDING)])
        await self._requests.create_index([("learner_id", ASCENDING), ("_id", DESCENDING)])

    async def create(
        self, *, listing: dict[str, Any], learner_id: str, message: str, now: datetime
    ) -> dict[str, Any]:
        doc = {
            "_id": new_id(),
            "listing_id": listing["_id"],
            "listing_title": listing["title"],
            "learner_id": learner_id,
            "teacher_id": listing["owner_id"],
            "message": message,
            "status": PENDING,
            "open_key": open_key(learner_id, listing["_id"]),
            "room_id": None,
            "reviewed": False,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._requests.insert_one(self._fields.seal(COLLECTION, doc))
        except DuplicateKeyError:
            raise RequestExists() from None
        return doc

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        if docs:
            await self._requests.insert_many([self._fields.seal(COLLECTION, d) for d in docs])

    async def get(self, request_id: str) -> dict[str, Any] | None:
        return self._fields.open(COLLECTION, await self._requests.find_one({"_id": request_id}))

    async def transition(
        self, request_id: str, *, from_status: str, to_status: str, now: datetime,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Move ``from_status`` -> ``to_status``; None if it was not in
        ``from_status`` any more."""
        update: dict[str, Any] = {
            "$set": {"status": to_status, "updated_at": now, f"{to_status}_at": now,
                     **(extra or {})},
        }
        if to_status not in OPEN_STATES:
            update["$unset"] = {"open_key": ""}
        result = await self._requests.update_one({"_id": request_id, "status": from_status},
                                                 update)
        return await self.get(request_id) if result.matched_count else None

    async def mark_reviewed(self, request_id: str, *, now: datetime, tx: Tx = None) -> bool:
        """Claim the one review of a completed request; False if already taken."""
        result = await self._requests.update_one(
            {"_id": request_id, "status": COMPLETED, "reviewed": False},
            {"$set": {"reviewed": True, "reviewed_at": now}}, session=tx,
        )
        return result.matched_count == 1

    async def page(
        self, user_id: str, *, role: str | None, status: str | None, limit: int,
        before_id: str | None,
    ) -> list[dict[str, Any]]:
        """Newest first. One query per side, each on its ``(side, _id)``
        index, merged here; ``status`` is checked here too (the embedded
        database scans the collection for an ``$or`` or a field its index
        lacks)."""
        sides = {"incoming": ["teacher_id"], "outgoing": ["learner_id"]}.get(
            role or "", ["teacher_id", "learner_id"])
        found: dict[str, dict[str, Any]] = {}
        for side in sides:
            query: dict[str, Any] = {side: user_id}
            if before_id:
                query["_id"] = {"$lt": before_id}
            cursor = self._requests.find(query).sort("_id", DESCENDING)
            if not status:
                cursor = cursor.limit(limit)
            for doc in await cursor.to_list(length=None):
                if not status or doc.get("status") == status:
                    found[doc["_id"]] = doc
        docs = sorted(found.values(), key=lambda d: d["_id"], reverse=True)[:limit]
        return self._fields.open_all(COLLECTION, docs)

    async def of_user(self, user_id: str) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for side in ("teacher_id", "learner_id"):
            # one indexed query per side: an $or is a collection scan on the
            # embedded database
            for doc in await self._requests.find({side: user_id}).to_list(length=None):
                found[doc["_id"]] = doc
        return self._fields.open_all(COLLECTION, list(found.values()))

    async def anonymise_party(self, user_id: str, *, now: datetime) -> int:
        """A purged account leaves the requests it was part of: its id
        becomes ``DELETED_USER_ID``, what it wrote (the learner's message,
        the teacher's listing title) is removed, open ones are cancelled."""
        await self._requests.update_many(
            {"learner_id": user_id, "status": {"$in": list(OPEN_STATES)}},
            {"$set": {"status": CANCELLED, "cancelled_at": now, "updated_at": now},
             "$unset": {"open_key": ""}},
        )
        await self._requests.update_many(
            {"teacher_id": user_id, "status": {"$in": list(OPEN_STATES)}},
            {"$set": {"status": CANCELLED, "cancelled_at": now, "updated_at": now},
             "$unset": {"open_key": ""}},
        )
        as_learner = await self._requests.update_many(
            {"learner_id": user_id},
            {"$set": {"learner_id": DELETED_USER_ID, "message": "", "updated_at": now}},
        )
        as_teacher = await self._requests.update_many(
            {"teacher_id": user_id},
            {"$set": {"teacher_id": DELETED_USER_ID, "listing_title": PURGED_LISTING_TITLE,
                      "updated_at": now}},
        )
        return as_learner.modified_count + as_teacher.modified_count
    async def counterparts(self, user_id: str, *, statuses: tuple[str, ...]) -> set[str]:
        """Everyone ``user_id`` sent a request to or received one from, with
        the request in one of ``statuses``."""
        out: set[str] = set()
        for side, other in (("teacher_id", "learner_id"), ("learner_id", "teacher_id")):
            # the indexed side only (an $or, or a second field, is a
            # collection scan on the embedded database); status checked here
            cursor = self._requests.find({side: user_id},
                                         projection={other: 1, "status": 1})
            async for doc in cursor:
                if doc.get("status") in statuses:
                    out.add(doc[other])
        return out
