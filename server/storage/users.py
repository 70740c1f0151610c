"""The ``users`` collection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..errors import EmailTaken
from ..read_cache import PEOPLE, ReadCache
from .atomic import update_and_get
from .fields import FieldCrypto, normalise_email
from .ids import new_id

ACTIVE = "active"
DELETED = "deleted"
BANNED = "banned"
PURGED_DISPLAY_NAME = "Deleted user"
# What a purged account keeps: its id (other people's rooms, requests and
# the audit log point at it), that it was deleted and when, its role (the
# audit log of admin actions stays readable).
PURGED_USER_FIELDS = ("_id", "status", "role", "created_at", "deleted_at")
COLLECTION = "users"
IN_BATCH = 100  # ids per $in query
EMAIL_INDEX = "email_index"  # blind index of the (encrypted) email: lookups, uniqueness


class UserStore:
    """``email`` (and ``deleted_email``) are stored encrypted
    (server/storage/fields.py); ``email_index``, their keyed blind index,
    is unique and is what sign-in looks up."""

    def __init__(self, db: AsyncDatabase, fields: FieldCrypto, *,
                 cache: ReadCache | None = None) -> None:
        self._users = db[COLLECTION]
        self._fields = fields
        self._cache = cache

    def _changed(self, user_id: str) -> None:
        """After every write: the person's cached document is stale (here
        and on every node). Cached listings and reviews hold no names: they
        take them from here on each read."""
        if self._cache is not None:
            self._cache.changed(PEOPLE, user_id)

    async def create_indexes(self) -> None:
        await self._users.create_index(
            [("email", ASCENDING)],
            unique=True,
            name="email_unique",
            partialFilterExpression={"email": {"$type": "string"}},
        )
        # Sparse, not partial: the embedded database plans equality and $in
        # on a sparse index but scans the collection for a partial one.
        await self._users.create_index(
            [(EMAIL_INDEX, ASCENDING)], unique=True, sparse=True, name="email_index_unique",
        )
        # Rows from before encryption are found by their plaintext ``email``.
        await self._users.create_index([("email", ASCENDING)], name="email_lookup")
        await self._users.create_index([("status", ASCENDING), ("deleted_at", ASCENDING)])

    def _open(self, doc: dict[str, Any] | None) -> dict[str, Any] | None:
        return self._fields.open(COLLECTION, doc)

    async def create(
        self, *, email: str, password_hash: str | None, display_name: str, now: datetime,
        email_verified: bool = False,
    ) -> dict[str, Any]:
        """``password_hash`` None: an account that signs in with a provider."""
        doc = {
            "_id": new_id(),
            "email": email,
            "email_verified": email_verified,
            "password_hash": password_hash,
            "display_name": display_name,
            "bio": "",
            "timezone": "UTC",
            "languages": [],
            "skills_offered": [],
            "skills_wanted": [],
            "role": "user",
            "status": ACTIVE,
            "created_at": now,
            "updated_at": now,
        }
        # During a key rotation, rows not re-indexed yet carry an older
        # key's blind index, which the unique index cannot compare with.
        if await self.find_by_email(email) is not None:
            raise EmailTaken()
        try:
            await self._users.insert_one(self._fields.seal(COLLECTION, doc))
        except DuplicateKeyError:
            raise EmailTaken() from None
        return doc

    async def get(self, user_id: str) -> dict[str, Any] | None:
        return self._open(await self._users.find_one({"_id": user_id}))

    async def get_active(self, user_id: str) -> dict[str, Any] | None:
        # By _id alone, status checked here: a query naming a field its index
        # lacks is a collection scan on the embedded database.
        doc = await self._users.find_one({"_id": user_id})
        return self._open(doc) if doc is not None and doc.get("status") == ACTIVE else None

    async def get_many_active(self, user_ids: list[str]) -> list[dict[str, Any]]:
        """Active users among ``user_ids`` (others left out), through the
        read cache when there is one: public reads (names on cards, public
        profiles). The documents are shared: do not modify them."""
        if not user_ids:
            return []  # (the driver refuses to_list(length=0))
        cached, version = self._cache.get_many(PEOPLE, user_ids) if self._cache else ({}, 0)
        missing = [i for i in user_ids if i not in cached]
        loaded: dict[str, dict[str, Any]] = {}
        for start in range(0, len(missing), IN_BATCH):
            # By _id alone, in batches: the embedded database checks every
            # candidate against the whole $in list.
            batch = missing[start:start + IN_BATCH]
            cursor = self._users.find({"_id": {"$in": batch}})
            for doc in await cursor.to_list(length=len(batch)):
                if doc.get("status") == ACTIVE:
                    loaded[doc["_id"]] = self._fields.open(COLLECTION, doc)
        if self._cache is not None and loaded:
            self._cache.put_many(PEOPLE, loaded, version)
        found = {**cached, **loaded}
        return [found[i] for i in dict.fromkeys(user_ids) if i in found]

    async def get_public(self, user_id: str) -> dict[str, Any] | None:
        """An active user for public reads (through the read cache)."""
        found = await self.get_many_active([user_id])
        return found[0] if found else None

    async def delete_unused(self, user_id: str) -> None:
        """Undo a ``create`` whose next step failed (nothing points at it yet)."""
        await self._users.delete_one({"_id": user_id})
        self._changed(user_id)

    async def find_by_email(self, email: str) -> dict[str, Any] | None:
        """Case-insensitive, through the blind index under every configured
        key; rows from before encryption (plaintext ``email``, no index)
        are found too until ``rotate-data-key`` has encrypted them."""
        doc = await self._users.find_one({EMAIL_INDEX: {"$in": self._fields.blind_indexes(email)}})
        if doc is None:  # two indexed queries: the embedded database scans for an $or
            doc = await self._users.find_one({"email": normalise_email(email)})
        return self._open(doc)

    async def update_profile(
        self, user_id: str, changes: dict[str, Any], *, now: datetime
    ) -> dict[str, Any] | None:
        updated = self._open(await update_and_get(
            self._users, {"_id": user_id, "status": ACTIVE},
            {"$set": {**self._fields.set_fields(COLLECTION, user_id, changes), "updated_at": now}},
        ))
        self._changed(user_id)
        return updated

    async def set_password_hash(self, user_id: str, password_hash: str, *, now: datetime) -> None:
        await self._users.update_one(
            {"_id": user_id}, {"$set": {"password_hash": password_hash, "updated_at": now}}
        )
        self._changed(user_id)

    async def set_first_password_hash(self, user_id: str, password_hash: str, *,
                                      now: datetime) -> bool:
        """Only for an active account without a password (signs in with a provider)."""
        result = await self._users.update_one(
            {"_id": user_id, "status": ACTIVE, "password_hash": None},
            {"$set": {"password_hash": password_hash, "updated_at": now}},
        )
        self._changed(user_id)
        return result.matched_count == 1

    async def mark_email_verified(self, user_id: str, *, now: datetime) -> bool:
        result = await self._users.update_one(
            {"_id": user_id, "status": ACTIVE},
            {"$set": {"email_verified": True, "updated_at": now}},
        )
        self._changed(user_id)
        return result.matched_count == 1

    async def set_role(self, user_id: str, role: str, *, now: datetime) -> bool:
        result = await self._users.update_one(
            {"_id": user_id}, {"$set": {"role": role, "updated_at": now}}
        )
        self._changed(user_id)
        return result.matched_count == 1

    async def set_status(self, user_id: str, status: str, *, now: datetime) -> bool:
        """Ban or unban (``BANNED``/``ACTIVE``); deleted accounts stay deleted."""
        result = await self._users.update_one(
            {"_id": user_id, "status": {"$ne": DELETED}},
            {"$set": {"status": status, "updated_at": now}},
        )
        self._changed(user_id)
        return result.matched_count == 1

    async def soft_delete(self, user_id: str, *, now: datetime) -> bool:
        """Mark deleted and free the email address for a new account; the
        address is kept aside until the purge."""
        result = await self._users.update_one(
            {"_id": user_id, "status": {"$ne": DELETED}},
            {
                "$set": {"status": DELETED, "deleted_at": now, "updated_at": now},
                "$rename": {"email": "deleted_email", EMAIL_INDEX: f"deleted_{EMAIL_INDEX}"},
            },
        )
        self._changed(user_id)
        return result.matched_count == 1

    async def due_for_purge(self, *, deleted_before: datetime, limit: int
                            ) -> list[dict[str, Any]]:
        """Accounts deleted before the grace cut-off and not purged yet."""
        cursor = self._users.find(
            {"status": DELETED, "deleted_at": {"$lt": deleted_before}, "purged": {"$ne": True}}
        ).limit(limit)
        return self._fields.open_all(COLLECTION, await cursor.to_list(length=limit))

    async def mark_purged(self, user_id: str, *, now: datetime) -> bool:
        """The last step of a purge: the account document keeps only
        ``PURGED_USER_FIELDS`` (no email, name, password hash or profile)."""
        doc = await self._users.find_one({"_id": user_id, "status": DELETED})
        if doc is None:
            return False
        await self._users.replace_one({"_id": user_id, "status": DELETED}, {
            **{k: doc[k] for k in PURGED_USER_FIELDS if k in doc},
            "display_name": PURGED_DISPLAY_NAME, "bio": "", "timezone": "UTC", "languages": [],
            "skills_offered": [], "skills_wanted": [], "email_verified": False,
            "purged": True, "purged_at": now, "updated_at": now,
        })
        self._changed(user_id)
        return True
