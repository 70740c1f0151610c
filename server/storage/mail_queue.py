"""The ``mail_queue`` collection: mails waiting to be sent, so a failing SMTP
server delays a mail instead of losing it. Any node's worker may claim a mail;
a claim is a lease, so a crashed worker's mail is picked up again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from .atomic import update_and_get
from .fields import FieldCrypto
from .ids import new_id

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
SENT_RETENTION = timedelta(days=7)
CLAIM_ATTEMPTS = 5
COLLECTION = "mail_queue"


class MailQueueStore:
    """``to``, ``subject``, ``text``, ``html`` and ``last_error`` are stored encrypted
    (server/storage/fields.py); ``to_index``, the blind index of ``to``,
    finds the mails to an address."""

    def __init__(self, db: AsyncDatabase, fields: FieldCrypto) -> None:
        self._mails = db[COLLECTION]
        self._fields = fields

    async def create_indexes(self) -> None:
        await self._mails.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        await self._mails.create_index("purge_at", expireAfterSeconds=0)
        await self._mails.create_index("user_ids")
        await self._mails.create_index("to")
        await self._mails.create_index("to_index")

    async def enqueue(
        self, *, to: str, subject: str, text: str, html: str, kind: str, now: datetime,
        user_ids: list[str] | None = None, lease: timedelta | None = None,
    ) -> dict[str, Any]:
        """Store a mail; returns it (not encrypted). ``user_ids``: the
        accounts the mail is to or about, so the purge of one of them finds
        it. ``lease``: the mail is stored claimed by the caller, as
        ``claim_due`` would claim it (its first attempt; no other worker
        takes it before the lease ends)."""
        mail = {
            "_id": new_id(), "to": to, "subject": subject, "text": text, "html": html,
            "kind": kind, "status": PENDING, "attempts": 0 if lease is None else 1,
            "created_at": now, "next_attempt_at": now if lease is None else now + lease,
            "last_error": None, "user_ids": user_ids or [],
        }
        await self._mails.insert_one(self._fields.seal(COLLECTION, mail))
        return mail

    async def claim_due(self, *, now: datetime, lease: timedelta) -> dict[str, Any] | None:
        """Lease the oldest due mail to this worker; another worker racing
        for the same one loses the conditional update and tries the next."""
        for _ in range(CLAIM_ATTEMPTS):
            candidate = await self._mails.find_one(
                {"status": PENDING, "next_attempt_at": {"$lte": now}},
                sort=[("next_attempt_at", ASCENDING)],
            )
            if candidate is None:
                return None
            claimed = await update_and_get(
                self._mails,
                {"_id": candidate["_id"], "status": PENDING,
                 "next_attempt_at": candidate["next_attempt_at"]},
                {"$set": {"next_attempt_at": now + lease}, "$inc": {"attempts": 1}},
            )
            if claimed is not None:
                return self._fields.open(COLLECTION, claimed)
        return None

    async def mark_sent(self, mail_id: str, *, now: datetime) -> None:
        await self._mails.update_one(
            {"_id": mail_id},
            {"$set": {"status": SENT, "sent_at": now, "purge_at": now + SENT_RETENTION},
             "$unset": {"text": "", "html": ""}},
        )

    async def schedule_retry(
        self, mail_id: str, *, error: str, next_attempt_at: datetime, give_up: bool
    ) -> None:
        fields: dict[str, Any] = {
            "last_error": self._fields.encrypt(COLLECTION, "last_error", mail_id, error[:500]),
            "next_attempt_at": next_attempt_at}
        if give_up:
            fields["status"] = FAILED
        await self._mails.update_one({"_id": mail_id}, {"$set": fields})

    async def get(self, mail_id: str) -> dict[str, Any] | None:
        return self._fields.open(COLLECTION, await self._mails.find_one({"_id": mail_id}))

    async def delete_concerning(
        self, *, user_id: str, email: str | None, created_before: datetime
    ) -> list[str]:
        """Delete every mail to or about the account: tagged with its id, or
        sent to its address before ``created_before`` (its deletion: the
        address may belong to a new account since). Returns their ids."""
        clauses: list[dict[str, Any]] = [{"user_ids": user_id}]
        if email:
            # the blind index under every configured key; plaintext ``to``
            # for mails queued before encryption
            clauses.append({"to_index": {"$in": self._fields.blind_indexes(email)},
                            "created_at": {"$lte": created_before}})
            clauses.append({"to": email, "created_at": {"$lte": created_before}})
        ids = [doc["_id"] async for doc in self._mails.find({"$or": clauses}, {"_id": 1})]
        if ids:
            await self._mails.delete_many({"_id": {"$in": ids}})
        return ids
