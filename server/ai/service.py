"""Semantic similarity for search and matches, with Gemini behind it.

Everything here is optional to a request: ``query_vector`` and
``vectors`` answer ``None``/what is cached when Gemini fails (HTTP error,
bad key, timeout) or a budget is spent, within ``timeout`` seconds, and
count why in ``skillshare_ai_calls_total`` / ``skillshare_ai_fallbacks_total``.
Texts are embedded once: vectors are cached by content hash
(``ai_cache``). Only listing text, skill names and search words are ever
sent (callers build those texts; ``safe_text`` drops e-mail-like words)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from loguru import logger
from prometheus_client import CollectorRegistry, Counter

from ..clock import Clock
from ..errors import RateLimited
from ..storage.ai_cache import AiCacheStore
from .gemini import ProviderError
from .vectors import normalise

EMBED_BATCH = 100  # texts per batchEmbedContents call
MAX_TEXT_CHARS = 2000  # what of one text is sent
GLOBAL_KEY = "all"
T = TypeVar("T")


class Embedder(Protocol):
    @property
    def embed_model(self) -> str: ...
    async def embed(self, texts: list[str]) -> list[list[float]]: ...
    async def generate(self, prompt: str) -> str: ...
    async def close(self) -> None: ...


class Budget(Protocol):
    async def hit(self, name: str, limit: str, *keys: str) -> None: ...


def safe_text(text: str) -> str:
    """The text without words that look like e-mail addresses or links."""
    words = [w for w in text.split() if "@" not in w and "://" not in w]
    return " ".join(words)[:MAX_TEXT_CHARS]


class AiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "skillshare_ai_calls_total",
            "Calls to the AI provider by operation and outcome (ok, timeout, rate_limited, "
            "server_error, auth, bad_request, malformed, error, budget).",
            ["op", "outcome"], registry=registry)
        self.fallbacks = Counter(
            "skillshare_ai_fallbacks_total",
            "Requests ranked locally because the AI provider failed or a budget was spent.",
            ["where"], registry=registry)


class SemanticService:
    def __init__(self, *, embedder: Embedder, cache: AiCacheStore, budget: Budget,
                 user_limit: str, global_limit: str, timeout: float, metrics: AiMetrics,
                 clock: Clock) -> None:
        self._embedder = embedder
        self._cache = cache
        self._budget = budget
        self._user_limit = user_limit
        self._global_limit = global_limit
        self._timeout = timeout
        self.metrics = metrics
        self._clock = clock

    def key(self, kind: str, text: str) -> str:
        raw = f"{kind}\0{self._embedder.embed_model}\0{text}".encode()
        return hashlib.sha256(raw).hexdigest()

    async def cached(self, texts: list[str]) -> dict[str, list[float]]:
        keys = {self.key("embed", t): t for t in texts}
        found = await self._cache.get_many(list(keys))
        return {keys[k]: d["vector"] for k, d in found.items() if "vector" in d}

    async def embed(self, texts: list[str], *, op: str, user: str | None = None
                    ) -> dict[str, list[float]]:
        """Vectors of ``texts``: from the cache, the rest from the provider
        (in batches). Raises ``ProviderError`` (kind ``budget`` when a
        limit is spent)."""
        texts = list(dict.fromkeys(t for t in texts if t))
        vectors = await self.cached(texts)
        missing = [t for t in texts if t not in vectors]
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start:start + EMBED_BATCH]
            await self._spend(op, user)
            try:
                fresh = [normalise(v) for v in await self._embedder.embed(batch)]
            except ProviderError as exc:
                self.metrics.calls.labels(op, exc.kind).inc()
                raise
            self.metrics.calls.labels(op, "ok").inc()
            await self._cache.put_many(
                {self.key("embed", t): {"vector": v} for t, v in zip(batch, fresh, strict=True)},
                now=self._clock.now())
            vectors.update(zip(batch, fresh, strict=True))
        return vectors

    async def _spend(self, op: str, user: str | None) -> None:
        try:
            if user is not None:
                await self._budget.hit("ai:user", self._user_limit, user)
            await self._budget.hit("ai:global", self._global_limit, GLOBAL_KEY)
        except RateLimited:
            self.metrics.calls.labels(op, "budget").inc()
            raise ProviderError("budget") from None

    async def query_vector(self, text: str, *, user: str) -> list[float] | None:
        """The search text's vector, or None (local ranking) within the timeout."""
        text = safe_text(text)
        if not text:
            return None
        vectors = await self.bounded(lambda: self.embed([text], op="query", user=user),
                                     op="query", where="search")
        return (vectors or {}).get(text)

    async def vectors(self, texts: list[str], *, user: str, where: str
                      ) -> dict[str, list[float]]:
        """Vectors of ``texts``, embedding missing ones within the timeout;
        on failure what the cache has."""
        texts = [safe_text(t) for t in texts]
        found = await self.bounded(lambda: self.embed(texts, op=where, user=user), op=where,
                                   where=where)
        return found if found is not None else await self.cached(texts)

    async def bounded(self, call: Callable[[], Awaitable[T]], *, op: str, where: str
                      ) -> T | None:
        """``call()``'s answer, or None (counted, logged) when the provider
        failed, a budget is spent or ``timeout`` passed."""
        try:
            return await asyncio.wait_for(call(), self._timeout)
        except ProviderError as exc:
            logger.warning("AI provider unavailable for {} ({}); ranking locally", where,
                           exc.kind)
        except TimeoutError:
            self.metrics.calls.labels(op, "timeout").inc()
            logger.warning("AI provider timed out for {}; ranking locally", where)
        self.metrics.fallbacks.labels(where).inc()
        return None

    async def why(self, prompt: str) -> str | None:
        """A cached explanation for this prompt, if one was made."""
        found = await self._cache.get_many([self.key("why", prompt)])
        entry = found.get(self.key("why", prompt))
        return entry.get("text") if entry else None

    async def whys(self, prompts: list[str]) -> dict[str, str]:
        """Cached explanations of these prompts (those made so far)."""
        keys = {self.key("why", p): p for p in prompts}
        found = await self._cache.get_many(list(keys))
        return {keys[k]: d["text"] for k, d in found.items() if "text" in d}

    async def make_why(self, prompt: str) -> None:
        """Generate and cache one explanation (background worker only)."""
        await self._spend("why", None)
        try:
            text = await self._embedder.generate(prompt)
        except ProviderError as exc:
            self.metrics.calls.labels("why", exc.kind).inc()
            raise
        self.metrics.calls.labels("why", "ok").inc()
        await self._cache.put_many({self.key("why", prompt): {"text": text}},
                                   now=self._clock.now())

    async def close(self) -> None:
        await self._embedder.close()
