"""``create_app(settings)``: the one place that wires the areas. Every AppKey
is set here, every area is built here (``build_<area>(...)`` from its
package, started and stopped by a cleanup context here), and the route and
socket event tables are listed here. The CLI and the tests build the app
here; nothing else imports this module."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Protocol

from aiohttp import web
from loguru import logger

from . import protocol_log
from .ai.setup import build_ai
from .auth.setup import build_auth, build_purge
from .backup.setup import build_backup
from .bus import Bus, RedisBus
from .calls.setup import build_calls
from .clock import Clock
from .config import Settings
from .consent.setup import build_consent
from .delivery.setup import build_delivery
from .digest.setup import build_digest
from .drain import HANDOVER_S, NodeDrain
from .handlers import (
    accounts,
    admin,
    blocks,
    calls,
    chat,
    client_errors,
    delivery,
    digest,
    matches,
    nodes,
    oidc,
    ops,
    presence,
    requests,
    rooms,
    skills,
    users,
    webapp,
)
from .keys import (
    ACCOUNTS,
    AUDIT,
    BUS,
    CALLS,
    CHAT,
    CLOCK,
    CONNECTIONS,
    CONSENT,
    DB,
    DELIVERY,
    DIGEST,
    DRAIN,
    EMBEDDER,
    FIELDS,
    HASHING,
    ICE_SERVERS,
    LIMITER,
    LISTINGS,
    MAIL,
    MATCHES,
    MEDIA_RELAY,
    METRICS,
    MODERATION,
    NODE_ID,
    NODE_WATCH,
    NOTIFIER,
    PRESENCE,
    PRESENCE_ACCESS,
    PROFILES,
    PURGE,
    READ_CACHE,
    REALTIME_METRICS,
    REDIS,
    REVIEWS,
    ROOMS,
    ROUTE_SPECS,
    SESSIONS,
    SETTINGS,
    SIGN_IN,
    SIO,
    SKILL_REQUESTS,
    SOCKET_REGISTRY,
    SOCKETS,
    USERS,
)
from .logs import mask_url
from .mail.setup import build_mail
from .marketplace.setup import build_marketplace
from .metrics import Metrics
from .middlewares import MIDDLEWARES
from .node_watch import NodeWatch
from .ratelimit import RateLimiter
from .read_cache import ReadCache
from .realtime.metrics import RealtimeMetrics
from .realtime.redis_manager import UrlAwareRedisManager
from .realtime.server import build_server
from .realtime.setup import build_realtime
from .realtime.socket_registry import SocketRegistry, SocketState
from .redis_client import ClusterPubSubNodes, connect_redis, is_cluster_url
from .redis_keys import RedisKeys
from .sockets.dispatcher import EventDispatcher
from .storage.database import open_database
from .storage.fields import FieldCrypto

ROUTE_TABLES = [
    accounts.routes, oidc.routes, users.routes, blocks.routes, skills.routes, requests.routes, matches.routes,
    admin.routes, nodes.routes, rooms.routes, calls.routes, ops.routes, webapp.routes, digest.routes,
    client_errors.routes,
]
SOCKET_EVENT_TABLES = [chat.events, presence.events, calls.events, delivery.events]


class Area(Protocol):
    """What every ``build_<area>(...)`` returns (besides its services)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@asynccontextmanager
async def running(area: Area) -> AsyncIterator[None]:
    await area.start()
    try:
        yield
    finally:
        await area.stop()


def new_node_id() -> str:
    """This process's one id: bus heartbeats, presence, relay placement and
    the Socket.IO fan-out's ``host_id``."""
    return uuid.uuid4().hex[:12]


