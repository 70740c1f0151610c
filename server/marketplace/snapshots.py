"""Stable pagination for lists ranked by a live score (relevance search,
matches): the first page ranks everything once and freezes the order in a
ranking snapshot; the cursor carries ``(snapshot id, offset)``, so later
pages never re-rank and edits made meanwhile cannot repeat or skip an entry.

A snapshot lives ``SNAPSHOT_TTL`` (30 minutes) from the first page and is
readable only by the viewer who made it (an anonymous one by whoever holds
the cursor). It is bound to the query it ranked (``key``), so a cursor
cannot be replayed against another search."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from ..clock import Clock
from ..errors import ValidationFailed
from ..storage.ids import encode_cursor
from ..storage.ranking_snapshots import RankingSnapshotStore

SNAPSHOT_TTL = timedelta(minutes=30)
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
        if owner is not None and owner != viewer_id:
            raise ValidationFailed.field("cursor", "This cursor was issued to another user.")
        if snapshot.get("kind") != kind or snapshot.get("key") != key:
            raise ValidationFailed.field(
                "cursor", "This cursor belongs to a different list or query; start again "
                          "from the first page.")
        ids, extras = snapshot["ids"], snapshot["extras"]
        end = offset + limit
        next_cursor = self._cursor(snapshot_id, end) if len(ids) > end else None
        return SnapshotPage(ids[offset:end], extras[offset:end], next_cursor)

    @staticmethod
    def _cursor(snapshot_id: str, offset: int) -> str:
        return encode_cursor({"k": CURSOR_KIND, "id": snapshot_id, "o": offset})
