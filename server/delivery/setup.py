"""Wiring: ``attach_delivery(app)`` after ``attach_realtime``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ..handlers import delivery as delivery_handlers
from ..keys import DELIVERY, LIMITER, METRICS, ROOMS, SETTINGS, SOCKETS
from .service import DeliveryMetrics, DeliveryService


def attach_delivery(app: web.Application) -> None:
    app[SOCKETS].add(delivery_handlers.events)
    app.cleanup_ctx.append(delivery_ctx)


async def delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    app[DELIVERY] = DeliveryService(
        metrics=DeliveryMetrics(app[METRICS].registry), rooms=app[ROOMS], limiter=app[LIMITER],
        report_limit=app[SETTINGS].delivery_report_limit)
    yield
