"""The ``messages`` collection.

``_id`` is ``"<room_id>:<seq, 10 digits>"``, so the primary key itself
allocates ``seq``: an insert at a taken seq fails with a duplicate ``_id``.
A unique index on ``(sender_id, client_id)`` makes sends idempotent. Reads
are ranges on ``(room_id, seq)`` (SecantusDB answers index ranges fast, but
not ``_id`` ranges nor sort + limit) or ``_id`` point lookups."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .fields import FieldCrypto
from .ids import DELETED_USER_ID

SEQ_DIGITS = 10
DUPLICATE_KEY_CODES = (11000, 11001)
SENDER_CLIENT_INDEX = "sender_client_unique"
# Offsets probed (as one $in query) when looking for the end of a room.
PROBE_STEPS = tuple(2 ** k for k in range(34))
PROBE_POINTS = 64
IDS_PER_QUERY = 100  # the embedded database checks an $in list linearly
COLLECTION = "messages"


def message_id(room_id: str, seq: int) -> str:
    return f"{room_id}:{seq:0{SEQ_DIGITS}d}"


def tombstone_client_id(doc_id: str) -> str:
    """A tombstone's ``client_id``: derived from the message id, so it is
    stable (re-running the purge changes nothing) and unique under the
    ``(sender_id, client_id)`` index, and tells nothing about the sender."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"skillshare:tombstone:{doc_id}"))


@dataclass(frozen=True, slots=True)
class RoomEnd:
    """Where a room ends (``ends_and_unread``): its last seq and message
    (None in an empty room), and the reader's unread count if it was read."""

    last: int
    message: dict[str, Any] | None
    unread: int | None


@dataclass(frozen=True, slots=True)
class SeqTaken:
    """``insert`` lost the race for this seq."""


@dataclass(frozen=True, slots=True)
class ClientIdUsed:
    """``insert`` found the sender's ``client_id`` already stored."""


def _clash(key_pattern: Any, errmsg: Any) -> SeqTaken | ClientIdUsed:
    """Which unique key a duplicate-key error is about."""
    if "client_id" in (key_pattern or {}) or SENDER_CLIENT_INDEX in str(errmsg or ""):
        return ClientIdUsed()
    return SeqTaken()


