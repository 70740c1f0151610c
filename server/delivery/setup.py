"""``build_delivery``: the ``delivery:report`` counter and its metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from ..ratelimit import RateLimiter
from .service import DeliveryMetrics, DeliveryService, RoomMembership


@dataclass(frozen=True, slots=True)
class Delivery:
    service: DeliveryService

    async def start(self) -> None:
        """Nothing runs in the background: it counts what clients report."""

    async def stop(self) -> None:
        """Nothing to close."""


def build_delivery(*, rooms: RoomMembership, limiter: RateLimiter, report_limit: str,
                   registry: CollectorRegistry) -> Delivery:
    return Delivery(DeliveryService(metrics=DeliveryMetrics(registry), rooms=rooms,
                                    limiter=limiter, report_limit=report_limit))
