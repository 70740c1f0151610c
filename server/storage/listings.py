"""The ``listings`` collection.

A listing is readable by the public only while ``visible`` is true: not
deleted, not hidden by a moderator, and its owner active (``owner_active``
is kept in step on ban, unban and account deletion). Search uses the
``tokens`` array (multikey index), never ``$text``.

SecantusDB sorts in memory, so "newest first" pages walk backwards through
``_id`` in time windows (a bounded range on the leading ``_id`` index),
widening the window until the page is full. Updates are ``update_one``
plus a read: the embedded database runs ``find_one_and_update`` as a scan."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from ..read_cache import LISTING_PAGES, LISTINGS, ReadCache
from .ids import new_id
from .transactions import Tx

ACTIVE = "active"
HIDDEN = "hidden"
DELETED = "deleted"

FIRST_WINDOW = timedelta(minutes=10)
CLOCK_SKEW = timedelta(minutes=1)
MAX_WINDOWS = 40
IN_BATCH = 100  # values per $in query
WINDOW_GROWTH = 2
MAX_SEARCH_CANDIDATES = 2000
SEARCH_FIELDS = {"_id": 1, "title_tokens": 1, "tag_tokens": 1, "tokens": 1}
SEMANTIC_FIELDS = {**SEARCH_FIELDS, "embedding": 1}
# What ``matches`` reads when search candidates are filtered after the query.
FILTER_FIELDS = {"visible": 1, "category": 1, "tags": 1, "owner_id": 1, "level": 1, "mode": 1}
# Fields with an index ``(field, _id)`` whose equality can lead a newest-first range.
LEADING_FIELDS = ("owner_id", "category")
EMBED_SOURCE_FIELDS = {"title": 1, "description": 1, "tags": 1, "updated_at": 1}
# What decides whether a listing is on a page, and where: a change of any
# of these drops the cached page ids, any other change only its card.
PAGE_FIELDS = ("visible", "status", "owner_active", "category", "tags", "level", "mode",
               "tokens", "title_tokens", "tag_tokens")
# What a purged owner's listing keeps: its id (skill requests and reviews
# point at it) and its rating counters; no text the owner wrote.
PURGED_LISTING_FIELDS = ("_id", "owner_id", "rating_sum", "rating_count", "created_at")


def _id_at(moment: datetime) -> str:
    return str(ObjectId.from_datetime(moment))


def _time_of(listing_id: str) -> datetime:
    return ObjectId(listing_id).generation_time


def _selecting(doc: dict[str, Any], name: str) -> Any:
    """A field as pages select by it: arrays by membership, in any order."""
    value = doc.get(name)
    return frozenset(value) if isinstance(value, list) else value


def _matches_one(value: Any, condition: Any) -> bool:
    """MongoDB's equality and ``$in`` (an array field matches when any
    element does), the only operators listing filters use."""
    values = value if isinstance(value, list) else [value]
    if isinstance(condition, dict):
        if set(condition) != {"$in"}:
            raise ValueError(f"unsupported listing filter {condition!r}")
        return any(v in condition["$in"] for v in values)
    return condition in values


def matches(doc: dict[str, Any], filters: dict[str, Any]) -> bool:
    """Does ``doc`` satisfy ``filters`` (field -> value or ``{"$in": [...]}``)?"""
    return all(_matches_one(doc.get(name), cond) for name, cond in filters.items())


def _leading_equality(filters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the index-led part of the query, the filters left to ``matches``)."""
    for name in LEADING_FIELDS:
        value = filters.get(name)
        if isinstance(value, str):
            rest = {k: v for k, v in filters.items() if k != name}
            return {name: value}, {**rest, "visible": True}
        # anything else (e.g. an $in) stays a post-filter
    return {"visible": True}, dict(filters)


