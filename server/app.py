"""``create_app(settings)``: every AppKey, cleanup context and route table.
The CLI and the tests build the app here; nothing else imports this module."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from loguru import logger

from .auth.accounts import AccountLimits, AccountService
from .auth.oidc.setup import build_sign_in
from .auth.passwords import Passwords
from .auth.purge import AccountPurge, PurgeStores, purge_counter
from .auth.sessions import SessionService
from .auth.tokens import AccessTokens
from .backup.commands import backup_source
from .backup.schedule import BackupMetrics, BackupScheduler
from .bus import Bus, RedisBus
from .calls.setup import attach_calls
from .delivery.setup import attach_delivery
from .digest.setup import attach_digest
from .clock import Clock
from .config import Settings
from .consent.setup import build_consent
from .handlers import (
    accounts,
    admin,
    blocks,
    client_errors,
    calls,
    digest,
    matches,
    nodes,
    oidc,
    ops,
    requests,
    rooms,
    skills,
    users,
    webapp,
)
from .drain import HANDOVER_S, NodeDrain
from .auth.hashing_pool import HashingPool, default_workers
from .keys import (
    ACCOUNTS,
    AUDIT,
    BUS,
    CALLS,
    CLOCK,
    CONNECTIONS,
    HASHING,
    CONSENT,
    DB,
    DRAIN,
    EMBEDDER,
    FIELDS,
    READ_CACHE,
    LIMITER,
    LISTINGS,
    MAIL,
    MATCHES,
    METRICS,
    MODERATION,
    NODE_ID,
    NODE_WATCH,
    NOTIFIER,
    PRESENCE,
    PROFILES,
    PURGE,
    REDIS,
    REVIEWS,
    ROOMS,
    ROUTE_SPECS,
    SESSIONS,
    SETTINGS,
    SIGN_IN,
    SIO,
    SKILL_REQUESTS,
    SOCKETS,
    USERS,
)
from .logs import mask_url
from .mail.service import MailService
from .mail.transports import MailTransport, OutboxTransport, SmtpTransport
from .ai.setup import build_semantic
from .marketplace.setup import build_marketplace
from .metrics import Metrics
from .middlewares import MIDDLEWARES
from .node_watch import NodeWatch
from . import protocol_log
from .profiles import ProfileService
from .ratelimit import RateLimiter
from .realtime.redis_manager import UrlAwareRedisManager
from .read_cache import ReadCache
from .realtime.setup import attach_realtime
from .redis_client import ClusterPubSubNodes, connect_redis, is_cluster_url
from .redis_keys import RedisKeys
from .storage.audit import AuditStore
from .storage.blocks import BlockStore
from .storage.digests import DigestStore
from .storage.database import open_database
from .storage.identities import IdentityStore
from .storage.fields import FieldCrypto
from .storage.listings import ListingStore
from .storage.mail_queue import MailQueueStore
from .storage.messages import MessageStore
from .storage.ranking_snapshots import RankingSnapshotStore
from .storage.read_markers import ReadMarkerStore
from .storage.reviews import ReviewStore
from .storage.revocations import MemoryRevocationList, RedisRevocationList
from .storage.rooms import RoomStore
from .storage.sessions import SessionStore
from .storage.skill_index import SkillIndexStore
from .storage.skill_requests import SkillRequestStore
from .storage.user_tokens import UserTokenStore
from .storage.users import UserStore
from .tasks import cancel_and_wait

PURGE_INTERVAL_S = 3600
ROUTE_TABLES = [
    accounts.routes, oidc.routes, users.routes, blocks.routes, skills.routes, requests.routes, matches.routes,
    admin.routes, nodes.routes, rooms.routes, calls.routes, ops.routes, webapp.routes, digest.routes,
    client_errors.routes,
]


def public_url(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_database(
        mongo_url=settings.mongo_url, db_name=settings.mongo_db, data_dir=settings.data_dir,
        registry=app[METRICS].registry, embedded_port=settings.embedded_db_port,
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


def _mail_transport(settings: Settings) -> MailTransport:
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url)
    return OutboxTransport(settings.data_dir / "outbox")


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Stores and the account services over them (``open_database`` has
    created every index already)."""
    settings, clock, db, metrics = app[SETTINGS], app[CLOCK], app[DB], app[METRICS]
    fields = app[FIELDS]
    app[READ_CACHE] = ReadCache(maxsize=settings.read_cache_size, ttl=settings.read_cache_ttl,
                                bus=app[BUS], registry=metrics.registry)
    users = UserStore(db, fields, cache=app[READ_CACHE])
    sessions = SessionStore(db, fields)
    user_tokens = UserTokenStore(db)
    mail_queue = MailQueueStore(db, fields)
    audit = AuditStore(db, fields)

    redis = app[REDIS]
    revocations = (RedisRevocationList(redis, prefix=RedisKeys(settings.redis_key_prefix).revoked_sessions)
                   if redis is not None else MemoryRevocationList(clock))
    limiter = RateLimiter(
        redis_url=settings.redis_url, enabled=settings.rate_limits_enabled, metrics=metrics,
        key_prefix=RedisKeys(settings.redis_key_prefix).rate_limits)
    mail = MailService(
        store=mail_queue, transport=_mail_transport(settings), sender=settings.mail_from,
        clock=clock, metrics=metrics,
    )
    access_tokens = AccessTokens(
        keys=settings.signing_keys(), issuer=settings.jwt_issuer,
        audience=settings.jwt_audience, ttl=settings.access_token_ttl, clock=clock,
    )
    session_service = SessionService(
        users=users, sessions=sessions, audit=audit, access_tokens=access_tokens,
        revocations=revocations, bus=app[BUS], clock=clock,
        refresh_ttl=settings.refresh_token_ttl,
    )
    hashing = HashingPool(
        workers=settings.password_hash_workers or default_workers(),
        queue_limit=settings.password_hash_queue, registry=metrics.registry,
    )
    app[HASHING] = hashing
    account_service = AccountService(
        users=users, user_tokens=user_tokens, audit=audit,
        passwords=Passwords(
            min_length=settings.password_min_length, max_length=settings.password_max_length,
            time_cost=settings.password_hash_time_cost,
            memory_cost_kib=settings.password_hash_memory_kib, pool=hashing,
        ),
        sessions=session_service, mail=mail, limiter=limiter,
        limits=AccountLimits(
            register=settings.register_limit, login_account=settings.login_account_limit,
            login_ip=settings.login_ip_limit, forgot_password=settings.forgot_password_limit,
            email_token_ttl=settings.email_token_ttl,
            password_reset_ttl=settings.password_reset_ttl,
        ),
        public_url=public_url(settings), clock=clock,
        verified_actions=frozenset(settings.require_verified_email_for),
    )
    app[USERS] = users
    app[AUDIT] = audit
    app[LIMITER] = limiter
    app[MAIL] = mail
    app[SESSIONS] = session_service
    app[ACCOUNTS] = account_service
    app[PROFILES] = ProfileService(users=users, sessions=sessions, clock=clock)
    restored = await session_service.restore_revocations()
    if restored:
        logger.info("restored {} recent session revocations", restored)
    # A Redis without persistence forgets revocations when it restarts.
    app[BUS].on_reconnect(session_service.restore_revocations)
    if not settings.rate_limits_enabled:
        logger.warning("SKILLSHARE_RATE_LIMITS=off: every rate limit and login throttle is off")
    mail.start()
    try:
        yield
    finally:
        await account_service.stop()
        await mail.stop()
        hashing.close()


