"""The append-only ``audit_log`` collection: security-relevant actions with
actor, action, target, IP, request id and time. Entries are never deleted; the only update is the
purge of a deleted account, which blanks the IPs of entries about it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from .fields import FieldCrypto
from .ids import new_id

COLLECTION = "audit_log"


class AuditStore:
    """``ip`` is stored encrypted (server/storage/fields.py)."""

    def __init__(self, db: AsyncDatabase, fields: FieldCrypto) -> None:
        self._log = db[COLLECTION]
        self._fields = fields

    async def create_indexes(self) -> None:
        await self._log.create_index([("actor_id", ASCENDING), ("_id", DESCENDING)])
        await self._log.create_index([("action", ASCENDING), ("_id", DESCENDING)])
        await self._log.create_index([("target", ASCENDING)])

    async def record(
        self,
        *,
        action: str,
        actor_id: str | None,
        target: str | None,
        ip: str | None,
        request_id: str | None,
        at: datetime,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self._log.insert_one(self._fields.seal(COLLECTION, {
            "_id": new_id(), "action": action, "actor_id": actor_id, "target": target,
            "ip": ip, "request_id": request_id, "at": at, "details": details or {},
        }))

    async def page(
        self,
        *,
        limit: int,
        before_id: str | None = None,
        action: str | None = None,
        actor_id: str | None = None,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if before_id:
            query["_id"] = {"$lt": before_id}
        if action:
            query["action"] = action
        if actor_id:
            query["actor_id"] = actor_id
        cursor = self._log.find(query).sort("_id", DESCENDING).limit(limit)
        return self._fields.open_all(COLLECTION, await cursor.to_list(length=limit))

    async def scrub_ips(self, user_id: str) -> int:
        """Blank the IP of every entry the user acted in or was the target
        of; the entries themselves (action, ids, time) stay."""
        modified = 0
        for field in ("actor_id", "target"):
            result = await self._log.update_many(
                {field: user_id, "ip": {"$ne": None}}, {"$set": {"ip": None}}
            )
            modified += result.modified_count
        return modified
