"""Rooms: direct rooms (one per pair) and group rooms, membership checks,
and the caller's room list with last message and unread count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..clock import Clock, isoformat
from ..errors import Forbidden, NotFound, ValidationFailed
from ..storage.messages import MessageStore
from ..storage.read_markers import ReadMarkerStore
from ..storage.rooms import RoomStore
from ..storage.users import UserStore
from .sequences import SequenceCache

MAX_GROUP_MEMBERS = 100
ROOM_CACHE_TTL_S = 30.0
UNREAD_CAP = 999  # unread counts above this are reported as 999 ("999+")


def public_message(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "room_id": doc["room_id"], "seq": doc["seq"],
        "sender_id": doc["sender_id"], "body": doc["body"], "client_id": doc["client_id"],
        "created_at": isoformat(doc["created_at"]), "deleted": bool(doc.get("deleted")),
    }


def public_room(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "type": doc["type"], "name": doc.get("name"),
        "member_ids": list(doc["member_ids"]), "created_by": doc.get("created_by"),
        "created_at": isoformat(doc["created_at"]),
    }


class RoomService:
    """Membership is checked on every join, send, sync and read; room
    documents are cached per node for ``ROOM_CACHE_TTL_S`` (membership of a
    room does not change after creation in this version)."""

    def __init__(
        self, *, rooms: RoomStore, messages: MessageStore, markers: ReadMarkerStore,
        users: UserStore, sequences: SequenceCache, clock: Clock,
    ) -> None:
        self._rooms = rooms
        self._messages = messages
        self._markers = markers
        self._users = users
        self._seqs = sequences
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def open_direct(
        self, user_id: str, other_user_id: str,
        *, before_create: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The direct room between two users, created on first use.
        Returns ``(room, created)``; ``room`` is the public shape.
        ``before_create`` runs (and may refuse) only when a room is new."""
        if user_id == other_user_id:
            raise ValidationFailed.field("user_id", "A direct room needs another user.")
        existing = await self._rooms.get_direct(user_id, other_user_id)
        if existing is not None:
            return public_room(existing), False
        if await self._users.get_active(other_user_id) is None:
            raise NotFound("No such user.")
        if before_create is not None:
            await before_create()
        doc, created = await self._rooms.create_direct(
            user_id, other_user_id, now=self._clock.now()
        )
        return public_room(doc), created

    async def create_group(
        self, user_id: str, *, name: str, member_ids: list[str]
    ) -> dict[str, Any]:
        members = list(dict.fromkeys([user_id, *member_ids]))
        if len(members) > MAX_GROUP_MEMBERS:
            raise ValidationFailed.field(
                "member_ids", f"A group has at most {MAX_GROUP_MEMBERS} members."
            )
        found = {u["_id"] for u in await self._users.get_many_active(members)}
        missing = [m for m in members if m not in found]
        if missing:
            raise ValidationFailed.field("member_ids", f"Unknown users: {', '.join(missing[:5])}.")
        doc = await self._rooms.create_group(
            name=name, member_ids=members, created_by=user_id, now=self._clock.now()
        )
        return public_room(doc)

    async def get(self, room_id: str) -> dict[str, Any]:
        now = time.monotonic()
        hit = self._cache.get(room_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        doc = await self._rooms.get(room_id)
        if doc is None:
            raise NotFound("No such room.")
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[room_id] = (now + ROOM_CACHE_TTL_S, doc)
        return doc

    async def require_member(self, room_id: str, user_id: str) -> dict[str, Any]:
        """The room document; ``not_found`` or ``forbidden`` otherwise."""
        room = await self.get(room_id)
        if user_id not in room["member_ids"]:
            raise Forbidden("You are not a member of this room.")
        return room

    async def is_member(self, room_id: str, user_id: str) -> bool:
        try:
            await self.require_member(room_id, user_id)
        except (NotFound, Forbidden):
            return False
        return True

    async def list_for_user(
        self, user_id: str, *, before_id: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the caller's rooms (newest first by creation), each
        with ``last_message``, ``last_seq`` and ``unread_count``."""
        docs = await self._rooms.list_for_member(user_id, before_id=before_id, limit=limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        markers = await self._markers.get_many([d["_id"] for d in docs], user_id)
        items = await asyncio.gather(*(
            self._summary(doc, user_id, markers.get(doc["_id"], 0)) for doc in docs
        ))
        return list(items), (docs[-1]["_id"] if more and docs else None)

    async def _summary(self, doc: dict[str, Any], user_id: str, read_seq: int) -> dict[str, Any]:
        last = await self._seqs.current(doc["_id"])
        last_message = await self._messages.get(doc["_id"], last) if last else None
        unread = await self._messages.count_from_others(
            doc["_id"], user_id, after_seq=max(read_seq, last - UNREAD_CAP), upto_seq=last
        )
        return {
            **public_room(doc), "last_seq": last, "read_seq": min(read_seq, last),
            "unread_count": min(unread, UNREAD_CAP),
            "last_message": public_message(last_message) if last_message else None,
        }
