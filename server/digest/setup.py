"""Wiring: ``attach_digest(app)`` after ``attach_calls`` (it listens to
presence and to missed calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ..keys import CALLS, CHAT, CLOCK, DB, DIGEST, MAIL, METRICS, PRESENCE, ROOMS, SETTINGS, USERS
from ..storage.digests import DigestStore
from .service import DigestMetrics, DigestService
from .unsubscribe import UnsubscribeTokens


def attach_digest(app: web.Application, *, public_url: str) -> None:
    async def digest_ctx(app: web.Application) -> AsyncIterator[None]:
        async for _ in _digest(app, public_url):
            yield

    app.cleanup_ctx.append(digest_ctx)


async def _digest(app: web.Application, public_url: str) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    service = DigestService(
        store=DigestStore(app[DB]), users=app[USERS], rooms=app[ROOMS], chat=app[CHAT],
        mail=app[MAIL], tokens=UnsubscribeTokens(settings.signing_keys()),
        metrics=DigestMetrics(app[METRICS].registry), clock=app[CLOCK],
        public_url=public_url, interval=settings.digest_interval,
        delay=settings.digest_delay, sweep_interval=settings.digest_sweep_interval,
    )
    app[DIGEST] = service
    app[PRESENCE].add_listener(service.on_presence)
    app[CALLS].add_missed_listener(service.note_missed_call)
    if settings.digest_enabled:
        service.start()
    try:
        yield
    finally:
        await service.stop()
