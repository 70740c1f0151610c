"""Delivery reports from clients and the delivery metrics.

A message acked by the server is *delivered live* when a member socket that
was connected got its ``message`` event; otherwise the member gets it through
``room:sync``. The server cannot see what a socket did not receive, so the
SDK counts (sampled) what it got live, the seqs it had to fetch by sync after
a hole in the live stream, the messages it fetched after a reconnect, and
any seq a sync did not bring (unrecovered) — and reports them with
``delivery:report``. The live-delivery ratio is ``live / (live + gap)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from loguru import logger
from prometheus_client import CollectorRegistry, Counter

from ..errors import Forbidden

if TYPE_CHECKING:
    from ..ratelimit import RateLimiter
    from ..schemas.delivery import DeliveryReport


class RoomMembership(Protocol):
    async def is_member(self, room_id: str, user_id: str) -> bool: ...


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.live = Counter(
            "skillshare_delivery_live_total",
            "Messages clients report they received live (delivery:report, sampled clients).",
            registry=registry)
        self.gap = Counter(
            "skillshare_delivery_gap_recovered_total",
            "Messages clients missed live and fetched with room:sync after a hole in the live stream.",
            registry=registry)
        self.reconnect = Counter(
            "skillshare_delivery_reconnect_recovered_total",
            "Messages clients fetched with room:sync after their socket reconnected.",
            registry=registry)
        self.unrecovered = Counter(
            "skillshare_delivery_unrecovered_total",
            "Seqs a client's room:sync did not bring although a later message was live.",
            registry=registry)
        self.reports = Counter(
            "skillshare_delivery_reports_total", "delivery:report events accepted.",
            registry=registry)
        self.synced = Counter(
            "skillshare_messages_synced_total", "Messages this node served through room:sync.",
            registry=registry)


class DeliveryService:
    def __init__(self, *, metrics: DeliveryMetrics, rooms: RoomMembership,
                 limiter: RateLimiter | None, report_limit: str) -> None:
        self.metrics = metrics
        self._rooms = rooms
        self._limiter = limiter
        self._report_limit = report_limit

    async def report(self, user_id: str, report: DeliveryReport) -> None:
        """Count one client report. Gap seqs are only accepted for rooms the
        user is a member of (``forbidden`` otherwise, nothing counted)."""
        if self._limiter is not None:
            await self._limiter.hit("delivery:report", self._report_limit, user_id)
        for gap in report.gaps:
            if not await self._rooms.is_member(gap.room_id, user_id):
                raise Forbidden("You are not a member of that room.")
        gap_count = sum(len(g.seqs) for g in report.gaps)
        unrecovered = sum(len(g.unrecovered) for g in report.gaps)
        self.metrics.reports.inc()
        self.metrics.live.inc(report.live)
        self.metrics.gap.inc(gap_count)
        self.metrics.reconnect.inc(report.after_reconnect)
        self.metrics.unrecovered.inc(unrecovered)
        if gap_count or unrecovered:
            logger.info("delivery: {} missed live {}{}", user_id,
                        {g.room_id: g.seqs for g in report.gaps if g.seqs},
                        f"; unrecovered {[(g.room_id, g.unrecovered) for g in report.gaps if g.unrecovered]}"
                        if unrecovered else "")

    def synced(self, count: int) -> None:
        self.metrics.synced.inc(count)
