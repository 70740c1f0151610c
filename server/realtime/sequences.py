"""What this node knows about each room's last ``seq``.

The cache only ever holds a seq known to exist, so ``known + 1`` is a safe
first guess for the next message: if another node took it, the insert
fails on the duplicate ``_id`` and the sender moves up. Seqs stay gap-free
because a seq is only tried when the one below it exists. Messages other
nodes store reach this node when one of its sockets is a member
(``observe_message``), which keeps the guess current in rooms whose members
talk from different nodes, a 1:1 room's usual case in a cluster."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..storage.messages import MessageStore

MAX_ROOMS_CACHED = 100_000


class SequenceCache:
    def __init__(self, messages: MessageStore, *, max_rooms: int = MAX_ROOMS_CACHED) -> None:
        self._messages = messages
        self._known: OrderedDict[str, int] = OrderedDict()
        self._max_rooms = max_rooms

    def known(self, room_id: str) -> int | None:
        return self._known.get(room_id)

    def observe(self, room_id: str, seq: int) -> None:
        if seq > self._known.get(room_id, 0):
            self._known[room_id] = seq
        self._known.move_to_end(room_id)
        while len(self._known) > self._max_rooms:
            self._known.popitem(last=False)

    def observe_message(self, data: Any) -> None:
        """A ``message`` event another node emitted: its seq is stored (the
        event goes out after its insert), so this node's next send to the
        room starts above it instead of clashing with it."""
        for message in data if isinstance(data, list) else [data]:  # the event's arguments
            if isinstance(message, dict):
                room_id, seq = message.get("room_id"), message.get("seq")
                if isinstance(room_id, str) and type(seq) is int and seq > 0:
                    self.observe(room_id, seq)

    async def current(self, room_id: str, *, exists: int = 0) -> int:
        """The room's last seq as stored now (one query when the cache is
        current, a few for a room this node has not seen); ``exists``: a
        seq the caller knows is stored (searched from there if higher)."""
        known = max(self._known.get(room_id, 0), exists)
        last = await self._messages.last_seq(room_id, known=known)
        if last:
            self.observe(room_id, last)
        return last
