"""What this node knows about each room's last ``seq``.

The cache only ever holds a seq known to exist, so ``known + 1`` is a safe
first guess for the next message: if another node took it, the insert
fails on the duplicate ``_id`` and the sender moves up. Seqs stay gap-free
because a seq is only tried when the one below it exists."""

from __future__ import annotations

from collections import OrderedDict

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

    async def current(self, room_id: str, *, exists: int = 0) -> int:
        """The room's last seq as stored now (one query when the cache is
        current, a few for a room this node has not seen); ``exists``: a
        seq the caller knows is stored (searched from there if higher)."""
        known = max(self._known.get(room_id, 0), exists)
        last = await self._messages.last_seq(room_id, known=known)
        if last:
            self.observe(room_id, last)
        return last
