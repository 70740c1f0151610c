"""``EmbeddedExpiry``: TTL indexes on the embedded database, swept by the node.

MongoDB expires documents by their TTL indexes on its own. SecantusDB does
too, but its sweep reads and decodes every document of every collection
with a TTL index once a minute while holding its storage-wide lock, so
every command waits behind it (ranking snapshots, sessions and sent mails
grow by thousands an hour; docs/benchmarks.md, "Round 7"). The embedded
database's process starts SecantusDB with that sweep off, and the node runs
this one instead: once a minute, one indexed range delete per TTL index
(``{field: {$lt: now - expireAfterSeconds}}``, with the index's partial
filter), through the ordinary command path, which locks one collection at a
time and reads only what expired. Only for the embedded database."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from pymongo.asynchronous.database import AsyncDatabase

from ..tasks import cancel_and_wait

SWEEP_INTERVAL_S = 60.0  # as often as MongoDB's own TTL monitor


def ttl_query(index: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """What a TTL index expires at ``now`` (None: not a TTL index MongoDB
    would expire by: one field, not ``_id``, a number of seconds)."""
    seconds = index.get("expireAfterSeconds")
    keys = list(index.get("key", {}).items())
    if (isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0
            or len(keys) != 1 or keys[0][0] == "_id"):
        return None
    query: dict[str, Any] = {keys[0][0]: {"$lt": now - timedelta(seconds=float(seconds))}}
    partial = index.get("partialFilterExpression")
    return {"$and": [query, partial]} if partial else query


class EmbeddedExpiry:
    def __init__(self, db: AsyncDatabase, *, interval: float = SWEEP_INTERVAL_S) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, *, now: datetime | None = None) -> int:
        """Delete every document a TTL index says has expired; how many."""
        now = now or datetime.now(UTC)
        deleted = 0
        for name in await self._db.list_collection_names():
            collection = self._db[name]
            for index in await (await collection.list_indexes()).to_list(length=None):
                query = ttl_query(index, now)
                if query is not None:
                    deleted += (await collection.delete_many(query)).deleted_count
        return deleted

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="embedded-expiry")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                deleted = await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the supervisor reports the database itself
                logger.warning("embedded database: expiring documents failed ({!r})", exc)
                continue
            if deleted:
                logger.debug("embedded database: {} expired documents deleted", deleted)
