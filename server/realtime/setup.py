"""``build_realtime``: the real-time core's stores and services (rooms,
chat, presence, connections, who may watch whom) over the Socket.IO server
and socket registry that ``create_app`` made (the server must be attached
before the app starts; the services need the database)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import socketio
from limits import parse as parse_limit
from loguru import logger
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from ..auth.sessions import SessionService
from ..bus import Bus
from ..clock import Clock
from ..config import Settings
from ..consent.service import ConsentService
from ..profiles import ProfileService
from ..read_cache import ReadCache
from ..redis_keys import RedisKeys
from ..storage.fields import FieldCrypto
from ..storage.messages import MessageStore
from ..storage.presence import MemoryPresenceStore, RedisPresenceStore
from ..storage.read_markers import ReadMarkerStore
from ..storage.rooms import RoomStore
from ..storage.users import UserStore
from ..views.rooms import message_view, room_view
from .chat import ChatService
from .connections import ConnectionManager
from .metrics import RealtimeMetrics
from .notifier import Notifier
from .presence import PresenceService
from .presence_access import PresenceAccess
from .rooms import RoomService
from .redis_manager import UrlAwareRedisManager
from .sequences import SequenceCache
from .socket_registry import SocketRegistry


def _event_rate(spec: str) -> float:
    """Events per second from a ``limits`` string such as ``20/second``."""
    item = parse_limit(spec)
    return item.amount / item.get_expiry()


@dataclass(frozen=True, slots=True)
class Realtime:
    sio: socketio.AsyncServer
    rooms: RoomService
    chat: ChatService
    notifier: Notifier
    presence: PresenceService
    connections: ConnectionManager
    presence_access: PresenceAccess
    node_id: str
    multi_node: bool

    async def start(self) -> None:
        await self.presence.start()
        logger.info("real-time core ready (node {}, {})", self.node_id,
                    "redis fan-out" if self.multi_node else "single node")

    async def stop(self) -> None:
        await self.chat.close()
        await self.connections.close_all()
        self.sio.eio.close_links()
        await self.presence.stop()
        manager_task = getattr(self.sio.manager, "thread", None)
        if isinstance(manager_task, asyncio.Task):
            manager_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await manager_task
        close_shards = getattr(self.sio.manager, "close_shards", None)
        if close_shards is not None:
            await close_shards()
        redis_client = getattr(self.sio.manager, "redis", None)
        if redis_client is not None:
            with contextlib.suppress(Exception):
                await redis_client.aclose()


def build_realtime(
    settings: Settings, *, sio: socketio.AsyncServer, registry: SocketRegistry,
    metrics: RealtimeMetrics, db: AsyncDatabase, fields: FieldCrypto, users: UserStore,
    sessions: SessionService, consent: ConsentService, profiles: ProfileService, bus: Bus,
    redis: Redis | None, node_id: str, clock: Clock, cache: ReadCache | None = None,
) -> Realtime:
    rooms_store, markers = RoomStore(db, cache=cache), ReadMarkerStore(db, cache=cache)
    messages = MessageStore(db, fields)
    sequences = SequenceCache(messages)
    if isinstance(sio.manager, UrlAwareRedisManager):
        sio.manager.on_remote_emit("message", sequences.observe_message)
    notifier = Notifier(sio, on_error=metrics.bus_errors.inc)
    rooms = RoomService(rooms=rooms_store, messages=messages, markers=markers, users=users,
                        sequences=sequences, clock=clock, consent=consent,
                        notifier=notifier, bus=bus)
    chat = ChatService(rooms=rooms, messages=messages, markers=markers, sequences=sequences,
                       notifier=notifier, clock=clock, typing_interval=settings.typing_interval,
                       max_batch=settings.message_batch_max,
                       on_persisted=metrics.messages_persisted.inc,
                       on_batch=metrics.message_batch_size.observe,
                       on_batch_failed=metrics.message_batch_failed)
    store = (RedisPresenceStore(redis, node_id=node_id, node_ttl=settings.presence_node_ttl,
                                prefix=RedisKeys(settings.redis_key_prefix).presence)
             if redis is not None else MemoryPresenceStore())
    presence = PresenceService(
        store=store, notifier=notifier, clock=clock,
        heartbeat_interval=settings.presence_heartbeat_interval,
        sweep_interval=settings.presence_sweep_interval, on_error=metrics.bus_errors.inc,
    )
    connections = ConnectionManager(
        sio=sio, sessions=sessions, presence=presence, registry=registry,
        bus=bus, metrics=metrics, clock=clock,
        expiry_warning=settings.socket_expiry_warning,
        event_rate=_event_rate(settings.socket_event_rate) if settings.rate_limits_enabled else None,
        event_burst=settings.socket_event_burst,
        max_sockets_per_user=settings.socket_max_per_user,
    )

    async def export_chat(user_id: str) -> dict:
        return {
            "rooms": [room_view(r) for r in await rooms_store.list_all_for_member(user_id)],
            "messages_sent": [message_view(m) for m in await messages.export_sent(user_id)],
        }

    profiles.add_exporter("chat", export_chat)
    presence_access = PresenceAccess(sio=sio, registry=registry, consent=consent,
                                     presence=presence, bus=bus)
    return Realtime(sio=sio, rooms=rooms, chat=chat, notifier=notifier, presence=presence,
                    connections=connections, presence_access=presence_access,
                    node_id=node_id, multi_node=redis is not None)
