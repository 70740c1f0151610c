"""Rooms: direct rooms (one per pair) and group rooms, membership checks,
and the caller's room list with last message and unread count."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import TTLCache
from loguru import logger

from ..bus import Bus
from ..clock import Clock
from ..errors import BadRequest, Blocked, Forbidden, NotAContact, NotFound, ValidationFailed
from ..storage.messages import MessageStore, RoomEnd
from ..storage.read_markers import ReadMarkerStore
from ..storage.rooms import DIRECT, GROUP, RoomStore
from ..storage.users import UserStore
from .notifier import Notifier
from .sequences import SequenceCache

MAX_GROUP_MEMBERS = 100
ROOM_CACHE_TTL_S = 120.0  # bounds a cached room's staleness should a room_changed publish fail
MAX_ROOMS_CACHED = 50_000  # room documents one node keeps (a few KB each)
UNREAD_CAP = 999  # unread counts above this are reported as 999 ("999+")
# Unread messages per room read along with the room's end (one query for a
# page of rooms); more than this are counted by a range read of their own.
UNREAD_READ_ALONG = 20
ROOM_CHANGED_TOPIC = "room_changed"  # {"room_id"}: drop it from every node's room cache
MEMBER_LEFT_EVENT = "room:member_left"
MEMBER_ADDED_EVENT = "room:member_added"


class RoomConsent(Protocol):
    """What rooms need of the consent area (server/consent)."""

    async def ensure_not_blocked(self, user_id: str, other_id: str) -> None: ...
    async def blocked_among(self, user_id: str, others: Iterable[str]) -> list[str]: ...
    async def related(self, viewer_id: str, person_ids: Iterable[str]) -> set[str]: ...
    async def changed(self, user_ids: Iterable[str]) -> None: ...


@dataclass(slots=True)
class RoomSummary:
    """A room in its member's list: where it ends and where they read to."""

    room: dict[str, Any]
    last_seq: int
    read_seq: int
    unread_count: int
    last_message: dict[str, Any] | None


