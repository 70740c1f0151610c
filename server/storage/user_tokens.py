"""Single-use mailed tokens (email verification, password reset), stored
only as a hash."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from .atomic import update_and_get

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"


class UserTokenStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._tokens = db["user_tokens"]

    async def create_indexes(self) -> None:
        await self._tokens.create_index([("user_id", ASCENDING), ("purpose", ASCENDING)])
        await self._tokens.create_index("expires_at", expireAfterSeconds=0)

    async def create(
        self, *, token_hash: str, purpose: str, user_id: str, now: datetime, expires_at: datetime
    ) -> None:
        await self._tokens.insert_one({
            "_id": token_hash, "purpose": purpose, "user_id": user_id,
            "created_at": now, "expires_at": expires_at, "used_at": None,
        })

    async def consume(
        self, token_hash: str, *, purpose: str, now: datetime
    ) -> dict[str, Any] | None:
        """Mark used and return it, atomically; None if unknown, used or expired."""
        return await update_and_get(
            self._tokens,
            {"_id": token_hash, "purpose": purpose, "used_at": None, "expires_at": {"$gt": now}},
            {"$set": {"used_at": now}},
        )

    async def invalidate_all(self, user_id: str, *, purpose: str, now: datetime) -> None:
        await self._tokens.update_many(
            {"user_id": user_id, "purpose": purpose, "used_at": None},
            {"$set": {"used_at": now}},
        )

    async def delete_for_user(self, user_id: str) -> int:
        result = await self._tokens.delete_many({"user_id": user_id})
        return result.deleted_count
