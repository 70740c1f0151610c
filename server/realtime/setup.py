"""Wiring of the real-time core into the app: ``attach_realtime(app)`` from
``create_app`` creates the Socket.IO server and registers the cleanup
context that builds the stores and services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from limits import parse as parse_limit
from loguru import logger

from ..handlers import chat as chat_events
from ..handlers import presence as presence_events
from ..keys import (
    BUS,
    CHAT,
    CLOCK,
    CONNECTIONS,
    CONSENT,
    DB,
    FIELDS,
    METRICS,
    NODE_ID,
    NOTIFIER,
    PRESENCE,
    PRESENCE_ACCESS,
    PROFILES,
    REDIS,
    ROOMS,
    SESSIONS,
    SETTINGS,
    SIO,
    SOCKETS,
    USERS,
)
from ..storage.messages import MessageStore
from ..storage.presence import MemoryPresenceStore, RedisPresenceStore
from ..storage.read_markers import ReadMarkerStore
from ..storage.rooms import RoomStore
from .chat import ChatService
from .connections import ConnectionManager
from .metrics import RealtimeMetrics
from .notifier import Notifier
from .presence import PresenceService
from .presence_access import PresenceAccess
from .rooms import RoomService, public_message, public_room
from .sequences import SequenceCache
from .server import build_server
from .sockets import EventDispatcher, SocketEvents, SocketRegistry

SOCKET_EVENT_TABLES: list[SocketEvents] = [chat_events.events, presence_events.events]
REALTIME_METRICS = web.AppKey("realtime_metrics", RealtimeMetrics)
_REGISTRY = web.AppKey("socket_registry", SocketRegistry)


def _event_rate(spec: str) -> float:
    """Events per second from a ``limits`` string such as ``20/second``."""
    item = parse_limit(spec)
    return item.amount / item.get_expiry()


def attach_realtime(app: web.Application) -> None:
    """Create the Socket.IO server on ``app`` (routes under /socket.io/) and
    the dispatcher other areas add their event tables to."""
    settings = app[SETTINGS]
    metrics = RealtimeMetrics(app[METRICS].registry, bus_errors=app[METRICS].redis_bus_errors)
    sio = build_server(settings, metrics)
    sio.attach(app)
    registry = SocketRegistry()

    async def on_flood(state):  # noqa: ANN001
        await app[CONNECTIONS].close(state, "flooding")

    dispatcher = EventDispatcher(
        app=app, sio=sio, registry=registry, metrics=metrics,
        max_payload=settings.socket_max_payload, flood_limit=settings.socket_flood_limit,
        on_flood=on_flood,
    )
    for table in SOCKET_EVENT_TABLES:
        dispatcher.add(table)
    app[SIO] = sio
    app[SOCKETS] = dispatcher
    app[REALTIME_METRICS] = metrics
    app[_REGISTRY] = registry
    sio.on("*", dispatcher.dispatch)

    async def on_violation(eio_sid, sid, violation):  # noqa: ANN001
        dispatcher.protocol_violation(eio_sid, registry.get(sid) if sid else None, violation)

    sio.on_violation = on_violation

    def on_slow_consumer(eio_sid, sid):  # noqa: ANN001
        dispatcher.slow_consumer(eio_sid, registry.get(sid) if sid else None)

    sio.on_slow_consumer = on_slow_consumer

    async def connect(sid, environ, auth=None):  # noqa: ANN001
        await app[CONNECTIONS].on_connect(sid, environ, auth)

    async def disconnect(sid, reason=None):  # noqa: ANN001
        with contextlib.suppress(KeyError):
            await app[CONNECTIONS].on_disconnect(sid, reason)

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    app.cleanup_ctx.append(realtime_ctx)


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, clock, db, metrics = app[SETTINGS], app[CLOCK], app[DB], app[REALTIME_METRICS]
    sio = app[SIO]
    rooms_store, markers = RoomStore(db), ReadMarkerStore(db)
    messages = MessageStore(db, app[FIELDS])
    sequences = SequenceCache(messages)
    notifier = Notifier(sio, on_error=metrics.bus_errors.inc)
    rooms = RoomService(rooms=rooms_store, messages=messages, markers=markers, users=app[USERS],
                        sequences=sequences, clock=clock, consent=app[CONSENT],
                        notifier=notifier, bus=app[BUS])
    chat = ChatService(rooms=rooms, messages=messages, markers=markers, sequences=sequences,
                       notifier=notifier, clock=clock, typing_interval=settings.typing_interval,
                       max_batch=settings.message_batch_max,
                       on_persisted=metrics.messages_persisted.inc,
                       on_batch=metrics.message_batch_size.observe,
                       on_batch_failed=metrics.message_batch_failed)
    redis = app[REDIS]
    node_id = app[NODE_ID]
    store = (RedisPresenceStore(redis, node_id=node_id, node_ttl=settings.presence_node_ttl)
             if redis is not None else MemoryPresenceStore())
    presence = PresenceService(
        store=store, notifier=notifier, clock=clock,
        heartbeat_interval=settings.presence_heartbeat_interval,
        sweep_interval=settings.presence_sweep_interval, on_error=metrics.bus_errors.inc,
    )
    connections = ConnectionManager(
        sio=sio, sessions=app[SESSIONS], presence=presence, registry=app[_REGISTRY],
        bus=app[BUS], metrics=metrics, clock=clock,
        expiry_warning=settings.socket_expiry_warning,
        event_rate=_event_rate(settings.socket_event_rate) if settings.rate_limits_enabled else None,
        event_burst=settings.socket_event_burst,
        max_sockets_per_user=settings.socket_max_per_user,
    )
    async def export_chat(user_id: str) -> dict:
        return {
            "rooms": [public_room(r) for r in await rooms_store.list_all_for_member(user_id)],
            "messages_sent": [public_message(m) for m in await messages.export_sent(user_id)],
        }

    app[PROFILES].add_exporter("chat", export_chat)
    app[ROOMS], app[CHAT], app[NOTIFIER] = rooms, chat, notifier
    app[PRESENCE], app[CONNECTIONS] = presence, connections
    app[PRESENCE_ACCESS] = PresenceAccess(sio=sio, registry=app[_REGISTRY], consent=app[CONSENT],
                                          presence=presence, bus=app[BUS])
    await presence.start()
    logger.info("real-time core ready (node {}, {})", node_id,
                "redis fan-out" if redis is not None else "single node")
    try:
        yield
    finally:
        await app[SOCKETS].stop()
        await chat.close()
        await connections.close_all()
        await presence.stop()
        manager_task = getattr(sio.manager, "thread", None)
        if isinstance(manager_task, asyncio.Task):
            manager_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await manager_task
        close_shards = getattr(sio.manager, "close_shards", None)
        if close_shards is not None:
            await close_shards()
        redis_client = getattr(sio.manager, "redis", None)
        if redis_client is not None:
            with contextlib.suppress(Exception):
                await redis_client.aclose()
