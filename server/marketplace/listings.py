"""Listings: create, read, edit, soft-delete, and search with filters and
stable cursor pagination (newest first, or by relevance)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..ai.service import SemanticService
from ..ai.vectors import cosine
from ..auth.sessions import ClientInfo
from ..clock import Clock
from ..errors import Forbidden, NotFound, ValidationFailed
from ..read_cache import LISTING_PAGES, LISTINGS, ReadCache
from ..storage.audit import AuditStore
from ..storage.ids import decode_cursor, encode_cursor, is_id
from ..storage.listings import ACTIVE, DELETED, HIDDEN, ListingStore
from ..storage.users import UserStore
from ..views.marketplace import export_view
from .text import (
    MAX_QUERY_TOKENS,
    MAX_TAGS,
    normalise_tag,
    normalise_tags,
    search_tokens,
    tag_tokens,
)
from .people import active_users
from .vocabulary import QueryUnit, Vocabulary, default_vocabulary, unit_tokens
from .results import Named, Page
from .snapshots import (
    EXPIRED,
    RankingSnapshots,
    StoredRanking,
    is_snapshot_cursor,
    query_key,
)

TITLE_WEIGHT = 3
TAG_WEIGHT = 2
TEXT_WEIGHT = 1
# A query's own words and their synonyms count double a related skill's.
SYNONYM_WEIGHT = 2
RELATED_WEIGHT = 1
MAX_EXPANDED_TOKENS = 64  # tokens of the expanded query sent to the candidate filter
# With Gemini: a listing whose embedding is this similar to the query's
# gains up to SEMANTIC_WEIGHT points (a title hit of the query's own word).
SEMANTIC_WEIGHT = 6
MIN_SIMILARITY = 0.5
MAX_SEMANTIC_CANDIDATES = 500  # newest embedded listings also ranked by similarity alone


class SkillIndexer(Protocol):
    async def refresh(self, user_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ListingFilters:
    q: str | None = None
    category: str | None = None
    tag: str | None = None
    owner: str | None = None
    level: str | None = None
    mode: str | None = None
    sort: str | None = None


def searchable(fields: dict[str, Any]) -> dict[str, Any]:
    """The derived fields search reads, from title, description and tags."""
    title = search_tokens(fields["title"])
    tags = tag_tokens(fields["tags"])
    tokens = dict.fromkeys(title + tags + search_tokens(fields["description"]))
    return {"title_tokens": title, "tag_tokens": tags, "tokens": list(tokens),
            "embed_pending": True}


def embedding_text(doc: dict[str, Any]) -> str:
    """What of a listing is embedded: its title, tags and description."""
    return "\n".join([doc.get("title", ""), ", ".join(doc.get("tags", [])),
                      doc.get("description", "")]).strip()


def relevance(doc: dict[str, Any], units: list[QueryUnit]) -> int:
    """Each query unit scores its best term: (2 for the query's words and
    their synonyms, 1 for related skills) x (3 in the title, else 2 in the
    tags, else 1 in the description)."""
    fields = ((TITLE_WEIGHT, set(doc["title_tokens"])), (TAG_WEIGHT, set(doc["tag_tokens"])),
              (TEXT_WEIGHT, set(doc["tokens"])))
    score = 0
    for unit in units:
        best = 0
        for weight, terms in ((SYNONYM_WEIGHT, unit.synonyms), (RELATED_WEIGHT, unit.related)):
            for term in terms:
                for field_weight, present in fields:
                    if present.issuperset(term):
                        best = max(best, weight * field_weight)
                        break
        score += best
    return score


def semantic_points(similarity: float) -> int:
    return round(SEMANTIC_WEIGHT * similarity) if similarity >= MIN_SIMILARITY else 0


def rank_lexical(candidates: list[dict[str, Any]], units: list[QueryUnit],
                 vector: list[float] | None = None) -> list[tuple[int, str]]:
    """``(score, id)`` best first (ties: newer first), scores above 0 only;
    with a query ``vector``, similarity points are added (blend)."""
    scored = ((relevance(d, units)
               + (semantic_points(cosine(vector, d.get("embedding"))) if vector else 0),
               d["_id"]) for d in candidates)
    return sorted((s for s in scored if s[0] > 0), reverse=True)


def clean_tags(tags: list[str]) -> list[str]:
    cleaned = normalise_tags(tags)
    if len(cleaned) > MAX_TAGS:
        raise ValidationFailed.field("tags", f"At most {MAX_TAGS} distinct tags.")
    return cleaned


class ListingService:
    def __init__(
        self, *, listings: ListingStore, users: UserStore, audit: AuditStore,
        skills: SkillIndexer, snapshots: RankingSnapshots, clock: Clock,
        vocabulary: Vocabulary | None = None, semantic: SemanticService | None = None,
        cache: ReadCache | None = None,
    ) -> None:
        self._cache = cache
        self._semantic = semantic
        self._vocabulary = vocabulary or default_vocabulary()
        self._listings = listings
        self._snapshots = snapshots
        self._users = users
        self._audit = audit
        self._skills = skills
        self._clock = clock

    async def create(self, owner_id: str, data: dict[str, Any]) -> Named:
        owner = await self._users.get_active(owner_id)
        if owner is None:
            raise Forbidden("This account is not active.")
        fields = {**data, "tags": clean_tags(data.get("tags", []))}
        doc = await self._listings.create(
            {"owner_id": owner_id, **fields, **searchable(fields)}, now=self._clock.now()
        )
        await self._skills.refresh(owner_id)
        return Named(doc, {owner_id: owner})

    async def _readable(self, listing_id: str, viewer_id: str | None, role: str | None
                        ) -> dict[str, Any]:
        doc = await self._listings.get(listing_id) if is_id(listing_id) else None
        if doc is None:
            raise NotFound("No such listing.")
        privileged = viewer_id == doc["owner_id"] or role == "admin"
        if not doc["visible"] and not privileged:
            raise NotFound("No such listing.")
        return doc

    async def get(self, listing_id: str, *, viewer_id: str | None = None,
                  role: str | None = None) -> Named:
        if self._cache is not None:
            public = await self._public(listing_id)
            if public is not None:
                return public
        doc = await self._readable(listing_id, viewer_id, role)
        owners = await self._owners([doc])
        if doc["owner_id"] not in owners and role != "admin":
            raise NotFound("No such listing.")
        return Named(doc, owners)

    async def public(self, listing_id: str) -> Named:
        """What anyone sees of a publicly visible listing, or 404."""
        public = await self._public(listing_id)
        if public is None:
            raise NotFound("No such listing.")
        return public

    async def _public(self, listing_id: str) -> Named | None:
        """What anyone sees of a publicly visible listing (else None): its
        card (through the read cache) and its owner's current name."""
        if not is_id(listing_id):
            return None
        if self._cache is None:
            card = await self._card(listing_id)
        else:
            card = await self._cache.read(LISTINGS, listing_id, lambda: self._card(listing_id),
                                          keep=lambda found: found is not None)
        if card is None:
            return None
        shown = await self._shown([card])
        return shown[0] if shown else None

    async def _card(self, listing_id: str) -> Named | None:
        doc = await self._listings.get(listing_id)
        return Named(doc, {}) if doc is not None and doc["visible"] else None

    async def _cards(self, ids: Sequence[str]) -> list[Named]:
        """The cards of these listings in this order, through the read
        cache (those missing there loaded in one query and kept); listings
        no longer publicly visible left out."""
        if self._cache is None:
            return [Named(d, {}) for d in await self._listings.by_ids(list(ids)) if d["visible"]]
        found, version = self._cache.get_many(LISTINGS, list(ids))
        missing = [i for i in ids if i not in found]
        if missing:
            loaded = {d["_id"]: Named(d, {}) for d in await self._listings.by_ids(missing)
                      if d["visible"]}
            self._cache.put_many(LISTINGS, loaded, version)
            found = {**found, **loaded}
        return [found[i] for i in ids if i in found]

    async def _shown(self, cards: list[Named], scores: dict[str, Any] | None = None
                     ) -> list[Named]:
        """The cards with their owners as they are now (and their scores);
        those of an owner no longer active left out."""
        owners = await self._owners([c.doc for c in cards])
        return [c.shown(owners, scores[c.doc["_id"]] if scores else None)
                for c in cards if c.doc["owner_id"] in owners]

    async def get_visible(self, listing_id: str) -> dict[str, Any]:
        """The stored document of a publicly visible listing, or 404."""
        doc = await self._readable(listing_id, None, None)
        if not await self._owners([doc]):
            raise NotFound("No such listing.")
        return doc

    async def update(self, listing_id: str, user_id: str, changes: dict[str, Any]
                     ) -> Named:
        doc = await self._readable(listing_id, user_id, None)
        if doc["owner_id"] != user_id:
            raise Forbidden("Only the owner can edit this listing.")
        if "tags" in changes:
            changes["tags"] = clean_tags(changes["tags"])
        if changes:
            merged = {**doc, **changes}
            changes.update(searchable(merged))
            updated = await self._listings.update(listing_id, changes, now=self._clock.now(),
                                                  previous=doc)
            if updated is None:
                raise NotFound("No such listing.")
            doc = updated
            await self._skills.refresh(user_id)
        return Named(doc, await self._owners([doc]))

    async def delete(self, listing_id: str, user_id: str, role: str, client: ClientInfo) -> None:
        doc = await self._readable(listing_id, user_id, role)
        if doc["owner_id"] != user_id and role != "admin":
            raise Forbidden("Only the owner can delete this listing.")
        now = self._clock.now()
        if await self._listings.set_status(listing_id, DELETED, now=now) is None:
            raise NotFound("No such listing.")
        if doc["owner_id"] != user_id:
            await self._audit.record(
                action="listing.delete", actor_id=user_id, target=listing_id, ip=client.ip,
                request_id=client.request_id, at=now, details={"owner_id": doc["owner_id"]},
            )
        await self._skills.refresh(doc["owner_id"])

    async def set_hidden(self, listing_id: str, hidden: bool, *, reason: str
                         ) -> dict[str, Any]:
        doc = await self._listings.set_status(
            listing_id, HIDDEN if hidden else ACTIVE, now=self._clock.now(), reason=reason
        ) if is_id(listing_id) else None
        if doc is None:
            raise NotFound("No such listing.")
        await self._skills.refresh(doc["owner_id"])
        return doc

    async def _owners(self, docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Active owners of these listings. An owner found inactive (deleted
        or banned) gets their listings' ``owner_active`` flag fixed."""
        ids = list({d["owner_id"] for d in docs})
        owners = await active_users(self._users, ids)
        for owner_id in ids:
            if owner_id not in owners:
                await self._listings.set_owner_active(owner_id, False, now=self._clock.now())
        return owners

    def _store_filters(self, f: ListingFilters) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if f.category:
            query["category"] = f.category
        if f.tag is not None:
            query["tags"] = normalise_tag(f.tag)
        if f.owner:
            query["owner_id"] = f.owner
        if f.level and f.level != "all":
            query["level"] = {"$in": [f.level, "all"]}
        if f.mode:
            query["mode"] = {"$in": [f.mode, "hybrid"]} if f.mode != "hybrid" else "hybrid"
        return query

    async def search(self, f: ListingFilters, *, limit: int, cursor: str | None,
                     viewer_id: str | None = None, client_ip: str | None = None
                     ) -> Page[Named]:
        tokens = search_tokens(f.q or "")[:MAX_QUERY_TOKENS]
        sort = f.sort or ("relevance" if tokens else "newest")
        position = decode_cursor(cursor)
        filters = self._store_filters(f)
        if sort == "relevance" and tokens:
            requester = viewer_id or f"ip:{client_ip or '-'}"
            return await self._by_relevance(tokens, filters, limit, position, viewer_id,
                                            text=f.q or "", requester=requester)
        if position is not None and (position.get("k") != "n" or not is_id(position.get("id"))):
            raise ValidationFailed.field("cursor", "Invalid cursor for this sort.")
        if tokens:
            filters["tokens"] = {"$in": tokens}
        before = position["id"] if position else None
        if self._cache is None:
            docs, next_cursor = await self._newest(filters, limit, before)
            return Page(await self._shown([Named(d, {}) for d in docs]), next_cursor)
        # The page keeps only its ids: a rating or an edit that moves no
        # listing redraws one card, and a new name shows from ``people``.
        key = ("newest", repr(sorted(filters.items())), limit, before)
        ids, next_cursor = await self._cache.read(
            LISTING_PAGES, key, lambda: self._newest_ids(filters, limit, before))
        return Page(await self._shown(await self._cards(ids)), next_cursor)

    async def _newest(self, filters: dict[str, Any], limit: int, before: str | None
                      ) -> tuple[list[dict[str, Any]], str | None]:
        docs = await self._listings.newest(filters, limit=limit + 1, before_id=before,
                                            now=self._clock.now())
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, encode_cursor({"k": "n", "id": docs[-1]["_id"]}) if more else None

    async def _newest_ids(self, filters: dict[str, Any], limit: int, before: str | None
                          ) -> tuple[tuple[str, ...], str | None]:
        """A newest-first page's ids and cursor; the listings read for it
        are kept as cards (unless one changed meanwhile)."""
        assert self._cache is not None
        version = self._cache.version(LISTINGS)
        docs, next_cursor = await self._newest(filters, limit, before)
        self._cache.put_many(LISTINGS, {d["_id"]: Named(d, {}) for d in docs}, version)
        return tuple(d["_id"] for d in docs), next_cursor

    async def _by_relevance(
        self, tokens: list[str], filters: dict[str, Any], limit: int,
        position: dict[str, Any] | None, viewer_id: str | None, *, text: str = "",
        requester: str = "-",
    ) -> Page[Named]:
        """Ranked once, on the first page, into a ranking snapshot; later
        pages read their slice of it (scores as ranked then), so edits and
        new listings never repeat or skip one (docs/marketplace.md)."""
        key = query_key(tokens=tokens, filters=filters)
        if position is None:
            units = self._vocabulary.units(tokens)
            expanded = list(dict.fromkeys(tokens + unit_tokens(units)))[:MAX_EXPANDED_TOKENS]
            vector = None
            if self._semantic is not None:
                vector = await self._semantic.query_vector(text, user=requester)
            if vector is None and self._cache is not None:
                # Ranked and stored once per query and window for everyone
                # (public listings); only the cursor is the caller's.
                window = self._snapshots.window()
                stored = await self._cache.read(
                    LISTING_PAGES, ("first", key, limit, window),
                    lambda: self._first_relevance_page(expanded, filters, units, key=key,
                                                       limit=limit, window=window))
                first = self._snapshots.first_page_of(stored, viewer_id=viewer_id)
                return Page(await self._relevance_items(first.ids, first.extras),
                            first.next_cursor)
            ranked = await self._rank(expanded, filters, units, vector)
            page = await self._snapshots.first_page(
                viewer_id=viewer_id, kind="listings", key=key,
                ids=[listing_id for _, listing_id in ranked],
                extras=[score for score, _ in ranked], limit=limit,
            )
        elif is_snapshot_cursor(position):
            page = await self._snapshots.page(position, viewer_id=viewer_id, kind="listings",
                                              key=key, limit=limit)
        elif position.get("k") == "r":  # a (score, id) cursor from before snapshots
            raise ValidationFailed.field("cursor", EXPIRED)
        else:
            raise ValidationFailed.field("cursor", "Invalid cursor for this sort.")
        items = await self._relevance_items(page.ids, page.extras)
        return Page(items, page.next_cursor)

    async def _first_relevance_page(
        self, expanded: list[str], filters: dict[str, Any], units: list[QueryUnit], *,
        key: str, limit: int, window: int,
    ) -> StoredRanking:
        ranked = await self._rank(expanded, filters, units, None)
        return await self._snapshots.store(
            viewer_id=None, kind="listings", key=key, ids=[i for _, i in ranked],
            extras=[score for score, _ in ranked], limit=limit, window=window, shared=True)

    async def _relevance_items(self, ids: list[str], scores: list[Any]) -> list[Named]:
        """Listing cards of a ranked page, with their scores (those hidden,
        deleted or of an inactive owner since the ranking left out)."""
        return await self._shown(await self._cards(ids), dict(zip(ids, scores, strict=True)))

    async def _rank(self, expanded: list[str], filters: dict[str, Any], units: list[QueryUnit],
                    vector: list[float] | None) -> list[tuple[int, str]]:
        candidates = await self._listings.search_candidates(
            expanded, filters, embedding=vector is not None)
        if vector is not None:
            seen = {d["_id"] for d in candidates}
            candidates += [
                d for d in await self._listings.semantic_candidates(
                    filters, limit=MAX_SEMANTIC_CANDIDATES) if d["_id"] not in seen]
        return rank_lexical(candidates, units, vector)

    async def export(self, user_id: str) -> list[dict[str, Any]]:
        return [export_view(d) for d in await self._listings.by_owner(user_id)]
