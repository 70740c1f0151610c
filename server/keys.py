"""Typed aiohttp ``AppKey``s: the app's collaborators, set up by
``server.app.create_app`` and read by the handlers."""

# ruff: noqa: F401  -- the imports below name the AppKeys' value types (string annotations)
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase
    from redis.asyncio import Redis

    from .auth.accounts import AccountService
    from .auth.hashing_pool import HashingPool
    from .auth.oidc.service import SignInService
    from .auth.purge import AccountPurge
    from .auth.sessions import SessionService
    from .bus import Bus
    from .calls.service import CallService
    from .clock import Clock
    from .config import Settings
    from .consent.service import ConsentService
    from .http import RouteSpec
    from .mail.service import MailService
    from .marketplace.listings import ListingService
    from .media.relay import MediaRelay
    from .marketplace.matches import MatchService
    from .marketplace.moderation import ModerationService
    from .marketplace.requests import RequestService
    from .marketplace.reviews import ReviewService
    from .drain import NodeDrain
    from .metrics import Metrics
    from .node_watch import NodeWatch
    from .profiles import ProfileService
    from .realtime.chat import ChatService
    from .realtime.connections import ConnectionManager
    from .realtime.notifier import Notifier
    from .realtime.presence import PresenceService
    from .realtime.presence_access import PresenceAccess
    from .realtime.rooms import RoomService
    from .realtime.sockets import EventDispatcher
    from .ratelimit import RateLimiter
    from .read_cache import ReadCache
    from .storage.audit import AuditStore
    from .storage.fields import FieldCrypto
    from .storage.users import UserStore

SETTINGS = web.AppKey("settings", "Settings")
CLOCK = web.AppKey("clock", "Clock")
METRICS = web.AppKey("metrics", "Metrics")
ROUTE_SPECS = web.AppKey("route_specs", "list[RouteSpec]")
DB = web.AppKey("db", "AsyncDatabase")
FIELDS = web.AppKey("fields", "FieldCrypto")  # encryption at rest (server/storage/fields.py)
REDIS = web.AppKey("redis", "Redis | None")
BUS = web.AppKey("bus", "Bus")
NODE_ID = web.AppKey("node_id", str)  # this process, on the bus, in presence and relay placement
DRAIN = web.AppKey("drain", "NodeDrain")  # SIGTERM: move sockets away, then stop (server/drain.py)
NODE_WATCH = web.AppKey("node_watch", "NodeWatch")  # bus canary, live peers (server/node_watch.py)
LIMITER = web.AppKey("limiter", "RateLimiter")
MAIL = web.AppKey("mail", "MailService")
USERS = web.AppKey("users", "UserStore")
READ_CACHE = web.AppKey("read_cache", "ReadCache")  # hot public reads (server/read_cache.py)
AUDIT = web.AppKey("audit", "AuditStore")
SESSIONS = web.AppKey("sessions", "SessionService")
ACCOUNTS = web.AppKey("accounts", "AccountService")
HASHING = web.AppKey("hashing", "HashingPool")
SIGN_IN = web.AppKey("sign_in", "SignInService")  # sign-in providers (server/auth/oidc/)
PURGE = web.AppKey("purge", "AccountPurge")
PROFILES = web.AppKey("profiles", "ProfileService")
CONSENT = web.AppKey("consent", "ConsentService")  # blocks, relations, presence visibility
# marketplace
LISTINGS = web.AppKey("listings", "ListingService")
SKILL_REQUESTS = web.AppKey("skill_requests", "RequestService")
REVIEWS = web.AppKey("reviews", "ReviewService")
MATCHES = web.AppKey("matches", "MatchService")
MODERATION = web.AppKey("moderation", "ModerationService")
EMBEDDER = web.AppKey("embedder", "EmbeddingWorker | None")  # Gemini only (server/ai/)
# real-time core (server/realtime/)
SIO = web.AppKey("sio", "socketio.AsyncServer")
SOCKETS = web.AppKey("sockets", "EventDispatcher")  # .add(SocketEvents table)
ROOMS = web.AppKey("rooms", "RoomService")
CHAT = web.AppKey("chat", "ChatService")
NOTIFIER = web.AppKey("notifier", "Notifier")  # notify_users(user_ids, event, payload)
PRESENCE = web.AppKey("presence", "PresenceService")
PRESENCE_ACCESS = web.AppKey("presence_access", "PresenceAccess")  # who may watch whom
CONNECTIONS = web.AppKey("connections", "ConnectionManager")
# calls (server/calls/)
CALLS = web.AppKey("calls", "CallService")
DELIVERY = web.AppKey("delivery", "DeliveryService")  # delivery:report, delivery metrics
DIGEST = web.AppKey("digest", "DigestService")  # email digests for people who were away
MEDIA_RELAY = web.AppKey("media_relay", "MediaRelay")  # this node's relay, when enabled
ICE_SERVERS = web.AppKey("ice_servers", "Callable[[str], dict]")  # user id -> {ice_servers, ttl}
