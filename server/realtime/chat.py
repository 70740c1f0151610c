"""Chat: sending (seq allocation, idempotency, durability), sync and
history by seq, read markers and typing.

A send costs one database insert and one publish on the hot path: the room
and its members come from the per-node room cache, the next seq from the
per-node sequence cache (see ``sequences.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import Conflict, Unavailable, ValidationFailed
from ..schemas.human_text import TextError, clean_text
from ..storage.messages import ClientIdUsed, MessageStore, SeqTaken, message_id
from ..storage.read_markers import ReadMarkerStore
from .notifier import Notifier
from .rooms import RoomService, public_message
from .sequences import SequenceCache

MAX_BODY_CHARS = 4000
MAX_SEND_ATTEMPTS = 64
REFRESH_AFTER_CLASHES = 3  # after this many taken seqs in a row, re-read the room's end
DEFAULT_SYNC_LIMIT = 100
MAX_SYNC_LIMIT = 500
DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 100


def normalize_body(body: str) -> str:
    """The stored form of a message body: multi-line human text
    (``schemas.human_text``: NFC, line breaks as ``\\n``, no control characters
    other than newline and tab, no bidi controls, not blank), leading and
    trailing whitespace trimmed; 1..4000 characters (code points)."""
    try:
        text = clean_text(body, multiline=True).strip()
    except TextError as exc:
        raise ValidationFailed.field("body", f"The message {exc}.") from None
    if not text:
        raise ValidationFailed.field("body", "The message is empty.")
    if len(text) > MAX_BODY_CHARS:
        raise ValidationFailed.field(
            "body", f"The message is longer than {MAX_BODY_CHARS} characters."
        )
    return text


def normalize_client_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValidationFailed.field("client_id", "client_id must be a UUID.") from None


@dataclass(frozen=True, slots=True)
class SendResult:
    message: dict[str, Any]
    created: bool  # False: an idempotent retry of an earlier send


class ChatService:
    def __init__(
        self, *, rooms: RoomService, messages: MessageStore, markers: ReadMarkerStore,
        sequences: SequenceCache, notifier: Notifier, clock: Clock,
        typing_interval: float = 2.0, on_persisted: Any = None,
    ) -> None:
        self._rooms = rooms
        self._messages = messages
        self._markers = markers
        self._seqs = sequences
        self._notifier = notifier
        self._clock = clock
        self._typing_interval = typing_interval
        self._typing_last: dict[tuple[str, str], tuple[float, bool]] = {}
        self._on_persisted = on_persisted
        self._send_locks: dict[str, list[Any]] = {}  # room -> [Lock, holders + waiters]

    async def send(self, user_id: str, room_id: str, client_id: str, body: str) -> SendResult:
        text = normalize_body(body)
        client_id = normalize_client_id(client_id)
        room = await self._rooms.require_member(room_id, user_id)
        await self._rooms.check_can_write(room, user_id)
        async with self._room_lock(room_id):
            return await self._send_locked(room, user_id, client_id, text)

    @contextlib.asynccontextmanager
    async def _room_lock(self, room_id: str) -> AsyncIterator[None]:
        """Sends to one room from this node go one at a time, so they do not
        race each other for the same seq (only other nodes can clash)."""
        entry = self._send_locks.get(room_id)
        if entry is None:
            entry = self._send_locks[room_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._send_locks.pop(room_id, None)

    async def _send_locked(
        self, room: dict[str, Any], user_id: str, client_id: str, text: str
    ) -> SendResult:
        room_id = room["_id"]
        known = self._seqs.known(room_id)
        seq = (known if known is not None else await self._seqs.current(room_id)) + 1
        clashes = 0
        for _ in range(MAX_SEND_ATTEMPTS):
            doc = {
                "_id": message_id(room_id, seq), "room_id": room_id, "seq": seq,
                "sender_id": user_id, "client_id": client_id, "body": text,
                "created_at": self._clock.now(),
            }
            outcome = await self._messages.insert(doc)
            if outcome is None:
                self._seqs.observe(room_id, seq)
                if self._on_persisted is not None:
                    self._on_persisted()
                message = public_message(doc)
                await self._notifier.notify_users(room["member_ids"], "message", message)
                return SendResult(message, True)
            if isinstance(outcome, ClientIdUsed):
                return await self._earlier_send(user_id, room_id, client_id)
            assert isinstance(outcome, SeqTaken)
            self._seqs.observe(room_id, seq)
            clashes += 1
            if clashes % REFRESH_AFTER_CLASHES == 0:
                seq = await self._seqs.current(room_id) + 1
            else:
                seq += 1
        raise Unavailable("The room is too busy; retry the send with the same client_id.")

    async def last_seq(self, room_id: str) -> int:
        return await self._seqs.current(room_id)

    async def _earlier_send(self, user_id: str, room_id: str, client_id: str) -> SendResult:
        earlier = await self._messages.by_client_id(user_id, client_id)
        if earlier is None:  # pragma: no cover - deleted in between
            raise Unavailable("Retry the send.")
        if earlier["room_id"] != room_id:
            raise Conflict("This client_id was already used for another room.")
        return SendResult(public_message(earlier), False)

    async def sync(
        self, user_id: str, room_id: str, *, after_seq: int, limit: int = DEFAULT_SYNC_LIMIT
    ) -> tuple[list[dict[str, Any]], bool]:
        """Every message after ``after_seq``, in order, at most ``limit``;
        ``has_more`` says whether to ask again from the last one."""
        await self._rooms.require_member(room_id, user_id)
        docs = await self._messages.range(room_id, after_seq=after_seq, upto_seq=after_seq + limit)
        if docs:
            self._seqs.observe(room_id, docs[-1]["seq"])
        has_more = False
        if len(docs) == limit:
            has_more = (self._seqs.known(room_id) or 0) > after_seq + limit or (
                await self._messages.get(room_id, after_seq + limit + 1) is not None
            )
        return [public_message(d) for d in docs], has_more

    async def history(
        self, user_id: str, room_id: str, *, before_seq: int | None, after_seq: int | None,
        limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> tuple[list[dict[str, Any]], bool, int]:
        """A page of history in seq order: after ``after_seq`` (oldest first),
        before ``before_seq``, or the latest ``limit`` when neither is given.
        Returns ``(messages, has_more, last_seq)``; ``has_more`` is about the
        direction asked for (older for before/latest, newer for after)."""
        await self._rooms.require_member(room_id, user_id)
        last = await self._seqs.current(room_id)
        if after_seq is not None:
            upper = last if before_seq is None else min(last, before_seq - 1)
            hi = min(upper, after_seq + limit)
            docs = await self._messages.range(room_id, after_seq=after_seq, upto_seq=hi)
            return [public_message(d) for d in docs], hi < upper, last
        top = last if before_seq is None else min(last, before_seq - 1)
        lo = max(0, top - limit)
        docs = await self._messages.range(room_id, after_seq=lo, upto_seq=top)
        return [public_message(d) for d in docs], lo > 0, last

    async def mark_read(self, user_id: str, room_id: str, seq: int) -> int:
        """Move the caller's read marker up to ``seq`` (clamped to the room's
        last seq) and tell every member's sockets. Returns the stored seq."""
        room = await self._rooms.require_member(room_id, user_id)
        known = self._seqs.known(room_id) or 0
        if seq > known:
            seq = min(seq, await self._seqs.current(room_id))
        seq = await self._markers.advance(room_id, user_id, seq, now=self._clock.now())
        await self._notifier.notify_users(
            room["member_ids"], "read", {"room_id": room_id, "user_id": user_id, "seq": seq}
        )
        return seq

    async def typing(self, user_id: str, room_id: str, typing: bool) -> bool:
        """Relay a typing indicator to the other members; ``typing: true`` at
        most once per ``typing_interval`` per user and room. Returns whether
        it was relayed."""
        room = await self._rooms.require_member(room_id, user_id)
        key = (user_id, room_id)
        now = time.monotonic()
        last = self._typing_last.get(key)
        if last is not None and last[1] == typing and (not typing or now - last[0] < self._typing_interval):
            return False
        await self._rooms.ensure_open(room, user_id)
        if len(self._typing_last) > 100_000:
            self._typing_last.clear()
        self._typing_last[key] = (now, typing)
        others = [m for m in room["member_ids"] if m != user_id]
        await self._notifier.notify_users(
            others, "typing", {"room_id": room_id, "user_id": user_id, "typing": typing}
        )
        return True
