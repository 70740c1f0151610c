"""``build_auth``: accounts, sessions, tokens, password hashing, sign-in
providers and profiles over their stores; ``build_purge``: the hourly purge
of deleted accounts (last, because it erases from every area's collections
and from presence)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from loguru import logger
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from ..bus import Bus
from ..clock import Clock
from ..config import Settings
from ..mail.service import MailService
from ..metrics import Metrics
from ..profiles import ProfileService
from ..ratelimit import RateLimiter
from ..read_cache import ReadCache
from ..redis_keys import RedisKeys
from ..storage.audit import AuditStore
from ..storage.blocks import BlockStore
from ..storage.digests import DigestStore
from ..storage.fields import FieldCrypto
from ..storage.identities import IdentityStore
from ..storage.listings import ListingStore
from ..storage.messages import MessageStore
from ..storage.ranking_snapshots import RankingSnapshotStore
from ..storage.read_markers import ReadMarkerStore
from ..storage.reviews import ReviewStore
from ..storage.revocations import MemoryRevocationList, RedisRevocationList
from ..storage.rooms import RoomStore
from ..storage.sessions import SessionStore
from ..storage.skill_index import SkillIndexStore
from ..storage.skill_requests import SkillRequestStore
from ..storage.user_tokens import UserTokenStore
from ..storage.users import UserStore
from ..tasks import cancel_and_wait
from .accounts import AccountLimits, AccountService
from .hashing_pool import HashingPool, default_workers
from .oidc.service import SignInService
from .oidc.setup import build_sign_in
from .passwords import Passwords
from .purge import AccountPurge, PurgeStores, purge_counter
from .sessions import SessionService
from .tokens import AccessTokens

PURGE_INTERVAL_S = 3600


@dataclass(frozen=True, slots=True)
class Auth:
    users: UserStore
    audit: AuditStore
    sessions: SessionService
    accounts: AccountService
    hashing: HashingPool
    sign_in: SignInService
    profiles: ProfileService
    bus: Bus

    async def start(self) -> None:
        restored = await self.sessions.restore_revocations()
        if restored:
            logger.info("restored {} recent session revocations", restored)
        # A Redis without persistence forgets revocations when it restarts.
        self.bus.on_reconnect(self.sessions.restore_revocations)

    async def stop(self) -> None:
        await self.sign_in.close()
        await self.accounts.stop()
        self.hashing.close()


def build_auth(
    settings: Settings, *, db: AsyncDatabase, fields: FieldCrypto, redis: Redis | None, bus: Bus,
    cache: ReadCache, limiter: RateLimiter, mail: MailService, public_url: str, clock: Clock,
    metrics: Metrics,
) -> Auth:
    """Stores and the account services over them (``open_database`` has
    created every index already)."""
    users = UserStore(db, fields, cache=cache)
    sessions = SessionStore(db, fields)
    audit = AuditStore(db, fields)
    revocations = (RedisRevocationList(redis, prefix=RedisKeys(settings.redis_key_prefix).revoked_sessions)
                   if redis is not None else MemoryRevocationList(clock))
    access_tokens = AccessTokens(
        keys=settings.signing_keys(), issuer=settings.jwt_issuer,
        audience=settings.jwt_audience, ttl=settings.access_token_ttl, clock=clock,
    )
    session_service = SessionService(
        users=users, sessions=sessions, audit=audit, access_tokens=access_tokens,
        revocations=revocations, bus=bus, clock=clock,
        refresh_ttl=settings.refresh_token_ttl,
    )
    hashing = HashingPool(
        workers=settings.password_hash_workers or default_workers(),
        queue_limit=settings.password_hash_queue, registry=metrics.registry,
    )
    account_service = AccountService(
        users=users, user_tokens=UserTokenStore(db), audit=audit,
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
        public_url=public_url, clock=clock,
        verified_actions=frozenset(settings.require_verified_email_for),
    )
    profiles = ProfileService(users=users, sessions=sessions, clock=clock)
    sign_in = build_sign_in(
        settings.oidc_provider_configs(), db=db, fields=fields, users=users,
        sessions=session_service, audit=audit, public_url=public_url,
        flow_ttl=settings.oidc_flow_ttl, http_timeout=settings.oidc_http_timeout,
        limiter=limiter, start_limit=settings.oidc_start_limit, clock=clock,
        registry=metrics.registry, cache=cache,
    )
    profiles.add_exporter("sign_in_providers", sign_in.export)
    return Auth(users=users, audit=audit, sessions=session_service, accounts=account_service,
                hashing=hashing, sign_in=sign_in, profiles=profiles, bus=bus)


@dataclass(slots=True)
class Purge:
    """The purge of deleted accounts, run every ``PURGE_INTERVAL_S``."""

    purge: AccountPurge
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name="purge-deleted-users"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)

    async def _run(self) -> None:
        while True:
            try:
                purged = await self.purge.purge_due()
                if purged:
                    logger.info("purged personal data of {} deleted accounts", purged)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("purging deleted accounts failed")
            await asyncio.sleep(PURGE_INTERVAL_S)


def build_purge(
    *, db: AsyncDatabase, fields: FieldCrypto, users: UserStore, audit: AuditStore,
    cache: ReadCache, mail: MailService, forget_presence: Callable[[str], Awaitable[None]],
    grace: timedelta, clock: Clock, metrics: Metrics,
) -> Purge:
    return Purge(AccountPurge(
        stores=PurgeStores(
            users=users, sessions=SessionStore(db, fields), user_tokens=UserTokenStore(db),
            audit=audit, rooms=RoomStore(db, cache=cache), messages=MessageStore(db, fields),
            read_markers=ReadMarkerStore(db, cache=cache), listings=ListingStore(db, cache=cache),
            skill_requests=SkillRequestStore(db, fields, cache=cache),
            reviews=ReviewStore(db, fields, cache=cache),
            skill_index=SkillIndexStore(db), snapshots=RankingSnapshotStore(db),
            blocks=BlockStore(db), identities=IdentityStore(db, fields, cache=cache),
            digests=DigestStore(db),
        ),
        mail=mail, forget_presence=forget_presence, grace=grace, clock=clock,
        outcomes=purge_counter(metrics.registry),
    ))
