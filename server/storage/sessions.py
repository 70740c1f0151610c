"""The ``sessions`` collection: one document per login, holding the hash of
the current refresh token and of the ones already used (reuse detection)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from .atomic import update_and_get
from .fields import FieldCrypto
from .ids import new_id

USED_HASHES_KEPT = 50
MAX_SESSIONS_LISTED = 10_000  # a user's sessions in one list (the active ones are far fewer)
COLLECTION = "sessions"


class SessionStore:
    """``ip`` and ``user_agent`` are stored encrypted (server/storage/fields.py)."""

    def __init__(self, db: AsyncDatabase, fields: FieldCrypto) -> None:
        self._sessions = db[COLLECTION]
        self._fields = fields

    async def create_indexes(self) -> None:
        await self._sessions.create_index([("user_id", ASCENDING), ("revoked_at", ASCENDING)])
        await self._sessions.create_index([("revoked_at", ASCENDING)])
        # Expired sessions disappear by themselves.
        await self._sessions.create_index("expires_at", expireAfterSeconds=0)

    async def create(
        self,
        *,
        user_id: str,
        refresh_hash: str,
        now: datetime,
        expires_at: datetime,
        ip: str | None,
        user_agent: str | None,
    ) -> dict[str, Any]:
        doc = {
            "_id": new_id(),
            "user_id": user_id,
            "refresh_hash": refresh_hash,
            "used_hashes": [],
            "created_at": now,
            "last_used_at": now,
            "expires_at": expires_at,
            "revoked_at": None,
            "ip": ip,
            "user_agent": (user_agent or "")[:256],
        }
        await self._sessions.insert_one(self._fields.seal(COLLECTION, doc))
        return doc

    async def get(self, session_id: str) -> dict[str, Any] | None:
        return self._fields.open(COLLECTION, await self._sessions.find_one({"_id": session_id}))

    async def rotate(
        self,
        session_id: str,
        *,
        old_hash: str,
        new_hash: str,
        now: datetime,
        expires_at: datetime,
        ip: str | None,
    ) -> dict[str, Any] | None:
        """Swap the refresh hash atomically; None when ``old_hash`` is not the
        current one (used, or lost a race) or the session is gone."""
        return self._fields.open(COLLECTION, await update_and_get(
            self._sessions,
            {"_id": session_id, "refresh_hash": old_hash, "revoked_at": None,
             "expires_at": {"$gt": now}},
            {
                "$set": {"refresh_hash": new_hash, "last_used_at": now,
                         "expires_at": expires_at,
                         "ip": self._fields.encrypt(COLLECTION, "ip", session_id, ip)},
                "$push": {"used_hashes": {"$each": [old_hash], "$slice": -USED_HASHES_KEPT}},
            },
        ))

    async def revoke(self, session_id: str, *, now: datetime, user_id: str | None = None) -> bool:
        query: dict[str, Any] = {"_id": session_id, "revoked_at": None}
        if user_id is not None:
            query["user_id"] = user_id
        result = await self._sessions.update_one(query, {"$set": {"revoked_at": now}})
        return result.modified_count == 1

    async def revoke_all(
        self, user_id: str, *, now: datetime, except_id: str | None = None
    ) -> list[str]:
        """Revoke every live session of a user (but ``except_id``); returns
        their ids."""
        ids = [
            doc["_id"]
            async for doc in self._sessions.find(
                {"user_id": user_id, "revoked_at": None}, {"_id": 1}
            )
            if doc["_id"] != except_id
        ]
        if ids:
            await self._sessions.update_many(
                {"_id": {"$in": ids}, "revoked_at": None}, {"$set": {"revoked_at": now}}
            )
        return ids

    async def list_live(
        self, user_id: str, *, now: datetime, limit: int, before_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Live sessions, newest first, ``_id`` below ``before_id``."""
        query: dict[str, Any] = {"user_id": user_id, "revoked_at": None, "expires_at": {"$gt": now}}
        if before_id is not None:
            query["_id"] = {"$lt": before_id}
        cursor = self._sessions.find(
            query, {"refresh_hash": 0, "used_hashes": 0},
        ).sort("_id", DESCENDING).limit(limit)
        return self._fields.open_all(COLLECTION, await cursor.to_list(length=limit))

    async def revoked_since(self, since: datetime) -> list[str]:
        """Ids of sessions revoked after ``since`` (start-up only: rebuilding
        the revocation list)."""
        cursor = self._sessions.find({"revoked_at": {"$gt": since}}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def list_all(self, user_id: str) -> list[dict[str, Any]]:
        cursor = self._sessions.find({"user_id": user_id}, {"refresh_hash": 0, "used_hashes": 0})
        return self._fields.open_all(COLLECTION, await cursor.to_list(length=MAX_SESSIONS_LISTED))

    async def scrub_user(self, user_id: str) -> int:
        """A purged account's sessions lose where they came from (IP, user
        agent) and their token hashes; the documents stay until they expire
        (TTL) so a revocation still holds after a restart."""
        result = await self._sessions.update_many(
            {"user_id": user_id, "scrubbed": {"$ne": True}},
            {"$set": {"ip": None, "user_agent": "", "refresh_hash": None, "used_hashes": [],
                      "scrubbed": True}},
        )
        return result.modified_count
