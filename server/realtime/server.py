"""The python-socketio ``AsyncServer``: in-process client manager on one
node, ``AsyncRedisManager`` when ``SKILLSHARE_REDIS_URL`` is set. Both count
the events they hand to local sockets (the fan-out metric)."""

from __future__ import annotations

import logging

import socketio
from limits import parse as parse_limit

from ..config import Settings
from ..redis_keys import RedisKeys
from .fanout import FanoutManager, SendLimits
from .metrics import RealtimeMetrics
from .notifier import user_room
from .sharded_manager import ShardedRedisManager
from .transport import GuardedServer

# engine.io closes a connection whose frame exceeds this multiple of the
# event payload limit; below it, the dispatcher answers ``payload_too_large``.
HARD_FRAME_FACTOR = 2
# Engine.IO frames of any kind one connection may send: this multiple of its
# event rate, and of its event burst plus flood allowance (so the event rate
# limit and flood limiter always act first on well-formed events); beyond it
# the connection is closed as flooding (pings, pongs, noops, junk).
FRAME_BUDGET_FACTOR = 2


class _CountingMixin:
    """Counts deliveries to local sockets (skip_sid excluded)."""

    delivery_metrics: RealtimeMetrics | None = None

    def delivered(self, event: str, count: int) -> None:
        if self.delivery_metrics is not None:
            self.delivery_metrics.deliveries.labels(event).inc(count)


class CountingManager(_CountingMixin, FanoutManager):
    """One node: the fan-out fast path, counted."""


class CountingRedisManager(_CountingMixin, ShardedRedisManager, FanoutManager):
    """Several nodes: ``AsyncPubSubManager`` hands every emit (its own and
    the bus's) to ``super().emit`` — ``FanoutManager.emit``, by the MRO."""

    async def _publish(self, data):
        sent = await super()._publish(data)
        if sent is None and self.delivery_metrics is not None:  # it gave up after a retry
            self.delivery_metrics.bus_errors.inc()
        return sent


def cors_origins(settings: Settings) -> list[str] | str | None:
    """``None`` makes engine.io accept same-origin browsers only (and
    clients that send no Origin); ``*`` in the list allows every origin."""
    if not settings.cors_origins:
        return None
    if "*" in settings.cors_origins:
        return "*"
    return list(settings.cors_origins)


def _library_logger(name: str) -> logging.Logger:
    """python-socketio/engine.io log through the app's logging (no handler
    of their own, so nothing is printed twice); warnings and up only."""
    log = logging.getLogger(name)
    log.setLevel(logging.WARNING)
    return log


def frame_budget(settings: Settings) -> tuple[float | None, int]:
    """(frames per second, burst) per engine.io connection; no budget when
    rate limits are off."""
    if not settings.rate_limits_enabled:
        return None, 1
    item = parse_limit(settings.socket_event_rate)
    rate = item.amount / item.get_expiry() * FRAME_BUDGET_FACTOR
    return rate, (settings.socket_event_burst + settings.socket_flood_limit) * FRAME_BUDGET_FACTOR


def build_server(settings: Settings, metrics: RealtimeMetrics, *, node_id: str) -> GuardedServer:
    """``node_id`` is also the fan-out's ``host_id`` (python-socketio makes
    one of its own otherwise): one id per node on every channel."""
    manager: socketio.AsyncManager
    if settings.redis_url:
        manager = CountingRedisManager(settings.redis_url,
                                       channel=RedisKeys(settings.redis_key_prefix).socketio)
        manager.host_id = node_id  # before set_server(), which derives _own_emit from it
        manager.sharded = settings.fanout_mode == "sharded"
        manager.shard_metrics = metrics
        manager.disjoint_room_prefix = user_room("")  # a socket is in one user room only
    else:
        manager = CountingManager()
    manager.delivery_metrics = metrics
    frame_rate, frame_burst = frame_budget(settings)
    return GuardedServer(
        async_mode="aiohttp",
        frame_rate=frame_rate,
        frame_burst=frame_burst,
        send_limits=SendLimits(compress=settings.socket_compression,
                               compress_threshold=settings.socket_compression_threshold,
                               buffer_limit=settings.socket_send_buffer_limit,
                               queue_limit=settings.socket_send_queue_limit),
        client_manager=manager,
        cors_allowed_origins=cors_origins(settings),
        max_http_buffer_size=settings.socket_max_payload * HARD_FRAME_FACTOR,
        logger=_library_logger("skillshare.socketio"),
        engineio_logger=_library_logger("skillshare.engineio"),
        ping_interval=settings.socket_ping_interval,
        ping_timeout=settings.socket_ping_timeout,
        transports=["websocket", "polling"],
    )