async def sign_in_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sign-in providers (server/auth/oidc/) and the HTTP session they use."""
    settings = app[SETTINGS]
    sign_in = build_sign_in(
        settings.oidc_provider_configs(), db=app[DB], fields=app[FIELDS], users=app[USERS],
        sessions=app[SESSIONS], audit=app[AUDIT], public_url=public_url(settings),
        flow_ttl=settings.oidc_flow_ttl, http_timeout=settings.oidc_http_timeout,
        limiter=app[LIMITER], start_limit=settings.oidc_start_limit, clock=app[CLOCK],
        registry=app[METRICS].registry,
    )
    app[SIGN_IN] = sign_in
    app[PROFILES].add_exporter("sign_in_providers", sign_in.export)
    try:
        yield
    finally:
        await sign_in.close()


async def consent_ctx(app: web.Application) -> AsyncIterator[None]:
    """Blocks and relations (server/consent): before the real-time core,
    calls and the marketplace, which all ask it."""
    consent = await build_consent(
        db=app[DB], fields=app[FIELDS], users=app[USERS], audit=app[AUDIT], bus=app[BUS],
        clock=app[CLOCK], max_blocks=app[SETTINGS].max_blocks_per_user,
    )
    app[CONSENT] = consent
    app[PROFILES].add_exporter("blocks", consent.export)
    yield


async def marketplace_ctx(app: web.Application) -> AsyncIterator[None]:
    """Listings, skill requests, reviews, matches and moderation; with
    SKILLSHARE_AI_PROVIDER=gemini, the embedding worker (owned here)."""
    semantic = build_semantic(app[SETTINGS], db=app[DB], budget=app[LIMITER],
                              registry=app[METRICS].registry, clock=app[CLOCK])
    services = await build_marketplace(
        db=app[DB], fields=app[FIELDS], users=app[USERS], audit=app[AUDIT],
        sessions=app[SESSIONS], mail=app[MAIL],
        profiles=app[PROFILES], bus=app[BUS], rooms=app[ROOMS], notifier=app[NOTIFIER],
        consent=app[CONSENT], semantic=semantic, cache=app[READ_CACHE],
        public_url=public_url(app[SETTINGS]), clock=app[CLOCK],
    )
    app[LISTINGS] = services.listings
    app[SKILL_REQUESTS] = services.requests
    app[REVIEWS] = services.reviews
    app[MATCHES] = services.matches
    app[MODERATION] = services.moderation
    app[EMBEDDER] = services.embedder
    tasks = []
    if services.embedder is not None:
        tasks.append(asyncio.create_task(services.embedder.run(), name="ai-embedding-worker"))
    try:
        yield
    finally:
        await cancel_and_wait(tasks)
        if semantic is not None:
            await semantic.close()


async def purge_ctx(app: web.Application) -> AsyncIterator[None]:
    """The purge of deleted accounts and its hourly task; last, because it
    erases from every area's collections and presence."""
    db, fields = app[DB], app[FIELDS]
    purge = AccountPurge(
        stores=PurgeStores(
            users=app[USERS], sessions=SessionStore(db, fields), user_tokens=UserTokenStore(db),
            audit=app[AUDIT], rooms=RoomStore(db), messages=MessageStore(db, fields),
            read_markers=ReadMarkerStore(db), listings=ListingStore(db, cache=app[READ_CACHE]),
            skill_requests=SkillRequestStore(db, fields),
            reviews=ReviewStore(db, fields, cache=app[READ_CACHE]),
            skill_index=SkillIndexStore(db), snapshots=RankingSnapshotStore(db),
            blocks=BlockStore(db), identities=IdentityStore(db, fields), digests=DigestStore(db),
        ),
        mail=app[MAIL], forget_presence=app[PRESENCE].forget,
        grace=timedelta(days=app[SETTINGS].deleted_user_grace_days), clock=app[CLOCK],
        outcomes=purge_counter(app[METRICS].registry),
    )
    app[PURGE] = purge
    task = asyncio.create_task(_purge_deleted_users(purge), name="purge-deleted-users")
    try:
        yield
    finally:
        await cancel_and_wait([task])


