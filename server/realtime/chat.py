"""Chat: sending (seq allocation, idempotency, durability), sync and
history by seq, read markers and typing.

A send costs one publish and a share of one database insert on the hot
path: concurrent sends to a room from this node are stored together, as one
ordered insert of consecutive seqs (``group_commit.py``); the room and its
members come from the per-node room cache, the next seq from the per-node
sequence cache (see ``sequences.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from ..clock import Clock
from ..errors import ApiError, Conflict, Unavailable, ValidationFailed
from ..schemas.human_text import TextError, clean_text
from ..storage.messages import ClientIdUsed, MessageStore, SeqTaken, message_id
from ..storage.read_markers import ReadMarkerStore
from ..views.rooms import message_view
from .group_commit import GroupCommit
from .notifier import Notifier
from .rooms import RoomService
from .sequences import SequenceCache

MAX_BODY_CHARS = 4000
MAX_SEND_ATTEMPTS = 64  # inserts one batch may take (clashes with other nodes, retries)
DEFAULT_MAX_BATCH = 64  # sends to one room stored by one insert (SKILLSHARE_MESSAGE_BATCH_MAX)
MAX_PENDING_PER_ROOM = 2000  # sends to one room waiting for their batch; more: unavailable
REFRESH_AFTER_CLASHES = 3  # after this many taken seqs in a row, re-read the room's end
DEFAULT_SYNC_LIMIT = 100
MAX_SYNC_LIMIT = 500
DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 100
# Typing indicators: the last one relayed per (user, room), for at most this
# many pairs, each kept this long (at least the typing interval).
MAX_TYPING_TRACKED = 100_000
TYPING_STATE_TTL_S = 60.0


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
    message: dict[str, Any]  # the stored message document
    created: bool  # False: an idempotent retry of an earlier send


@dataclass(frozen=True, slots=True)
class _Send:
    room: dict[str, Any]
    user_id: str
    client_id: str
    text: str


def _message_doc(room_id: str, seq: int, send: _Send, now: Any) -> dict[str, Any]:
    return {
        "_id": message_id(room_id, seq), "room_id": room_id, "seq": seq,
        "sender_id": send.user_id, "client_id": send.client_id, "body": send.text,
        "created_at": now,
    }


class ChatService:
    def __init__(
        self, *, rooms: RoomService, messages: MessageStore, markers: ReadMarkerStore,
        sequences: SequenceCache, notifier: Notifier, clock: Clock,
        typing_interval: float = 2.0, max_batch: int = DEFAULT_MAX_BATCH,
        on_persisted: Callable[[int], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
        on_batch_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """``max_batch``: most sends to one room stored by one insert (1:
        one insert per message). ``on_persisted(n)`` after ``n`` messages
        are stored; ``on_batch(size)`` as a batch starts;
        ``on_batch_failed(exc)`` when the database failed a whole batch."""
        self._rooms = rooms
        self._messages = messages
        self._markers = markers
        self._seqs = sequences
        self._notifier = notifier
        self._clock = clock
        self._typing_interval = typing_interval
        self._typing_last: TTLCache[tuple[str, str], tuple[float, bool]] = TTLCache(
            maxsize=MAX_TYPING_TRACKED, ttl=max(typing_interval, TYPING_STATE_TTL_S),
            timer=clock.monotonic)
        self._on_persisted = on_persisted
        self._on_batch_failed = on_batch_failed
        self._commits: GroupCommit[_Send, SendResult] = GroupCommit(
            self._commit_batch, max_batch=max_batch, max_pending=MAX_PENDING_PER_ROOM,
            on_batch=on_batch,
            on_batch_failed=on_batch_failed)

    async def send(self, user_id: str, room_id: str, client_id: str, body: str) -> SendResult:
        text = normalize_body(body)
        client_id = normalize_client_id(client_id)
        room = await self._rooms.require_member(room_id, user_id)
        await self._rooms.check_can_write(room, user_id)
        result, joined = await self._commits.submit(
            room_id, _Send(room, user_id, client_id, text), dedupe=(user_id, client_id))
        return SendResult(result.message, False) if joined else result

    async def close(self) -> None:
        """Fail the sends still waiting for a commit (``unavailable``)."""
        await self._commits.close()

    async def _commit_batch(self, room_id: str, sends: list[_Send]) -> list[SendResult | Exception]:
        """Store ``sends`` (all to ``room_id``, in order) at consecutive seqs
        from the room's end: one ordered insert of the whole block. A clash
        stops the insert after a stored prefix; the clashing send is
        resolved (an earlier send with its client_id) or the block moves up
        (another node took the seq), and the rest go again as one insert."""
        results: list[SendResult | Exception | None] = [None] * len(sends)
        todo = list(range(len(sends)))
        try:
            await self._store_batch(room_id, sends, todo, results)
        except Exception as exc:  # the database failed: what it stored stays acked
            if self._on_batch_failed is not None:
                self._on_batch_failed(exc)
            for i, result in enumerate(results):
                if result is None:
                    results[i] = Unavailable(
                        "The message was not stored; retry the send with the same client_id.")
        return results  # type: ignore[return-value]

    async def _store_batch(self, room_id: str, sends: list[_Send], todo: list[int],
                           results: list[Any]) -> None:
        known = self._seqs.known(room_id)
        seq = (known if known is not None else await self._seqs.current(room_id)) + 1
        clashes = 0
        for _ in range(MAX_SEND_ATTEMPTS):
            if not todo:
                break
            now = self._clock.now()
            docs = [_message_doc(room_id, seq + i, sends[j], now) for i, j in enumerate(todo)]
            stored, clash = await self._messages.insert_in_order(docs)
            if stored:
                clashes = 0
                await self._persisted(sends[0].room, docs[:stored], todo[:stored], results)
                seq += stored
                del todo[:stored]
            if clash is None:
                continue
            if isinstance(clash, ClientIdUsed):
                first = todo.pop(0)
                send = sends[first]
                try:
                    results[first] = await self._earlier_send(send.user_id, room_id, send.client_id)
                except ApiError as exc:
                    results[first] = exc
                continue
            assert isinstance(clash, SeqTaken)
            self._seqs.observe(room_id, seq)
            clashes += 1
            if clashes % REFRESH_AFTER_CLASHES == 0:
                seq = await self._seqs.current(room_id) + 1
            else:
                seq += 1
        for i in todo:
            results[i] = Unavailable("The room is too busy; retry the send with the same client_id.")

    async def _persisted(self, room: dict[str, Any], docs: list[dict[str, Any]],
                         indexes: list[int], results: list[Any]) -> None:
        """Stored: advance the seq cache, count, broadcast in seq order."""
        self._seqs.observe(room["_id"], docs[-1]["seq"])
        if self._on_persisted is not None:
            self._on_persisted(len(docs))
        # one step for the batch: on one node each member socket gets the
        # batch's frames in one write
        await self._notifier.notify_users_each(
            room["member_ids"], "message", [message_view(doc) for doc in docs])
        for doc, index in zip(docs, indexes, strict=True):
            results[index] = SendResult(doc, True)

    async def last_seq(self, room_id: str) -> int:
        return await self._seqs.current(room_id)

    async def _earlier_send(self, user_id: str, room_id: str, client_id: str) -> SendResult:
        earlier = await self._messages.by_client_id(user_id, client_id)
        if earlier is None:  # pragma: no cover - deleted in between
            raise Unavailable("Retry the send.")
        if earlier["room_id"] != room_id:
            raise Conflict("This client_id was already used for another room.")
        return SendResult(earlier, False)

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
        return docs, has_more

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
            return docs, hi < upper, last
        top = last if before_seq is None else min(last, before_seq - 1)
        lo = max(0, top - limit)
        docs = await self._messages.range(room_id, after_seq=lo, upto_seq=top)
        return docs, lo > 0, last

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
        now = self._clock.monotonic()
        last = self._typing_last.get(key)
        if last is not None and last[1] == typing and (not typing or now - last[0] < self._typing_interval):
            return False
        await self._rooms.ensure_open(room, user_id)
        self._typing_last[key] = (now, typing)
        others = [m for m in room["member_ids"] if m != user_id]
        await self._notifier.notify_users(
            others, "typing", {"room_id": room_id, "user_id": user_id, "typing": typing}
        )
        return True
