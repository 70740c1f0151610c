"""``build_calls``: the call store, the media relay (this node's, capped at
``max_relayed_calls``; aiortc is imported only when it is on), relay
placement across nodes and the call service; ``Calls.stop`` closes every
relay leg."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from ..bus import Bus
from ..clock import Clock
from ..config import Settings
from ..consent.service import ConsentService
from ..media.turn import ice_servers, to_rtc_ice_servers
from ..redis_keys import RedisKeys
from ..ratelimit import RateLimiter
from ..realtime.notifier import Notifier
from ..realtime.presence import PresenceService
from ..storage.calls import MemoryCallStore, RedisCallStore
from ..storage.users import UserStore
from .metrics import CallMetrics, RelayCpuSampler
from .relay_link import RelayLink
from .service import CallService

if TYPE_CHECKING:
    from ..media.relay import MediaRelay

IceServers = Callable[[str], dict[str, Any]]  # user id -> {ice_servers, ttl}


@dataclass(frozen=True, slots=True)
class Calls:
    service: CallService
    ice_servers: IceServers
    relay: MediaRelay | None  # this node's, when max_relayed_calls > 0
    link: RelayLink | None
    sampler: RelayCpuSampler | None

    async def start(self) -> None:
        self.service.start()
        if self.link is not None:
            await self.link.start()
        if self.sampler is not None:
            self.sampler.start()

    async def stop(self) -> None:
        await self.service.stop()
        if self.sampler is not None:
            await self.sampler.stop()
        if self.link is not None:
            await self.link.close()


def build_calls(
    settings: Settings, *, bus: Bus, redis: Redis | None, node_id: str, users: UserStore,
    presence: PresenceService, notifier: Notifier, limiter: RateLimiter, consent: ConsentService,
    clock: Clock, registry: CollectorRegistry,
) -> Calls:
    metrics = CallMetrics(registry)

    def ice_for(user_id: str) -> dict[str, Any]:
        return ice_servers(user_id=user_id, stun_urls=settings.stun_urls,
                           turn_urls=settings.turn_urls, turn_secret=settings.turn_secret,
                           ttl_s=settings.turn_ttl, now=clock.time())

    store = (RedisCallStore(redis, prefix=RedisKeys(settings.redis_key_prefix).calls)
             if redis is not None else MemoryCallStore(clock.time))
    relay: MediaRelay | None = None
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
            metrics=RelayMetrics(registry),
            address_policy=AddressPolicy(allow_private=settings.call_relay_allow_private),
        )
        link = RelayLink(relay=relay, bus=bus, node_id=node_id,
                         timeout=settings.call_relay_timeout, metrics=metrics, registry=store)
        active = relay
        sampler = RelayCpuSampler(metrics.relay_cpu, lambda: active.active_calls)
    service = CallService(
        store=store, users=users, presence=presence, notifier=notifier,
        relay=link, ice_servers=ice_for, metrics=metrics, clock=clock,
        ring_timeout=settings.call_ring_timeout, max_duration=settings.call_max_duration,
        limiter=limiter, invite_limit=settings.call_invite_limit, consent=consent,
        reconnect_grace=settings.call_reconnect_grace, stats_limit=settings.call_stats_limit,
    )
    presence.add_listener(service.on_presence)
    logger.info("calls ready (ring timeout {}s, relay {})", settings.call_ring_timeout,
                f"up to {settings.max_relayed_calls} calls" if link else "off")
    return Calls(service=service, ice_servers=ice_for, relay=relay, link=link, sampler=sampler)


def _log_lost_leg(call_id: str, participant_id: str, state: str) -> None:
    # The relay already closed the leg; the client sees its peer connection
    # fail and re-offers or ends the call.
    logger.info("calls: relay leg of {} in call {} is {}", participant_id, call_id, state)