async def _purge_deleted_users(purge: AccountPurge) -> None:
    while True:
        try:
            purged = await purge.purge_due()
            if purged:
                logger.info("purged personal data of {} deleted accounts", purged)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("purging deleted accounts failed")
        await asyncio.sleep(PURGE_INTERVAL_S)


async def backup_ctx(app: web.Application) -> AsyncIterator[None]:
    """Scheduled backups of the embedded database (SKILLSHARE_BACKUP_DIR); a
    shared SKILLSHARE_MONGO_URL is backed up by `skillshare backup` or the
    database's own tooling, not by every node."""
    settings = app[SETTINGS]
    if settings.backup_dir is None:
        yield
        return
    if settings.mongo_url is not None:
        logger.warning("SKILLSHARE_BACKUP_DIR is ignored with SKILLSHARE_MONGO_URL: back up the "
                       "shared database with `skillshare backup` (docs/operations.md)")
        yield
        return
    scheduler = BackupScheduler(
        db=app[DB], directory=settings.backup_dir, interval=settings.backup_interval,
        keep=settings.backup_keep, key=settings.backup_key,
        source=backup_source(settings), clock=app[CLOCK],
        metrics=BackupMetrics(app[METRICS].registry),
    )
    logger.info("scheduled backups every {} s into {} (keeping {}, {})",
                settings.backup_interval, settings.backup_dir, settings.backup_keep,
                "encrypted" if settings.backup_key else "not encrypted")
    task = asyncio.create_task(scheduler.run(), name="scheduled-backups")
    try:
        yield
    finally:
        await cancel_and_wait([task])


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


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes)
    protocol_log.install()
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[METRICS] = Metrics()
    app[NODE_ID] = uuid.uuid4().hex[:12]
    app.cleanup_ctx.extend([database_ctx, redis_ctx, services_ctx, sign_in_ctx, consent_ctx])
    attach_realtime(app)  # Socket.IO server + realtime_ctx (rooms, chat, presence)
    attach_calls(app)  # call:* events + calls_ctx (call state, media relay)
    attach_delivery(app)  # delivery:report + delivery metrics
    attach_digest(app, public_url=public_url(settings))  # email digests (presence, missed calls)
    app.cleanup_ctx.extend([drain_ctx, fanout_watch_ctx])
    app.on_shutdown.append(_drain)  # SIGTERM: after the listener closed, before cleanup
    app.cleanup_ctx.extend([marketplace_ctx, purge_ctx, backup_ctx])
    specs = []
    for table in ROUTE_TABLES:
        table.add_to(app)
        specs.extend(table.specs)
    app[ROUTE_SPECS] = specs
    ops.add_static(app)
    webapp.add_static(app)
    return app