class MessageStore:
    """``body`` is stored encrypted (server/storage/fields.py)."""

    def __init__(self, db: AsyncDatabase, fields: FieldCrypto) -> None:
        self._messages = db[COLLECTION]
        self._fields = fields

    async def create_indexes(self) -> None:
        await self._messages.create_index(
            [("room_id", ASCENDING), ("seq", ASCENDING)], name="room_seq"
        )
        await self._messages.create_index(
            [("sender_id", ASCENDING), ("client_id", ASCENDING)], unique=True,
            name=SENDER_CLIENT_INDEX,
        )

    async def insert(self, doc: dict[str, Any]) -> None | SeqTaken | ClientIdUsed:
        """One write. ``None`` when stored; otherwise which unique key clashed."""
        try:
            await self._messages.insert_one(self._fields.seal(COLLECTION, doc))
        except DuplicateKeyError as exc:
            details = exc.details or {}
            return _clash(details.get("keyPattern"), details.get("errmsg", str(exc)))
        return None

    async def insert_in_order(
        self, docs: list[dict[str, Any]]
    ) -> tuple[int, None | SeqTaken | ClientIdUsed]:
        """One ordered write of ``docs`` that stops at the first clash:
        returns how many of the first documents were stored and, if it
        stopped early, which unique key the next one clashed on (nothing
        after it was tried). Ordered, so what is stored is always a prefix:
        a batch of consecutive seqs never leaves a hole."""
        if len(docs) == 1:
            outcome = await self.insert(docs[0])
            return (1, None) if outcome is None else (0, outcome)
        try:
            await self._messages.insert_many(
                [self._fields.seal(COLLECTION, d) for d in docs], ordered=True)
        except BulkWriteError as exc:
            errors = (exc.details or {}).get("writeErrors") or []
            first = min(errors, key=lambda e: e.get("index", 0), default=None)
            if first is None or first.get("code") not in DUPLICATE_KEY_CODES:
                raise
            return first["index"], _clash(first.get("keyPattern"), first.get("errmsg"))
        return len(docs), None

    async def insert_many_unchecked(self, docs: list[dict[str, Any]]) -> None:
        """Bulk load for benchmarks and imports: no idempotency handling."""
        await self._messages.insert_many([self._fields.seal(COLLECTION, d) for d in docs],
                                         ordered=False)

    async def by_client_id(self, sender_id: str, client_id: str) -> dict[str, Any] | None:
        return self._fields.open(COLLECTION, await self._messages.find_one(
            {"sender_id": sender_id, "client_id": client_id}))

    async def get(self, room_id: str, seq: int) -> dict[str, Any] | None:
        return self._fields.open(COLLECTION,
                                 await self._messages.find_one({"_id": message_id(room_id, seq)}))

    async def range(self, room_id: str, *, after_seq: int, upto_seq: int) -> list[dict[str, Any]]:
        """Messages with ``after_seq < seq <= upto_seq``, in seq order."""
        if upto_seq <= after_seq:
            return []
        cursor = self._messages.find(
            {"room_id": room_id, "seq": {"$gt": after_seq, "$lte": upto_seq}}
        )
        docs = await cursor.to_list(length=None)
        docs.sort(key=lambda d: d["seq"])
        return self._fields.open_all(COLLECTION, docs)

    async def count_from_others(
        self, room_id: str, user_id: str, *, after_seq: int, upto_seq: int
    ) -> int:
        """Messages in ``(after_seq, upto_seq]`` not sent by ``user_id``.
        A plain index range read and counted here: the database plans
        ``count`` (an aggregation) as a collection scan."""
        if upto_seq <= after_seq:
            return 0
        cursor = self._messages.find(
            {"room_id": room_id, "seq": {"$gt": after_seq, "$lte": upto_seq}},
            {"_id": 0, "sender_id": 1},
        )
        return sum([1 async for doc in cursor if doc.get("sender_id") != user_id])

    async def _existing(self, room_id: str, seqs: list[int]) -> set[int]:
        ids = [message_id(room_id, s) for s in seqs]
        cursor = self._messages.find({"_id": {"$in": ids}}, {"seq": 1})
        return {doc["seq"] async for doc in cursor}

    async def ends_and_unread(self, rooms: dict[str, tuple[int, int]], *, reader_id: str,
                              max_unread: int) -> tuple[dict[str, RoomEnd], set[str]]:
        """For many rooms at once (one ``_id`` read per ``IDS_PER_QUERY``
        ids): ``rooms`` maps a room to ``(last, read)`` — the seq believed
        to be its last one and the reader's read marker. Each room whose
        last seq is still ``last`` gets its last message and, when at most
        ``max_unread`` messages follow ``read``, how many of those others
        sent (read along in the same query; otherwise ``unread`` is None:
        count them with ``count_from_others``). Returns those, and the
        rooms that moved past ``last`` (so ``last`` exists); a room in
        neither has no message ``last``. Seqs are gap-free, so "``last``
        exists and ``last + 1`` does not" means ``last`` is the end."""
        wanted: list[tuple[str, int]] = []
        for room_id, (last, read) in rooms.items():
            wanted += [(room_id, last), (room_id, last + 1)] if last else [(room_id, 1)]
            if 0 < last - read <= max_unread:
                wanted += [(room_id, seq) for seq in range(max(read, 0) + 1, last)]
        seen: dict[tuple[str, int], dict[str, Any]] = {}
        for start in range(0, len(wanted), IDS_PER_QUERY):
            ids = [message_id(r, s) for r, s in wanted[start:start + IDS_PER_QUERY]]
            async for doc in self._messages.find({"_id": {"$in": ids}}):
                seen[(doc["room_id"], doc["seq"])] = doc
        out: dict[str, RoomEnd] = {}
        moved: set[str] = set()
        for room_id, (last, read) in rooms.items():
            if (room_id, last + 1) in seen:
                moved.add(room_id)
                continue
            if not last:
                out[room_id] = RoomEnd(last=0, message=None, unread=0)
                continue
            if (room_id, last) not in seen:
                continue  # ``last`` was not stored (not a seq this room reached)
            unread: int | None = None
            if last <= read:
                unread = 0
            elif last - read <= max_unread:
                unread = sum(seen[(room_id, seq)].get("sender_id") != reader_id
                             for seq in range(max(read, 0) + 1, last + 1)
                             if (room_id, seq) in seen)
            out[room_id] = RoomEnd(last=last, unread=unread,
                                   message=self._fields.open(COLLECTION, seen[(room_id, last)]))
        return out, moved

    async def last_seq(self, room_id: str, *, known: int = 0) -> int:
        """The highest stored seq, given that ``known`` exists (0: none
        known). Seqs are gap-free, so existence is a prefix: gallop forward
        with point lookups, then narrow down. Usually one query when
        ``known`` is current; ~4 for a cold 100,000-message room."""
        low = known
        steps = [low + step for step in PROBE_STEPS]
        found = await self._existing(room_id, steps)
        if not found:
            return low
        low = max(found)
        high = next(s for s in steps if s > low)  # first probe that is missing
        while high - low > 1:
            span = high - low
            points = sorted({low + max(1, span * i // PROBE_POINTS) for i in range(1, PROBE_POINTS)})
            points = [p for p in points if p < high]
            found = await self._existing(room_id, points)
            if found:
                low = max(found)
            above = [p for p in points if p > low]
            high = above[0] if above else high
        return low

    async def delete_room(self, room_id: str) -> int:
        result = await self._messages.delete_many({"room_id": room_id})
        return result.deleted_count

    async def export_sent(self, sender_id: str) -> list[dict[str, Any]]:
        return self._fields.open_all(
            COLLECTION, await self._messages.find({"sender_id": sender_id}).to_list(length=None))

    async def tombstone_sent(self, sender_id: str, *, limit: int) -> int:
        """Turn up to ``limit`` of the sender's messages into tombstones: same
        ``_id``, room and seq (seqs stay gap-free), body removed, sender
        replaced by ``DELETED_USER_ID``, ``deleted: true``. Returns how many;
        call again until 0."""
        docs = await self._messages.find({"sender_id": sender_id}, {"_id": 1}).limit(limit) \
            .to_list(length=limit)
        if not docs:
            return 0
        await self._messages.bulk_write([
            UpdateOne({"_id": d["_id"], "sender_id": sender_id}, {"$set": {
                "sender_id": DELETED_USER_ID, "client_id": tombstone_client_id(d["_id"]),
                "body": "", "deleted": True,
            }}) for d in docs
        ], ordered=False)
        return len(docs)
