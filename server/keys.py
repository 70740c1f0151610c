"""Typed aiohttp ``AppKey``s: the app's collaborators, set up by
``server.app.create_app`` and read by the handlers (a type checker sees
``app[SETTINGS]`` as ``Settings``).

Nothing this module imports may import it back (``tests/test_import_graph.py``):
areas, services and stores never read the app; the handlers and edges do."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import socketio
from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from .ai.worker import EmbeddingWorker
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
from .delivery.service import DeliveryService
from .digest.service import DigestService
from .drain import NodeDrain
from .http.routes import RouteSpec
from .mail.service import MailService
from .marketplace.listings import ListingService
from .marketplace.matches import MatchService
from .marketplace.moderation import ModerationService
from .marketplace.requests import RequestService
from .marketplace.reviews import ReviewService
from .metrics import Metrics
from .node_watch import NodeWatch
from .profiles import ProfileService
from .ratelimit import RateLimiter
from .read_cache import ReadCache
from .realtime.chat import ChatService
from .realtime.connections import ConnectionManager
from .realtime.metrics import RealtimeMetrics
from .realtime.notifier import Notifier
from .realtime.presence import PresenceService
from .realtime.presence_access import PresenceAccess
from .realtime.rooms import RoomService
from .realtime.socket_registry import SocketRegistry
from .sockets.dispatcher import EventDispatcher
from .storage.audit import AuditStore
from .storage.fields import FieldCrypto
from .storage.users import UserStore

if TYPE_CHECKING:
    from .media.relay import MediaRelay  # aiortc: imported only when the relay is on

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
METRICS = web.AppKey("metrics", Metrics)
ROUTE_SPECS: web.AppKey[list[RouteSpec]] = web.AppKey("route_specs")
DB: web.AppKey[AsyncDatabase[dict[str, Any]]] = web.AppKey("db")
FIELDS = web.AppKey("fields", FieldCrypto)  # encryption at rest (server/storage/fields.py)
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")
BUS = web.AppKey("bus", Bus)
NODE_ID = web.AppKey("node_id", str)  # this process: bus, presence, relay placement, Socket.IO fan-out
DRAIN = web.AppKey("drain", NodeDrain)  # SIGTERM: move sockets away, then stop (server/drain.py)
NODE_WATCH = web.AppKey("node_watch", NodeWatch)  # bus canary, live peers (server/node_watch.py)
LIMITER = web.AppKey("limiter", RateLimiter)
MAIL = web.AppKey("mail", MailService)
USERS = web.AppKey("users", UserStore)
READ_CACHE = web.AppKey("read_cache", ReadCache)  # hot public reads (server/read_cache.py)
AUDIT = web.AppKey("audit", AuditStore)
SESSIONS = web.AppKey("sessions", SessionService)
ACCOUNTS = web.AppKey("accounts", AccountService)
HASHING = web.AppKey("hashing", HashingPool)
SIGN_IN = web.AppKey("sign_in", SignInService)  # sign-in providers (server/auth/oidc/)
PURGE = web.AppKey("purge", AccountPurge)
PROFILES = web.AppKey("profiles", ProfileService)
CONSENT = web.AppKey("consent", ConsentService)  # blocks, relations, presence visibility
# marketplace
LISTINGS = web.AppKey("listings", ListingService)
SKILL_REQUESTS = web.AppKey("skill_requests", RequestService)
REVIEWS = web.AppKey("reviews", ReviewService)
MATCHES = web.AppKey("matches", MatchService)
MODERATION = web.AppKey("moderation", ModerationService)
EMBEDDER: web.AppKey[EmbeddingWorker | None] = web.AppKey("embedder")  # Gemini only (server/ai/)
# real-time core (server/realtime/) and its socket edge (server/sockets/)
SIO = web.AppKey("sio", socketio.AsyncServer)
SOCKETS = web.AppKey("sockets", EventDispatcher)  # the SOCKET_EVENT_TABLES of server/app.py
REALTIME_METRICS = web.AppKey("realtime_metrics", RealtimeMetrics)
SOCKET_REGISTRY = web.AppKey("socket_registry", SocketRegistry)  # this node's sockets
ROOMS = web.AppKey("rooms", RoomService)
CHAT = web.AppKey("chat", ChatService)
NOTIFIER = web.AppKey("notifier", Notifier)  # notify_users(user_ids, event, payload)
PRESENCE = web.AppKey("presence", PresenceService)
PRESENCE_ACCESS = web.AppKey("presence_access", PresenceAccess)  # who may watch whom
CONNECTIONS = web.AppKey("connections", ConnectionManager)
# calls (server/calls/)
CALLS = web.AppKey("calls", CallService)
DELIVERY = web.AppKey("delivery", DeliveryService)  # delivery:report, delivery metrics
DIGEST = web.AppKey("digest", DigestService)  # email digests for people who were away
MEDIA_RELAY: web.AppKey[MediaRelay] = web.AppKey("media_relay")  # this node's relay, when enabled
ICE_SERVERS: web.AppKey[Callable[[str], dict[str, Any]]] = web.AppKey("ice_servers")  # user id -> {ice_servers, ttl}