class ListingStore:
    def __init__(self, db: AsyncDatabase, *, cache: ReadCache | None = None) -> None:
        self._listings = db["listings"]
        self._oldest: str | None = None
        self._cache = cache

    def _changed(self, listing_id: str | None, *, pages: bool) -> None:
        """After every write that public reads show: the listing's cached
        card (``None``: every listing's) and, with ``pages``, the ids of every
        cached page are stale (here and on every node)."""
        if self._cache is not None:
            self._cache.changed(LISTINGS, listing_id)
            if pages:
                self._cache.changed(LISTING_PAGES)

    async def create_indexes(self) -> None:
        self._oldest = None
        await self._listings.create_index([("tokens", ASCENDING)])
        await self._listings.create_index([("owner_id", ASCENDING), ("_id", DESCENDING)])
        await self._listings.create_index([("category", ASCENDING), ("_id", DESCENDING)])
        await self._listings.create_index([("tags", ASCENDING)])
        await self._listings.create_index([("embed_pending", ASCENDING)])
        # newest-first pages: ranges on _id behind visible=true
        await self._listings.create_index([("visible", ASCENDING), ("_id", DESCENDING)])

    async def create(self, doc: dict[str, Any], *, now: datetime) -> dict[str, Any]:
        full = {
            "_id": new_id(), **doc, "status": ACTIVE, "owner_active": True, "visible": True,
            "rating_sum": 0, "rating_count": 0, "created_at": now, "updated_at": now,
        }
        await self._listings.insert_one(full)
        if self._cache is not None:  # (no card of it is cached yet)
            self._cache.changed(LISTING_PAGES)
        return full

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        """Seeding: complete documents, as ``create`` would build them."""
        if docs:
            await self._listings.insert_many(docs)
            self._changed(None, pages=True)

    async def get(self, listing_id: str) -> dict[str, Any] | None:
        # by _id alone: with a second field the embedded database scans
        doc = await self._listings.find_one({"_id": listing_id})
        return None if doc is None or doc.get("status") == DELETED else doc

    async def update(
        self, listing_id: str, changes: dict[str, Any], *, now: datetime,
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """``previous``: the document as read before, to tell whether the
        edit moves it on a page (without it, pages are dropped)."""
        result = await self._listings.update_one(
            {"_id": listing_id, "status": {"$ne": DELETED}},
            {"$set": {**changes, "updated_at": now}},
        )
        updated = await self.get(listing_id) if result.matched_count else None
        moved = previous is None or updated is None or any(
            _selecting(previous, name) != _selecting(updated, name) for name in PAGE_FIELDS)
        self._changed(listing_id, pages=moved)
        return updated

    async def set_status(
        self, listing_id: str, status: str, *, now: datetime, reason: str | None = None
    ) -> dict[str, Any] | None:
        """active/hidden/deleted; ``visible`` follows (deleted is final)."""
        current = await self.get(listing_id)
        if current is None:
            return None
        changes: dict[str, Any] = {
            "status": status, "updated_at": now,
            "visible": status == ACTIVE and bool(current.get("owner_active", True)),
        }
        if status == HIDDEN:
            changes["hidden_reason"] = reason or ""
        if status == DELETED:
            changes["deleted_at"] = now
        result = await self._listings.update_one(
            {"_id": listing_id, "status": {"$ne": DELETED}}, {"$set": changes}
        )
        self._changed(listing_id, pages=True)
        if not result.matched_count:
            return None
        return await self._listings.find_one({"_id": listing_id})

    async def set_owner_active(self, owner_id: str, active: bool, *, now: datetime) -> int:
        result = await self._listings.update_many(
            {"owner_id": owner_id, "owner_active": {"$ne": active}},
            {"$set": {"owner_active": active, "updated_at": now}},
        )
        # visible = active status and active owner
        shown = await self._listings.update_many(
            {"owner_id": owner_id, "status": ACTIVE}, {"$set": {"visible": active}}
        )
        # Only on a change: reads that find an inactive owner call this too.
        if result.modified_count or shown.modified_count:
            self._changed(None, pages=True)
        return result.modified_count

    async def add_rating(self, listing_id: str, rating: int, *, tx: Tx = None) -> None:
        await self._listings.update_one(
            {"_id": listing_id}, {"$inc": {"rating_sum": rating, "rating_count": 1}}, session=tx,
        )
        self._changed(listing_id, pages=False)  # (again by the caller once committed)

    async def by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        docs = await self._listings.find({"_id": {"$in": ids}}).to_list(length=len(ids))
        order = {i: n for n, i in enumerate(ids)}
        return sorted(docs, key=lambda d: order[d["_id"]])

    async def by_owner(self, owner_id: str) -> list[dict[str, Any]]:
        return await self._listings.find({"owner_id": owner_id}).to_list(length=None)

    async def tags_by_owner(self, owner_ids: list[str]) -> dict[str, list[str]]:
        """Tags of the owners' visible listings, per owner (the query names
        only the indexed ``owner_id``; visibility is checked here)."""
        out: dict[str, list[str]] = {}
        for start in range(0, len(owner_ids), IN_BATCH):
            # in batches: the embedded database checks every candidate
            # against the whole $in list
            cursor = self._listings.find(
                {"owner_id": {"$in": owner_ids[start:start + IN_BATCH]}},
                {"tags": 1, "owner_id": 1, "visible": 1})
            for doc in await cursor.to_list(length=None):
                if doc.get("visible"):
                    out.setdefault(doc["owner_id"], []).extend(doc.get("tags", []))
        return out

    async def _oldest_id(self) -> str | None:
        if self._oldest is None:
            # hinted: unhinted, the embedded database sorts the whole collection
            docs = await self._listings.find({}, {"_id": 1}).sort("_id", ASCENDING) \
                .hint([("_id", ASCENDING)]).limit(1).to_list(length=1)
            self._oldest = docs[0]["_id"] if docs else None
        return self._oldest

    async def newest(
        self, filters: dict[str, Any], *, limit: int, before_id: str | None, now: datetime
    ) -> list[dict[str, Any]]:
        """Visible listings matching ``filters``, newest first, older than
        ``before_id``: bounded ``_id`` ranges behind an equality on an
        index's leading field (owner, category, else ``visible``), doubling
        the window; the other filters are checked here, not in the query
        (SecantusDB scans the collection when a query names a field its index
        lacks). ``now`` bounds the first window (listings created up to
        ``CLOCK_SKEW`` after it on another node are included)."""
        oldest = await self._oldest_id()
        if oldest is None:
            return []
        lead, rest = _leading_equality(filters)
        upper = before_id or _id_at(now + CLOCK_SKEW)
        window = FIRST_WINDOW
        found: list[dict[str, Any]] = []
        for _ in range(MAX_WINDOWS):
            if upper <= oldest:
                break
            lower_time = _time_of(upper) - window
            lower = _id_at(lower_time) if lower_time > _time_of(oldest) else oldest
            id_range = {"$lt": upper, "$gte": lower}
            cursor = self._listings.find({**lead, "_id": id_range}).sort("_id", DESCENDING)
            if not rest:
                cursor = cursor.limit(limit - len(found))
            found.extend(d for d in await cursor.to_list(length=None) if matches(d, rest))
            if len(found) >= limit or lower == oldest:
                break
            upper = lower
            window *= WINDOW_GROWTH
        else:
            cursor = self._listings.find({**lead, "_id": {"$lt": upper}}).sort("_id", DESCENDING)
            found.extend(d for d in await cursor.to_list(length=None) if matches(d, rest))
        return found[:limit]

    async def search_candidates(
        self, tokens: list[str], filters: dict[str, Any], *, embedding: bool = False,
    ) -> list[dict[str, Any]]:
        """Visible listings sharing at least one token, only the fields
        ranking needs; the newest ``MAX_SEARCH_CANDIDATES`` at most. The
        query names only ``tokens`` (its multikey index); visibility and
        the filters are checked here."""
        fields = {**(SEMANTIC_FIELDS if embedding else SEARCH_FIELDS), **FILTER_FIELDS}
        cursor = self._listings.find({"tokens": {"$in": tokens}}, fields)
        wanted = {**filters, "visible": True}
        docs = [d for d in await cursor.to_list(length=None) if matches(d, wanted)]
        if len(docs) > MAX_SEARCH_CANDIDATES:
            docs.sort(key=lambda d: d["_id"], reverse=True)
            docs = docs[:MAX_SEARCH_CANDIDATES]
        return docs

    async def semantic_candidates(self, filters: dict[str, Any], *, limit: int
                                  ) -> list[dict[str, Any]]:
        """The newest ``limit`` visible listings that have an embedding."""
        query = {**filters, "visible": True, "embedding": {"$exists": True}}
        cursor = self._listings.find(query, SEMANTIC_FIELDS).sort("_id", DESCENDING)
        return await cursor.limit(limit).to_list(length=limit)

    async def embedding_pending(self, limit: int) -> list[dict[str, Any]]:
        """Visible listings whose text changed since embedded (or never was)."""
        query = {"embed_pending": True, "visible": True}
        return await self._listings.find(query, EMBED_SOURCE_FIELDS).limit(limit) \
            .to_list(length=limit)

    async def mark_unembedded(self) -> int:
        """Listings from before embeddings (no ``embed_pending`` field) become
        pending; one scan when the embedding worker starts."""
        result = await self._listings.update_many(
            {"embed_pending": {"$exists": False}}, {"$set": {"embed_pending": True}})
        return result.modified_count

    async def set_embedding(self, listing_id: str, vector: list[float], *,
                            updated_at: datetime) -> None:
        """Store the vector unless the listing was edited since it was read."""
        await self._listings.update_one(
            {"_id": listing_id, "updated_at": updated_at},
            {"$set": {"embedding": vector, "embed_pending": False}})

    async def purge_owned(self, owner_id: str, *, now: datetime, limit: int) -> int:
        """Replace up to ``limit`` of the owner's listings by deleted stubs
        holding only ``PURGED_LISTING_FIELDS``. Returns how many; call
        again until 0."""
        docs = await self._listings.find(
            {"owner_id": owner_id, "purged": {"$ne": True}}
        ).limit(limit).to_list(length=limit)
        if not docs:
            return 0
        await self._listings.bulk_write([
            ReplaceOne({"_id": d["_id"]}, {
                **{k: d[k] for k in PURGED_LISTING_FIELDS if k in d},
                "status": DELETED, "visible": False, "owner_active": False, "purged": True,
                "deleted_at": d.get("deleted_at") or now, "updated_at": now,
            }) for d in docs
        ], ordered=False)
        self._oldest = None
        self._changed(None, pages=True)
        return len(docs)