class RoomService:
    """Membership is checked on every join, send, sync and read; room
    documents are cached per node for ``ROOM_CACHE_TTL_S``. When a group's
    membership changes (leave, add), the node that changed it drops the room
    from its cache and announces ``room_changed`` on the bus so every other
    node drops it too; a node whose bus reconnects drops its whole cache."""

    def __init__(
        self, *, rooms: RoomStore, messages: MessageStore, markers: ReadMarkerStore,
        users: UserStore, sequences: SequenceCache, clock: Clock, consent: RoomConsent,
        notifier: Notifier, bus: Bus,
    ) -> None:
        self._rooms = rooms
        self._messages = messages
        self._markers = markers
        self._users = users
        self._seqs = sequences
        self._clock = clock
        self._consent = consent
        self._notifier = notifier
        self._bus = bus
        self._cache: TTLCache[str, dict[str, Any]] = TTLCache(
            maxsize=MAX_ROOMS_CACHED, ttl=ROOM_CACHE_TTL_S, timer=clock.monotonic)
        bus.subscribe(ROOM_CHANGED_TOPIC, self._on_room_changed)
        bus.on_reconnect(self._forget_all)

    async def open_direct(
        self, user_id: str, other_user_id: str,
        *, before_create: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The direct room between two users, created on first use.
        Returns ``(room document, created)``.
        ``before_create`` runs (and may refuse) only when a room is new."""
        if user_id == other_user_id:
            raise ValidationFailed.field("user_id", "A direct room needs another user.")
        existing = await self._rooms.get_direct(user_id, other_user_id)
        if existing is not None:
            await self._consent.ensure_not_blocked(user_id, other_user_id)
            await self.mark_active(existing, user_id)
            return existing, False
        if await self._users.get_active(other_user_id) is None:
            raise NotFound("No such user.")
        await self._consent.ensure_not_blocked(user_id, other_user_id)
        if before_create is not None:
            await before_create()
        doc, created = await self._rooms.create_direct(
            user_id, other_user_id, now=self._clock.now()
        )
        if created:
            await self._consent.changed([user_id, other_user_id])
        else:
            await self.mark_active(doc, user_id)
        return doc, created

    async def mark_active(self, room: dict[str, Any], user_id: str) -> None:
        """A member opened or wrote in a direct room: from now on the other
        member has a relation with them (sees their presence, may add them
        to groups). Stored once; cached room documents are updated."""
        active = room.get("active_ids")
        if room["type"] != DIRECT or active is None or user_id in active:
            return
        if await self._rooms.mark_active(room["_id"], user_id):
            await self._consent.changed(room["member_ids"])
        room["active_ids"] = [*active, user_id]

    async def check_can_write(self, room: dict[str, Any], user_id: str) -> None:
        """Before a message from a member: in a direct room, ``blocked`` when
        either blocked the other (group rooms stay shared space: see
        docs/realtime.md, "Consent"); a first message marks the writer
        active."""
        await self.ensure_open(room, user_id)
        await self.mark_active(room, user_id)

    async def ensure_open(self, room: dict[str, Any], user_id: str) -> None:
        """``blocked`` in a direct room whose two members blocked either way."""
        if room["type"] != DIRECT:
            return
        for other in room["member_ids"]:
            await self._consent.ensure_not_blocked(user_id, other)

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
        await self._check_may_add(user_id, [m for m in members if m != user_id])
        doc = await self._rooms.create_group(
            name=name, member_ids=members, created_by=user_id, now=self._clock.now()
        )
        await self._consent.changed(members)
        return doc

    async def _check_may_add(self, user_id: str, others: list[str]) -> None:
        """Only people with a relation towards ``user_id`` (see
        ``ConsentService.related``), and nobody blocked either way."""
        if not others:
            return
        blocked = await self._consent.blocked_among(user_id, others)
        if blocked:
            raise Blocked("You cannot add someone you blocked or who blocked you.",
                          details={"user_ids": blocked})
        related = await self._consent.related(user_id, others)
        strangers = [o for o in others if o not in related]
        if strangers:
            raise NotAContact(details={"user_ids": strangers})

    async def leave(self, room_id: str, user_id: str) -> None:
        """Leave a group room. History stays for those who remain; the one
        who left gets no more messages and can no longer read it. Direct
        rooms cannot be left (block the person instead)."""
        room = await self._fresh(room_id)
        if room["type"] != GROUP:
            raise BadRequest("A direct room cannot be left; block the person instead.")
        if user_id not in room["member_ids"]:
            raise Forbidden("You are not a member of this room.")
        if not await self._rooms.remove_member(room_id, user_id):
            raise Forbidden("You are not a member of this room.")
        await self._room_changed(room_id)
        logger.info("user {} left room {}", user_id, room_id)
        await self._notifier.notify_users(room["member_ids"], MEMBER_LEFT_EVENT,
                                          {"room_id": room_id, "user_id": user_id})
        await self._consent.changed(room["member_ids"])

    async def add_members(self, room_id: str, user_id: str, user_ids: list[str]) -> dict[str, Any]:
        """A member adds people to a group room: each must have a relation
        towards the one who adds them, and nobody blocked either way."""
        room = await self._fresh(room_id)
        if user_id not in room["member_ids"]:
            raise Forbidden("You are not a member of this room.")
        if room["type"] != GROUP:
            raise BadRequest("People can only be added to group rooms.")
        new = [u for u in dict.fromkeys(user_ids) if u not in room["member_ids"]]
        if not new:
            return room
        if len(room["member_ids"]) + len(new) > MAX_GROUP_MEMBERS:
            raise ValidationFailed.field(
                "user_ids", f"A group has at most {MAX_GROUP_MEMBERS} members."
            )
        found = {u["_id"] for u in await self._users.get_many_active(new)}
        missing = [m for m in new if m not in found]
        if missing:
            raise ValidationFailed.field("user_ids", f"Unknown users: {', '.join(missing[:5])}.")
        await self._check_may_add(user_id, new)
        doc = await self._rooms.add_members(room_id, new)
        if doc is None:
            raise NotFound("No such room.")
        await self._room_changed(room_id)
        await self._notifier.notify_users(doc["member_ids"], MEMBER_ADDED_EVENT,
                                          {"room_id": room_id, "user_ids": new, "by": user_id})
        await self._consent.changed(doc["member_ids"])
        return doc

    async def _fresh(self, room_id: str) -> dict[str, Any]:
        doc = await self._rooms.get(room_id)
        if doc is None:
            raise NotFound("No such room.")
        return doc

    async def _room_changed(self, room_id: str) -> None:
        self._cache.pop(room_id, None)
        try:
            await self._bus.publish(ROOM_CHANGED_TOPIC, {"room_id": room_id})
        except Exception:
            logger.warning("rooms: could not announce a change of room {}", room_id)

    async def _on_room_changed(self, payload: dict[str, Any]) -> None:
        room_id = payload.get("room_id")
        if isinstance(room_id, str):
            self._cache.pop(room_id, None)

    async def _forget_all(self) -> None:
        self._cache.clear()

    async def get(self, room_id: str) -> dict[str, Any]:
        hit = self._cache.get(room_id)
        if hit is not None:
            return hit
        doc = await self._rooms.get(room_id)
        if doc is None:
            raise NotFound("No such room.")
        self._cache[room_id] = doc
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
    ) -> tuple[list[RoomSummary], str | None]:
        """A page of the caller's rooms (newest first by creation), each
        with its last message, last seq, read marker and unread count.
        Round trips: the rooms, their read markers, then one ``_id`` read
        for every room's end and its few unread messages (rooms this node
        knows the end of); rooms that moved on are found (``current``) and
        read the same way; a room with more than ``UNREAD_READ_ALONG``
        unread is counted on its own."""
        docs = await self._rooms.list_for_member(user_id, before_id=before_id, limit=limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        markers = await self._markers.get_many([d["_id"] for d in docs], user_id)
        read = {d["_id"]: markers.get(d["_id"], 0) for d in docs}
        # The end this node knows, or else the caller's read marker (often
        # the end: they read up to it), is checked for every room at once.
        guess = {d["_id"]: max(self._seqs.known(d["_id"]) or 0, read[d["_id"]]) for d in docs}
        ends, moved_on = await self._messages.ends_and_unread(
            {room_id: (last, read[room_id]) for room_id, last in guess.items()},
            reader_id=user_id, max_unread=UNREAD_READ_ALONG)
        moved = [d["_id"] for d in docs if d["_id"] not in ends]
        if moved:
            # A guess that moved on exists (seqs are gap-free): search from it.
            lasts = await asyncio.gather(*(
                self._seqs.current(room_id, exists=guess[room_id] if room_id in moved_on else 0)
                for room_id in moved))
            found, _ = await self._messages.ends_and_unread(
                {room_id: (last, read[room_id]) for room_id, last in zip(moved, lasts, strict=True)},
                reader_id=user_id, max_unread=UNREAD_READ_ALONG)
            ends.update(found)
        for room_id, end in ends.items():
            if end.last:
                self._seqs.observe(room_id, end.last)
        items = await asyncio.gather(*(
            self._summary(doc, user_id, read[doc["_id"]], ends.get(doc["_id"])) for doc in docs))
        return list(items), (docs[-1]["_id"] if more and docs else None)

    async def _summary(self, doc: dict[str, Any], user_id: str, read_seq: int,
                       end: RoomEnd | None) -> RoomSummary:
        if end is not None:  # confirmed by a batched read
            last, last_message, unread = end.last, end.message, end.unread
        else:  # moved on again meanwhile
            last = await self._seqs.current(doc["_id"])
            last_message = await self._messages.get(doc["_id"], last) if last else None
            unread = None
        if unread is None:
            unread = await self._messages.count_from_others(
                doc["_id"], user_id, after_seq=max(read_seq, last - UNREAD_CAP), upto_seq=last)
        return RoomSummary(room=doc, last_seq=last, read_seq=min(read_seq, last),
                           unread_count=min(unread, UNREAD_CAP), last_message=last_message)