def public_url(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_database(
        mongo_url=settings.mongo_url, db_name=settings.mongo_db, data_dir=settings.data_dir,
        registry=app[METRICS].registry, embedded_port=settings.embedded_db_port,
        embedded_pool_size=settings.embedded_db_pool_size,
    ) as db:
        app[DB] = db
        app[FIELDS] = FieldCrypto(settings.data_keys())
        yield


def _node_watch(app: web.Application, bus: Bus) -> NodeWatch:
    settings = app[SETTINGS]
    watch = NodeWatch(bus, node_id=app[NODE_ID], port=settings.port,
                      interval=settings.bus_canary_interval, timeout=settings.bus_canary_timeout,
                      registry=app[METRICS].registry)
    app[NODE_WATCH] = watch
    return watch


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.redis_url is None:
        app[REDIS] = None
        app[BUS] = Bus()
        watch = _node_watch(app, app[BUS])
        await watch.start()
        try:
            yield
        finally:
            await watch.stop()
        return
    logger.info("redis: {}", mask_url(settings.redis_url))
    client = connect_redis(settings.redis_url)
    app[REDIS] = client
    subscriber = (ClusterPubSubNodes(settings.redis_url).client
                  if is_cluster_url(settings.redis_url) else None)
    bus = RedisBus(client, on_error=app[METRICS].redis_bus_errors.inc, subscriber=subscriber,
                   channel_prefix=RedisKeys(settings.redis_key_prefix).bus)
    app[BUS] = bus
    watch = _node_watch(app, bus)
    await bus.start()
    await watch.start()
    try:
        yield
    finally:
        await watch.stop()
        await bus.stop()
        await client.aclose()


async def shared_ctx(app: web.Application) -> AsyncIterator[None]:
    """What every area shares: the rate limiter and the read cache."""
    settings, metrics = app[SETTINGS], app[METRICS]
    app[READ_CACHE] = ReadCache(maxsize=settings.read_cache_size, ttl=settings.read_cache_ttl,
                                bus=app[BUS], registry=metrics.registry)
    app[LIMITER] = RateLimiter(
        redis_url=settings.redis_url, enabled=settings.rate_limits_enabled, metrics=metrics,
        key_prefix=RedisKeys(settings.redis_key_prefix).rate_limits)
    if not settings.rate_limits_enabled:
        logger.warning("SKILLSHARE_RATE_LIMITS=off: every rate limit and login throttle is off")
    yield


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    mail = build_mail(db=app[DB], fields=app[FIELDS], smtp_url=settings.smtp_url,
                      outbox=settings.data_dir / "outbox", sender=settings.mail_from,
                      clock=app[CLOCK], metrics=app[METRICS])
    app[MAIL] = mail.service
    async with running(mail):
        yield


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """Accounts, sessions, sign-in providers and profiles (server/auth/)."""
    auth = build_auth(
        app[SETTINGS], db=app[DB], fields=app[FIELDS], redis=app[REDIS], bus=app[BUS],
        cache=app[READ_CACHE], limiter=app[LIMITER], mail=app[MAIL],
        public_url=public_url(app[SETTINGS]), clock=app[CLOCK], metrics=app[METRICS],
    )
    app[USERS], app[AUDIT], app[SESSIONS], app[ACCOUNTS] = (
        auth.users, auth.audit, auth.sessions, auth.accounts)
    app[HASHING], app[SIGN_IN], app[PROFILES] = auth.hashing, auth.sign_in, auth.profiles
    async with running(auth):
        yield


async def consent_ctx(app: web.Application) -> AsyncIterator[None]:
    """Blocks and relations (server/consent): before the real-time core,
    calls and the marketplace, which all ask it."""
    consent = build_consent(
        db=app[DB], fields=app[FIELDS], users=app[USERS], audit=app[AUDIT], bus=app[BUS],
        clock=app[CLOCK], profiles=app[PROFILES], max_blocks=app[SETTINGS].max_blocks_per_user,
        cache=app[READ_CACHE],
    )
    app[CONSENT] = consent.service
    async with running(consent):
        yield


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    """Rooms, chat, presence and connections over the Socket.IO server
    that ``create_app`` attached (server/realtime/)."""
    realtime = build_realtime(
        app[SETTINGS], sio=app[SIO], registry=app[SOCKET_REGISTRY], metrics=app[REALTIME_METRICS],
        db=app[DB], fields=app[FIELDS], users=app[USERS], sessions=app[SESSIONS],
        consent=app[CONSENT], profiles=app[PROFILES], bus=app[BUS], redis=app[REDIS],
        node_id=app[NODE_ID], clock=app[CLOCK], cache=app[READ_CACHE],
    )
    app[ROOMS], app[CHAT], app[NOTIFIER] = realtime.rooms, realtime.chat, realtime.notifier
    app[PRESENCE], app[CONNECTIONS] = realtime.presence, realtime.connections
    app[PRESENCE_ACCESS] = realtime.presence_access
    await realtime.start()
    try:
        yield
    finally:
        await app[SOCKETS].stop()  # its flood-disconnect tasks first
        await realtime.stop()


async def calls_ctx(app: web.Application) -> AsyncIterator[None]:
    """Call state and this node's media relay (server/calls/)."""
    calls_area = build_calls(
        app[SETTINGS], bus=app[BUS], redis=app[REDIS], node_id=app[NODE_ID], users=app[USERS],
        presence=app[PRESENCE], notifier=app[NOTIFIER], limiter=app[LIMITER],
        consent=app[CONSENT], clock=app[CLOCK], registry=app[METRICS].registry,
    )
    app[CALLS], app[ICE_SERVERS] = calls_area.service, calls_area.ice_servers
    if calls_area.relay is not None:
        app[MEDIA_RELAY] = calls_area.relay
    async with running(calls_area):
        yield


async def delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    delivery_area = build_delivery(rooms=app[ROOMS], limiter=app[LIMITER],
                                   report_limit=app[SETTINGS].delivery_report_limit,
                                   registry=app[METRICS].registry)
    app[DELIVERY] = delivery_area.service
    async with running(delivery_area):
        yield


async def digest_ctx(app: web.Application) -> AsyncIterator[None]:
    """Email digests; after presence and calls, which it listens to."""
    digest_area = build_digest(
        app[SETTINGS], db=app[DB], users=app[USERS], rooms=app[ROOMS], chat=app[CHAT],
        mail=app[MAIL], presence=app[PRESENCE], calls=app[CALLS],
        public_url=public_url(app[SETTINGS]), clock=app[CLOCK], registry=app[METRICS].registry,
    )
    app[DIGEST] = digest_area.service
    async with running(digest_area):
        yield


async def marketplace_ctx(app: web.Application) -> AsyncIterator[None]:
    """Listings, skill requests, reviews, matches and moderation; with
    SKILLSHARE_AI_PROVIDER=gemini, the AI provider and the embedding worker."""
    ai = build_ai(app[SETTINGS], db=app[DB], budget=app[LIMITER],
                  registry=app[METRICS].registry, clock=app[CLOCK])
    market = await build_marketplace(
        db=app[DB], fields=app[FIELDS], users=app[USERS], audit=app[AUDIT],
        sessions=app[SESSIONS], mail=app[MAIL],
        profiles=app[PROFILES], bus=app[BUS], rooms=app[ROOMS], notifier=app[NOTIFIER],
        consent=app[CONSENT], semantic=ai.semantic, cache=app[READ_CACHE],
        public_url=public_url(app[SETTINGS]), clock=app[CLOCK],
    )
    app[LISTINGS], app[SKILL_REQUESTS], app[REVIEWS] = market.listings, market.requests, market.reviews
    app[MATCHES], app[MODERATION], app[EMBEDDER] = market.matches, market.moderation, market.embedder
    async with running(ai), running(market):
        yield


async def purge_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hourly purge of deleted accounts; last, because it erases from
    every area's collections and presence."""
    purge = build_purge(
        db=app[DB], fields=app[FIELDS], users=app[USERS], audit=app[AUDIT],
        cache=app[READ_CACHE], mail=app[MAIL], forget_presence=app[PRESENCE].forget,
        grace=timedelta(days=app[SETTINGS].deleted_user_grace_days), clock=app[CLOCK],
        metrics=app[METRICS],
    )
    app[PURGE] = purge.purge
    async with running(purge):
        yield


async def backup_ctx(app: web.Application) -> AsyncIterator[None]:
    """Scheduled backups of the embedded database (server/backup/)."""
    backup = build_backup(app[SETTINGS], db=app[DB], clock=app[CLOCK],
                          registry=app[METRICS].registry)
    async with running(backup):
        yield


async def drain_ctx(app: web.Application) -> AsyncIterator[None]:
    app[DRAIN] = NodeDrain(connections=app[CONNECTIONS], dispatcher=app[SOCKETS],
                           calls=app[CALLS], watch=app[NODE_WATCH],
                           timeout=app[SETTINGS].drain_timeout,
                           # a single node has nowhere to hand its clients over to
                           handover=HANDOVER_S if app[REDIS] is not None else 0.0)
    yield


async def fanout_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Socket.IO fan-out's subscriber is watched like the bus (its own canary)."""
    manager = app[SIO].manager
    if isinstance(manager, UrlAwareRedisManager):
        app[NODE_WATCH].watch("fanout", manager)
    yield


async def _drain(app: web.Application) -> None:
    if DRAIN in app:
        await app[DRAIN].drain()


def attach_socket_edge(app: web.Application, settings: Settings) -> None:
    """The Socket.IO server (routes under /socket.io/, attached before the
    app starts) and the one dispatcher over ``SOCKET_EVENT_TABLES``. The
    services it calls are built later, by the cleanup contexts."""
    metrics = RealtimeMetrics(app[METRICS].registry, bus_errors=app[METRICS].redis_bus_errors)
    sio = build_server(settings, metrics, node_id=app[NODE_ID])
    sio.attach(app)
    registry = SocketRegistry()

    async def on_flood(state: SocketState) -> None:
        await app[CONNECTIONS].close(state, "flooding")

    async def require_verified(user_id: str, action: str) -> None:
        await app[ACCOUNTS].require_verified(user_id, action)

    dispatcher = EventDispatcher(
        app=app, sio=sio, registry=registry, metrics=metrics,
        max_payload=settings.socket_max_payload, flood_limit=settings.socket_flood_limit,
        on_flood=on_flood, require_verified=require_verified, clock=app[CLOCK],
    )
    for table in SOCKET_EVENT_TABLES:
        dispatcher.add(table)
    app[SIO], app[SOCKETS], app[SOCKET_REGISTRY], app[REALTIME_METRICS] = (
        sio, dispatcher, registry, metrics)
    sio.on("*", dispatcher.dispatch)

    async def on_violation(eio_sid, sid, violation):  # noqa: ANN001
        dispatcher.protocol_violation(eio_sid, registry.get(sid) if sid else None, violation)

    def on_slow_consumer(eio_sid, sid):  # noqa: ANN001
        dispatcher.slow_consumer(eio_sid, registry.get(sid) if sid else None)

    sio.on_violation = on_violation
    sio.on_slow_consumer = on_slow_consumer

    async def connect(sid, environ, auth=None):  # noqa: ANN001
        await app[CONNECTIONS].on_connect(sid, environ, auth)

    async def disconnect(sid, reason=None):  # noqa: ANN001
        with contextlib.suppress(KeyError):
            await app[CONNECTIONS].on_disconnect(sid, reason)

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes)
    protocol_log.install()
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[METRICS] = Metrics()
    app[NODE_ID] = new_node_id()
    attach_socket_edge(app, settings)
    # started in this order, stopped in reverse
    app.cleanup_ctx.extend([
        database_ctx, redis_ctx, shared_ctx, mail_ctx, auth_ctx, consent_ctx,
        realtime_ctx, calls_ctx, delivery_ctx, digest_ctx, drain_ctx, fanout_watch_ctx,
        marketplace_ctx, purge_ctx, backup_ctx,
    ])
    app.on_shutdown.append(_drain)  # SIGTERM: after the listener closed, before cleanup
    specs = []
    for table in ROUTE_TABLES:
        table.add_to(app)
        specs.extend(table.specs)
    app[ROUTE_SPECS] = specs
    ops.add_static(app)
    webapp.add_static(app)
    return app
