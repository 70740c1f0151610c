"""The ``identities`` collection: accounts at sign-in providers linked to
ours, one document per (provider, subject). ``email`` (the provider's) is
stored encrypted (server/storage/fields.py).

A person's linked identities, as ``GET /users/me`` lists them, are kept in
the read cache (``identities`` namespace, by user id); every write here
drops that person's entry on every node."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..errors import IdentityTaken
from ..read_cache import IDENTITIES, ReadCache
from .fields import FieldCrypto
from .ids import new_id

COLLECTION = "identities"


class IdentityStore:
    def __init__(self, db: AsyncDatabase, fields: FieldCrypto, *,
                 cache: ReadCache | None = None) -> None:
        self._identities = db[COLLECTION]
        self._fields = fields
        self._cache = cache

    def _changed(self, user_id: str) -> None:
        """After every write: the person's cached identities are stale (here
        and on every node)."""
        if self._cache is not None:
            self._cache.changed(IDENTITIES, user_id)

    async def create_indexes(self) -> None:
        await self._identities.create_index(
            [("provider", ASCENDING), ("subject", ASCENDING)], unique=True,
            name="provider_subject_unique")
        # one account per provider for each user (unlink first to switch)
        await self._identities.create_index(
            [("user_id", ASCENDING), ("provider", ASCENDING)], unique=True,
            name="user_provider_unique")

    async def find(self, provider: str, subject: str) -> dict[str, Any] | None:
        return self._fields.open(COLLECTION, await self._identities.find_one(
            {"provider": provider, "subject": subject}))

    async def create(
        self, *, user_id: str, provider: str, subject: str, email: str | None, now: datetime
    ) -> dict[str, Any]:
        doc = {"_id": new_id(), "user_id": user_id, "provider": provider, "subject": subject,
               "email": email, "linked_at": now, "last_used_at": now}
        try:
            await self._identities.insert_one(self._fields.seal(COLLECTION, doc))
        except DuplicateKeyError:
            raise IdentityTaken() from None
        self._changed(user_id)
        return doc

    async def restore(self, doc: dict[str, Any]) -> None:
        """Put back a document just deleted (an unlink that must not happen)."""
        with contextlib.suppress(DuplicateKeyError):
            await self._identities.insert_one(self._fields.seal(COLLECTION, doc))
        self._changed(doc["user_id"])

    async def touch(self, identity_id: str, *, user_id: str, now: datetime) -> None:
        """A sign-in used it (``last_used_at``, shown on ``GET /users/me``)."""
        await self._identities.update_one({"_id": identity_id}, {"$set": {"last_used_at": now}})
        self._changed(user_id)

    async def for_user(self, user_id: str) -> list[dict[str, Any]]:
        """The person's identities as stored now, oldest link first."""
        cursor = self._identities.find({"user_id": user_id}).sort("linked_at", ASCENDING)
        return self._fields.open_all(COLLECTION, await cursor.to_list(length=None))

    async def linked(self, user_id: str) -> list[dict[str, Any]]:
        """``for_user`` through the read cache (shown on ``GET /users/me``;
        decisions such as an unlink read ``for_user``). Shared: read-only."""
        if self._cache is None:
            return await self.for_user(user_id)
        return await self._cache.read(IDENTITIES, user_id, lambda: self.for_user(user_id))

    async def delete(self, user_id: str, provider: str) -> bool:
        result = await self._identities.delete_one({"user_id": user_id, "provider": provider})
        self._changed(user_id)
        return result.deleted_count == 1

    async def delete_for_user(self, user_id: str) -> int:
        result = await self._identities.delete_many({"user_id": user_id})
        self._changed(user_id)
        return result.deleted_count
