"""Wiring of calls into the app: ``attach_calls(app)`` from ``create_app``
adds the ``call:*`` event table and the cleanup context that builds the call
store, the media relay (this node's, capped at ``max_relayed_calls``) and
the call service, and closes every relay leg on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from loguru import logger

from ..handlers import calls as call_handlers
from ..keys import (
    BUS,
    CALLS,
    CLOCK,
    CONSENT,
    ICE_SERVERS,
    LIMITER,
    MEDIA_RELAY,
    METRICS,
    NODE_ID,
    NOTIFIER,
    PRESENCE,
    REDIS,
    SETTINGS,
    SOCKETS,
    USERS,
)
from ..media.turn import ice_servers, to_rtc_ice_servers
from ..redis_keys import RedisKeys
from ..storage.calls import MemoryCallStore, RedisCallStore
from .metrics import CallMetrics, RelayCpuSampler
from .relay_link import RelayLink
from .service import CallService


def attach_calls(app: web.Application) -> None:
    """Call after ``attach_realtime`` (needs the socket dispatcher)."""
    app[SOCKETS].add(call_handlers.events)
    app.cleanup_ctx.append(calls_ctx)


async def calls_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, clock, redis = app[SETTINGS], app[CLOCK], app[REDIS]
    metrics = CallMetrics(app[METRICS].registry)

    def ice_for(user_id: str) -> dict[str, Any]:
        return ice_servers(user_id=user_id, stun_urls=settings.stun_urls,
                           turn_urls=settings.turn_urls, turn_secret=settings.turn_secret,
                           ttl_s=settings.turn_ttl, now=clock.time())

    link: RelayLink | None = None
    sampler: RelayCpuSampler | None = None
    if settings.max_relayed_calls > 0:
        from ..media.candidates import AddressPolicy
        from ..media.metrics import RelayMetrics
        from ..media.relay import MediaRelay

        relay = MediaRelay(
            # the relay's own ICE agents: STUN only (it needs no TURN relay itself)
            ice_servers=to_rtc_ice_servers([{"urls": settings.stun_urls}] if settings.stun_urls else []),
            max_calls=settings.max_relayed_calls,
            on_connection_lost=_log_lost_leg,
            metrics=RelayMetrics(app[METRICS].registry),
            address_policy=AddressPolicy(allow_private=settings.call_relay_allow_private),
        )
    store = (RedisCallStore(redis, prefix=RedisKeys(settings.redis_key_prefix).calls)
             if redis is not None else MemoryCallStore(clock.time))
    if settings.max_relayed_calls > 0:
        link = RelayLink(relay=relay, bus=app[BUS], node_id=app[NODE_ID],
                         timeout=settings.call_relay_timeout, metrics=metrics, registry=store)
        sampler = RelayCpuSampler(metrics.relay_cpu, lambda: relay.active_calls)
        app[MEDIA_RELAY] = relay
    service = CallService(
        store=store, users=app[USERS], presence=app[PRESENCE], notifier=app[NOTIFIER],
        relay=link, ice_servers=ice_for, metrics=metrics, clock=clock,
        ring_timeout=settings.call_ring_timeout, max_duration=settings.call_max_duration,
        limiter=app[LIMITER], invite_limit=settings.call_invite_limit, consent=app[CONSENT],
        reconnect_grace=settings.call_reconnect_grace, stats_limit=settings.call_stats_limit,
    )
    app[CALLS] = service
    app[ICE_SERVERS] = ice_for
    app[PRESENCE].add_listener(service.on_presence)
    service.start()
    if link is not None:
        await link.start()
    if sampler is not None:
        sampler.start()
    logger.info("calls ready (ring timeout {}s, relay {})", settings.call_ring_timeout,
                f"up to {settings.max_relayed_calls} calls" if link else "off")
    try:
        yield
    finally:
        await service.stop()
        if sampler is not None:
            await sampler.stop()
        if link is not None:
            await link.close()


def _log_lost_leg(call_id: str, participant_id: str, state: str) -> None:
    # The relay already closed the leg; the client sees its peer connection
    # fail and re-offers or ends the call.
    logger.info("calls: relay leg of {} in call {} is {}", participant_id, call_id, state)
