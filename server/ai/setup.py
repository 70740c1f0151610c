"""``build_ai``: nothing for ``local``; for ``gemini`` the SDK client, the
cache, budgets and metrics behind a SemanticService (the marketplace's
embedding worker runs over it)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from ..clock import Clock
from ..config import Settings
from ..storage.ai_cache import AiCacheStore
from .service import AiMetrics, Budget, SemanticService


def build_semantic(settings: Settings, *, db: AsyncDatabase, budget: Budget,
                   registry: CollectorRegistry, clock: Clock) -> SemanticService | None:
    if settings.ai_provider != "gemini":
        return None
    from .gemini import GeminiClient, GeminiConfig

    assert settings.gemini_api_key  # checked at start-up (config.py)
    client = GeminiClient(GeminiConfig(
        api_key=settings.gemini_api_key, embed_model=settings.gemini_embed_model,
        model=settings.gemini_model, base_url=settings.gemini_base_url,
        timeout=settings.ai_timeout,
    ))
    return SemanticService(
        embedder=client, cache=AiCacheStore(db), budget=budget,
        user_limit=settings.ai_user_limit, global_limit=settings.ai_global_limit,
        timeout=settings.ai_timeout, metrics=AiMetrics(registry), clock=clock,
    )


@dataclass(frozen=True, slots=True)
class Ai:
    semantic: SemanticService | None  # None: the local provider

    async def start(self) -> None:
        """The embedding worker is the marketplace's (``Marketplace.start``)."""

    async def stop(self) -> None:
        if self.semantic is not None:
            await self.semantic.close()


def build_ai(settings: Settings, *, db: AsyncDatabase, budget: Budget,
             registry: CollectorRegistry, clock: Clock) -> Ai:
    return Ai(build_semantic(settings, db=db, budget=budget, registry=registry, clock=clock))
