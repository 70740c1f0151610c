"""The background worker that embeds listings and people's skill names
with Gemini, off the request path, and writes the short "why" of matches
asked for. Woken on writes, else every ``interval``; a provider failure
backs off (doubling up to ``MAX_BACKOFF_S``) and is retried later: the
work stays pending in the documents (``embed_pending``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger

from ..marketplace.listings import embedding_text
from ..storage.listings import ListingStore
from ..storage.skill_index import SkillIndexStore
from .gemini import ProviderError
from .service import SemanticService, safe_text
import contextlib

BATCH = 50  # listings, or people, embedded per round
INTERVAL_S = 30.0
MAX_BACKOFF_S = 600.0
MAX_PENDING_WHYS = 200  # explanations waiting; more are dropped (asked again later)
WHYS_PER_ROUND = 10
MAX_BACKFILL = 100_000  # people re-indexed at start (entries from before names were kept)


class EmbeddingWorker:
    def __init__(self, *, semantic: SemanticService, listings: ListingStore,
                 index: SkillIndexStore, reindex: Callable[[str], Awaitable[None]],
                 interval: float = INTERVAL_S) -> None:
        self._reindex = reindex
        self._semantic = semantic
        self._listings = listings
        self._index = index
        self._interval = interval
        self._wake = asyncio.Event()
        self._whys: dict[str, None] = {}

    def wake(self) -> None:
        self._wake.set()

    def request_why(self, prompt: str) -> None:
        if prompt not in self._whys and len(self._whys) < MAX_PENDING_WHYS:
            self._whys[prompt] = None
            self._wake.set()

    async def backfill(self) -> None:
        """Make what predates the worker pending: listings without the flag,
        people indexed without their skill names."""
        marked = await self._listings.mark_unembedded()
        people = 0
        while people < MAX_BACKFILL:
            ids = await self._index.without_names(BATCH)
            if not ids:
                break
            for user_id in ids:
                await self._reindex(user_id)
            people += len(ids)
        if marked or people:
            logger.info("embedding worker: {} listings and {} people to embed", marked, people)

    async def run(self) -> None:
        try:
            await self.backfill()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("embedding worker: back-fill failed; new changes still embed")
        delay = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            try:
                while await self.run_once():
                    pass
                delay = self._interval
            except asyncio.CancelledError:
                raise
            except ProviderError as exc:
                delay = min(MAX_BACKOFF_S, max(delay, self._interval) * 2)
                logger.warning("embedding worker: AI provider failed ({}); retry in {:.0f} s",
                               exc.kind, delay)
            except Exception:
                delay = min(MAX_BACKOFF_S, max(delay, self._interval) * 2)
                logger.exception("embedding worker failed; retry in {:.0f} s", delay)

    async def run_once(self) -> int:
        """One round; how many items were done (0: nothing pending)."""
        done = 0
        docs = await self._listings.embedding_pending(BATCH)
        if docs:
            texts = {d["_id"]: safe_text(embedding_text(d)) for d in docs}
            vectors = await self._semantic.embed(list(texts.values()), op="listings")
            for doc in docs:
                # no text left to embed (all of it e-mail-like): stored empty, never similar
                vector = vectors.get(texts[doc["_id"]], [])
                await self._listings.set_embedding(doc["_id"], vector,
                                                   updated_at=doc["updated_at"])
                done += 1
        entries = await self._index.embedding_pending(BATCH)
        if entries:
            await self._semantic.embed(
                [safe_text(n) for e in entries for n in e.get("names", [])], op="skills")
            for entry in entries:
                await self._index.embedded(entry["_id"], entry.get("names", []))
                done += 1
        for prompt in list(self._whys)[:WHYS_PER_ROUND]:
            if await self._semantic.why(prompt) is None:
                await self._semantic.make_why(prompt)
            self._whys.pop(prompt, None)
            done += 1
        return done
