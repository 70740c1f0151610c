"""Stable pagination for lists ranked by a live score (relevance search,
matches): the first page ranks everything once and freezes the order in a
ranking snapshot; the cursor carries ``(snapshot id, offset)``, so later
pages never re-rank and edits made meanwhile cannot repeat or skip an entry.

A snapshot lives ``SNAPSHOT_TTL`` (30 minutes) from the first page and is
readable only by the viewer who made it (an anonymous one by whoever holds
the cursor). It is bound to the query it ranked (``key``), so a cursor
cannot be replayed against another search.

A ranking kept in the read cache is stored once and handed out again
(``store``/``first_page_of``) to every first page in the same reuse window
(``SNAPSHOT_REUSE``) instead of a write per first page; it then lives
``SNAPSHOT_TTL`` from the end of that window, so every cursor handed out
is good for at least 30 minutes. A relevance search's stored ranking is
shared by everyone who ran the same query (its listings are public); each
signed-in caller's cursor names them (a digest of their id), so another
caller's cursor is still refused."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ..clock import Clock
from ..errors import ValidationFailed
from ..storage.ids import encode_cursor
from ..storage.ranking_snapshots import RankingSnapshotStore

SNAPSHOT_TTL = timedelta(minutes=30)
SNAPSHOT_REUSE = timedelta(seconds=60)  # one stored ranking serves the first pages of a window
CURSOR_KIND = "s"
EXPIRED = "This cursor has expired; start again from the first page."
MAX_SNAPSHOT_ID = 64


def query_key(**parts: Any) -> str:
    """A short, stable digest of what was ranked (query tokens, filters)."""
    raw = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:32]


def is_snapshot_cursor(position: dict[str, Any]) -> bool:
    return position.get("k") == CURSOR_KIND


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    ids: list[str]
    extras: list[Any]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StoredRanking:
    """A ranking's first page and, when it has more, its stored snapshot:
    kept in the read cache and handed to every first page of its window."""
    ids: list[str]
    extras: list[Any]
    snapshot_id: str | None
    limit: int
    shared: bool


def viewer_tag(viewer_id: str | None) -> str | None:
    """Who a shared snapshot's cursor was issued to, without their id."""
    if viewer_id is None:
        return None
    return hashlib.sha256(viewer_id.encode()).hexdigest()[:16]


class RankingSnapshots:
    def __init__(self, *, store: RankingSnapshotStore, clock: Clock,
                 ttl: timedelta = SNAPSHOT_TTL) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl

    async def first_page(
        self, *, viewer_id: str | None, kind: str, key: str, ids: list[str],
        extras: list[Any], limit: int,
    ) -> SnapshotPage:
        """The first ``limit`` entries of a fresh ranking; the whole ranking
        is stored only when there is a second page."""
        next_cursor = None
        if len(ids) > limit:
            now = self._clock.now()
            snapshot_id = await self._store.create(
                viewer_id=viewer_id, kind=kind, key=key, ids=ids, extras=extras, now=now,
                expires_at=now + self._ttl,
            )
            next_cursor = self._cursor(snapshot_id, limit)
        return SnapshotPage(ids[:limit], extras[:limit], next_cursor)

    def window(self) -> int:
        """The current reuse window (part of the cache key of a stored
        ranking, so it is stored afresh in each)."""
        return int(self._clock.now().timestamp() // SNAPSHOT_REUSE.total_seconds())

    async def store(
        self, *, viewer_id: str | None, kind: str, key: str, ids: list[str],
        extras: list[Any], limit: int, window: int, shared: bool = False,
    ) -> StoredRanking:
        """Store a ranking once for the first pages of ``window``;
        ``shared``: for every caller (public data), cursors name the caller."""
        snapshot_id = None
        if len(ids) > limit:
            now = self._clock.now()
            window_end = datetime.fromtimestamp((window + 1) * SNAPSHOT_REUSE.total_seconds(),
                                                tz=UTC)
            snapshot_id = await self._store.create(
                viewer_id=None if shared else viewer_id, kind=kind, key=key, ids=ids,
                extras=extras, now=now, expires_at=max(now, window_end) + self._ttl,
                shared=shared,
            )
        return StoredRanking(ids[:limit], extras[:limit], snapshot_id, limit, shared)

    def first_page_of(self, stored: StoredRanking, *, viewer_id: str | None) -> SnapshotPage:
        """A stored ranking's first page, with a cursor for ``viewer_id``."""
        next_cursor = None
        if stored.snapshot_id is not None:
            next_cursor = self._cursor(stored.snapshot_id, stored.limit,
                                       viewer_tag(viewer_id) if stored.shared else None)
        return SnapshotPage(stored.ids, stored.extras, next_cursor)

    async def page(
        self, position: dict[str, Any], *, viewer_id: str | None, kind: str, key: str,
        limit: int,
    ) -> SnapshotPage:
        """The entries at the cursor's offset, as ranked on the first page."""
        snapshot_id, offset = position.get("id"), position.get("o")
        if (not isinstance(snapshot_id, str) or not 0 < len(snapshot_id) <= MAX_SNAPSHOT_ID
                or not isinstance(offset, int) or isinstance(offset, bool) or offset < 0):
            raise ValidationFailed.field("cursor", "Invalid cursor.")
        snapshot = await self._store.get(snapshot_id, now=self._clock.now())
        if snapshot is None:
            raise ValidationFailed.field("cursor", EXPIRED)
        owner = snapshot.get("viewer_id")
        tag = position.get("v") if snapshot.get("shared") else None
        if (owner is not None and owner != viewer_id) or (
                tag is not None and tag != viewer_tag(viewer_id)):
            raise ValidationFailed.field("cursor", "This cursor was issued to another user.")
        if snapshot.get("kind") != kind or snapshot.get("key") != key:
            raise ValidationFailed.field(
                "cursor", "This cursor belongs to a different list or query; start again "
                          "from the first page.")
        ids, extras = snapshot["ids"], snapshot["extras"]
        end = offset + limit
        next_cursor = self._cursor(snapshot_id, end, tag) if len(ids) > end else None
        return SnapshotPage(ids[offset:end], extras[offset:end], next_cursor)

    @staticmethod
    def _cursor(snapshot_id: str, offset: int, tag: str | None = None) -> str:
        position = {"k": CURSOR_KIND, "id": snapshot_id, "o": offset}
        if tag is not None:
            position["v"] = tag
        return encode_cursor(position)
