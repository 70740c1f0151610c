"""Presence: online while any socket of the user is connected to any node.

Each node counts its own sockets per user, mirrors them into the presence
store, refreshes a heartbeat every ``heartbeat_interval`` and sweeps nodes
whose heartbeat expired every ``sweep_interval``; so a killed node's users
go offline within ``node_ttl + sweep_interval`` (15 s + 5 s by default).
Changes are pushed as ``presence`` events to the Socket.IO room
``presence:<uid>``, which subscribers' sockets join."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from loguru import logger

from ..clock import Clock
from ..storage.presence import OFFLINE, Presence, PresenceStore
from ..tasks import cancel_and_wait
from ..views.presence import presence_view
from .notifier import Notifier, presence_room

PresenceListener = Callable[[str, str], Awaitable[None]]


class PresenceService:
    def __init__(
        self, *, store: PresenceStore, notifier: Notifier, clock: Clock, heartbeat_interval: float,
        sweep_interval: float, on_error: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._clock = clock
        self._heartbeat_interval = heartbeat_interval
        self._sweep_interval = sweep_interval
        self._on_error = on_error
        self._local: dict[str, int] = {}
        self._status: dict[str, str] = {}
        self._dirty = True  # Redis may not match our sockets: reassert at next beat
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[PresenceListener] = []

    def add_listener(self, listener: PresenceListener) -> None:
        """``await listener(user_id, status)`` after each change this node
        publishes, ``offline`` included (last socket gone, a dead node swept,
        shutdown); exactly one node reports each change. Used by calls."""
        self._listeners.append(listener)

    @property
    def local_users(self) -> dict[str, int]:
        return dict(self._local)

    async def connected(self, user_id: str) -> None:
        self._local[user_id] = self._local.get(user_id, 0) + 1
        now = self._clock.time()
        try:
            became = await self._store.connect(user_id, now=now)
        except Exception as exc:
            self._failed("connect", exc)
            return
        if became:
            await self._publish(user_id, Presence("online", now))

    async def disconnected(self, user_id: str) -> None:
        count = self._local.get(user_id, 0) - 1
        if count > 0:
            self._local[user_id] = count
        else:
            self._local.pop(user_id, None)
        now = self._clock.time()
        try:
            gone = await self._store.disconnect(user_id, now=now)
        except Exception as exc:
            self._failed("disconnect", exc)
            return
        if gone:
            await self._publish(user_id, Presence(OFFLINE, now))

    async def set_status(self, user_id: str, status: str) -> None:
        try:
            changed = await self._store.set_status(user_id, status)
        except Exception as exc:
            self._failed("set status", exc)
            raise
        if changed:
            await self._publish(user_id, Presence(status, self._clock.time()))

    async def forget(self, user_id: str) -> None:
        """A purged account: its presence (status, last_seen) is dropped."""
        await self._store.forget(user_id)

    async def snapshot(self, user_ids: list[str]) -> dict[str, Presence]:
        return await self._store.get_many(user_ids)

    async def _publish(self, user_id: str, p: Presence) -> None:
        await self._notifier.to_room(presence_room(user_id), "presence", presence_view(user_id, p))
        for listener in self._listeners:
            try:
                await listener(user_id, p.status)
            except Exception:
                logger.exception("presence listener failed for {}", user_id)

    def _failed(self, what: str, exc: Exception) -> None:
        self._dirty = True
        if self._on_error is not None:
            self._on_error()
        logger.warning("presence: {} failed ({!r}); will resync", what, exc)

    async def beat(self) -> None:
        """Refresh the heartbeat; resync everything when Redis lost track of
        us (restart, missed update, or we were swept after a stall)."""
        now = self._clock.time()
        if not self._dirty and await self._store.beat():
            return
        result = await self._store.reassert(dict(self._local), now=now)
        self._dirty = False
        if result.was_missing:
            logger.info("presence: heartbeat re-established; {} users resynced", len(self._local))
        for uid in result.came_online:
            await self._publish(uid, Presence("online", now))
        for uid in result.went_offline:
            await self._publish(uid, Presence(OFFLINE, now))

    async def sweep(self) -> None:
        now = self._clock.time()
        for uid in await self._store.sweep(now=now):
            await self._publish(uid, Presence(OFFLINE, now))

    async def _run(self) -> None:
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.beat()
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._sweep_interval
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("heartbeat", exc)
            await asyncio.sleep(self._heartbeat_interval)

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            await self.beat()
        self._task = asyncio.create_task(self._run(), name="presence-heartbeat")

    async def stop(self) -> None:
        """Cancel the heartbeat and report this node's users offline (unless
        another node still has them), so peers need not wait for the TTL."""
        await cancel_and_wait([self._task])
        self._task = None
        self._local.clear()
        try:
            result = await self._store.reassert({}, now=self._clock.time())
            for uid in result.went_offline:
                await self._publish(uid, Presence(OFFLINE, self._clock.time()))
            await self._store.remove_node()
        except Exception as exc:
            logger.warning("presence: could not clear this node's users ({!r})", exc)
