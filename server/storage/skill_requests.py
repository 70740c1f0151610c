"""The ``skill_requests`` collection: a learner asks a listing's owner.

While a request is open (pending or accepted) it carries ``open_key`` =
``<learner>:<listing>``, under a unique partial index: one open request per
learner and listing, enforced by the database. Every transition is one
conditional update on the current status, so concurrent transitions cannot
both win. (``update_one`` then a read, not ``find_one_and_update``: the
embedded database runs the latter as a collection scan.)

Each person's newest requests on either side (``NEWEST_CACHED`` per side)
are kept in the read cache (``requests`` namespace, by user id), so a
first page of ``GET /requests`` costs no database round trip; every write
here drops the entries of both parties on every node."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..errors import RequestExists
from ..read_cache import REQUESTS, ReadCache
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
SIDES = ("teacher_id", "learner_id")
# Requests kept per person and side: a default page (20) and one more, which
# says whether there is a next page. Bigger pages, and later ones, are read.
NEWEST_CACHED = 21


def open_key(learner_id: str, listing_id: str) -> str:
    return f"{learner_id}:{listing_id}"


class SkillRequestStore:
    """``message`` is stored encrypted (server/storage/fields.py)."""

    def __init__(self, db: AsyncDatabase, fields: FieldCrypto, *,
                 cache: ReadCache | None = None) -> None:
        self._requests = db[COLLECTION]
        self._fields = fields
        self._cache = cache

    def changed(self, *user_ids: str) -> None:
        """These people's cached requests are stale (here and on every node).
        Called by every write here; a caller that wrote in a transaction
        (``tx``) calls it again once the transaction has committed."""
        if self._cache is not None:
            for user_id in dict.fromkeys(user_ids):
                self._cache.changed(REQUESTS, user_id)

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
        self.changed(learner_id, doc["teacher_id"])
        return doc

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        if docs:
            await self._requests.insert_many([self._fields.seal(COLLECTION, d) for d in docs])
            if self._cache is not None:
                self._cache.changed(REQUESTS)

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
        if not result.matched_count:
            return None
        doc = await self.get(request_id)
        if doc is not None:
            self.changed(doc["learner_id"], doc["teacher_id"])
        return doc

    async def mark_reviewed(self, request_id: str, *, parties: tuple[str, str],
                            now: datetime, tx: Tx = None) -> bool:
        """Claim the one review of a completed request (between ``parties``);
        False if already taken. In a transaction, call ``changed(*parties)``
        again after it commits."""
        result = await self._requests.update_one(
            {"_id": request_id, "status": COMPLETED, "reviewed": False},
            {"$set": {"reviewed": True, "reviewed_at": now}}, session=tx,
        )
        self.changed(*parties)
        return result.matched_count == 1

    async def page(
        self, user_id: str, *, role: str | None, status: str | None, limit: int,
        before_id: str | None,
    ) -> list[dict[str, Any]]:
        """Newest first. One query per side, each on its ``(side, _id)``
        index, merged here; ``status`` is checked here too (the embedded
        database scans the collection for an ``$or`` or a field its index
        lacks). A first page comes from the person's cached newest requests
        when they hold it. The documents are shared: do not modify them."""
        sides = {"incoming": ["teacher_id"], "outgoing": ["learner_id"]}.get(
            role or "", list(SIDES))
        if before_id is None and self._cache is not None and limit <= NEWEST_CACHED:
            newest = await self._cache.read(REQUESTS, user_id, lambda: self._newest(user_id))
            # Complete enough: each side either holds all of the person's
            # requests, or (no status filter) at least ``limit`` of them.
            if all(len(newest[side]) < NEWEST_CACHED or not status for side in sides):
                return _merge([newest[side] for side in sides], status=status, limit=limit)
        found: list[list[dict[str, Any]]] = []
        for side in sides:
            query: dict[str, Any] = {side: user_id}
            if before_id:
                query["_id"] = {"$lt": before_id}
            cursor = self._requests.find(query).sort("_id", DESCENDING)
            if not status:
                cursor = cursor.limit(limit)
            found.append(await cursor.to_list(length=None))
        return self._fields.open_all(COLLECTION, _merge(found, status=status, limit=limit))

    async def _newest(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """The person's ``NEWEST_CACHED`` newest requests on each side."""
        out: dict[str, list[dict[str, Any]]] = {}
        for side in SIDES:
            cursor = self._requests.find({side: user_id}).sort("_id", DESCENDING)
            out[side] = self._fields.open_all(
                COLLECTION, await cursor.limit(NEWEST_CACHED).to_list(length=None))
        return out

    async def of_user(self, user_id: str) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for side in ("teacher_id", "learner_id"):
            # one indexed query per side: an $or is a collection scan on the
            # embedded database
            for doc in await self._requests.find({side: user_id}).to_list(length=None):
                found[doc["_id"]] = doc
        return self._fields.open_all(COLLECTION, list(found.values()))

    async def anonymise_party(self, user_id: str, *, now: datetime) -> int:
        try:
            return await self._anonymise_party(user_id, now=now)
        finally:  # every counterpart's requests show the change: drop them all
            if self._cache is not None:
                self._cache.changed(REQUESTS)

    async def _anonymise_party(self, user_id: str, *, now: datetime) -> int:
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


def _merge(sides: list[list[dict[str, Any]]], *, status: str | None, limit: int
           ) -> list[dict[str, Any]]:
    """Both sides' requests (each newest first) as one list, newest first,
    with ``status`` only, at most ``limit``."""
    found: dict[str, dict[str, Any]] = {}
    for docs in sides:
        for doc in docs:
            if not status or doc.get("status") == status:
                found[doc["_id"]] = doc
    return sorted(found.values(), key=lambda d: d["_id"], reverse=True)[:limit]
