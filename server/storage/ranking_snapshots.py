"""The ``ranking_snapshots`` collection: a ranked list frozen when its first
page was served, so later pages of a score-ranked list (relevance search,
matches) read positions from it instead of re-ranking live data.

One document per stored ranking that had more than one page (a first page,
or one per window for rankings the read cache keeps; marketplace/snapshots.py):
``{_id: <random>, viewer_id: <user id | None>, kind, key, ranking: <bytes>,
created_at, expires_at[, shared: true]}`` (``shared``: one relevance
search's ranking for every caller, ``viewer_id`` None; the cursors name
their caller). ``ranking`` is ``{"ids": [...], "extras": [...]}`` packed
as JSON in one binary field: ``ids`` is the whole ranked order (bounded by
the caller), ``extras`` a parallel list of whatever the caller needs to
render an entry without re-ranking (a score, match details; JSON values).
One opaque field instead of ~1,000 ids and as many small documents: the
database then encodes, decodes and logs (its oplog) one value per insert,
which made the insert the costliest part of a first page of matches
(docs/benchmarks.md, round 4). Documents stored before this carry ``ids``
and ``extras`` as arrays and are read as they are.
Reads are by ``_id`` only; a TTL index on ``expires_at`` removes old ones
(the sweep runs about once a minute, so reads check ``expires_at`` too)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import orjson
from bson import Binary
from pymongo.asynchronous.database import AsyncDatabase


def new_snapshot_id() -> str:
    """Random, not creation-ordered: an anonymous snapshot is readable by
    anyone holding its cursor, so its id must not be guessable."""
    return secrets.token_urlsafe(16)


class RankingSnapshotStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._snapshots = db["ranking_snapshots"]

    async def create_indexes(self) -> None:
        await self._snapshots.create_index("expires_at", expireAfterSeconds=0)
        await self._snapshots.create_index("viewer_id")

    async def create(
        self, *, viewer_id: str | None, kind: str, key: str, ids: list[str],
        extras: list[Any], now: datetime, expires_at: datetime, shared: bool = False,
    ) -> str:
        """``shared``: one ranking for every caller of that query (its
        cursors name their caller; ``viewer_id`` is then None)."""
        snapshot_id = new_snapshot_id()
        await self._snapshots.insert_one({
            "_id": snapshot_id, "viewer_id": viewer_id, "kind": kind, "key": key,
            "ranking": Binary(orjson.dumps({"ids": ids, "extras": extras})),
            "created_at": now, "expires_at": expires_at,
            **({"shared": True} if shared else {}),
        })
        return snapshot_id

    async def get(self, snapshot_id: str, *, now: datetime) -> dict[str, Any] | None:
        """The snapshot (with ``ids`` and ``extras`` unpacked), unless
        unknown or expired."""
        # by _id alone (the embedded database scans for any other field)
        doc = await self._snapshots.find_one({"_id": snapshot_id})
        if doc is None or doc["expires_at"] <= now:
            return None
        packed = doc.pop("ranking", None)
        if packed is not None:
            doc.update(orjson.loads(packed))
        return doc

    async def delete_for_viewer(self, viewer_id: str) -> int:
        result = await self._snapshots.delete_many({"viewer_id": viewer_id})
        return result.deleted_count
