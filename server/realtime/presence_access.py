"""Who may watch whose presence, enforced where the subscription is made.

A socket's ``presence:subscribe`` wishes are kept in ``state.presence``; the
socket joins the Socket.IO room ``presence:<uid>`` (where presence events are
published) only for the people its user may see (``ConsentService``). So
the check is made on the watcher's node, once per subscription, not per
event.

It stays true when consent changes later: whatever may change who sees whom
(a block or unblock, leaving or joining a room, a first message in a direct
room, a skill request, the ``presence_visibility`` setting) is announced on
the bus topic ``consent_changed`` with the people concerned; every node then
re-checks its sockets' subscriptions to those people: a watcher who may no
longer see someone leaves that room, one who now may joins it and gets the
current presence at once. Every change names all the people whose view of
each other it may alter (both sides of a block or a request, every member of
a room; a ``presence_visibility`` change its owner, whom the others watch),
so a socket's subscriptions to anyone else need no second look. The bus is
at-most-once, so when it reconnects every local subscription is re-checked."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

import socketio
from loguru import logger

from ..bus import Bus
from ..consent.service import CONSENT_CHANGED_TOPIC
from ..storage.presence import Presence
from ..views.presence import presence_view
from .notifier import presence_room
from .presence import PresenceService
from .socket_registry import SocketRegistry, SocketState


class Visibility(Protocol):
    async def presence_visible(self, viewer_id: str, person_ids: Iterable[str]) -> set[str]: ...


class PresenceAccess:
    def __init__(
        self, *, sio: socketio.AsyncServer, registry: SocketRegistry, consent: Visibility,
        presence: PresenceService, bus: Bus,
    ) -> None:
        self._sio = sio
        self._registry = registry
        self._consent = consent
        self._presence = presence
        bus.subscribe(CONSENT_CHANGED_TOPIC, self.on_changed)
        bus.on_reconnect(self.recheck_all)

    async def subscribe(self, state: SocketState, user_ids: list[str]
                        ) -> tuple[dict[str, Presence], list[str]]:
        """Watch ``user_ids``; returns the presence of those this user may
        see and the ids of the others (``hidden``: no presence, no events)."""
        state.presence.update(user_ids)
        visible = await self._consent.presence_visible(state.user_id, user_ids)
        await self._apply(state, set(user_ids), visible)
        shown = [u for u in user_ids if u in visible]
        snapshot = await self._presence.snapshot(shown) if shown else {}
        return snapshot, [u for u in user_ids if u not in visible]

    async def unsubscribe(self, state: SocketState, user_ids: list[str]) -> None:
        for uid in user_ids:
            state.presence.discard(uid)
            if uid in state.presence_visible:
                state.presence_visible.discard(uid)
                await self._sio.leave_room(state.sid, presence_room(uid))

    async def on_changed(self, payload: dict[str, Any]) -> None:
        ids = payload.get("user_ids")
        if not isinstance(ids, list):
            return
        await self._recheck({str(u) for u in ids})

    async def recheck_all(self) -> None:
        await self._recheck(None)

    async def _recheck(self, changed: set[str] | None) -> None:
        """Re-check local sockets' subscriptions to someone in ``changed``
        (every subscription when None)."""
        work: dict[str, list[tuple[SocketState, set[str]]]] = defaultdict(list)
        for state in self._registry.all():
            if state.closing or not state.presence:
                continue
            ids = set(state.presence) if changed is None else state.presence & changed
            if ids:
                work[state.user_id].append((state, ids))
        for viewer, items in work.items():
            wanted = set().union(*(ids for _, ids in items))
            try:
                visible = await self._consent.presence_visible(viewer, wanted)
            except Exception as exc:
                logger.warning("presence access: re-check for {} failed ({!r})", viewer, exc)
                continue
            for state, ids in items:
                if self._registry.get(state.sid) is state:
                    await self._apply(state, ids, visible, announce=True)

    async def _apply(self, state: SocketState, ids: set[str], visible: set[str],
                     *, announce: bool = False) -> None:
        shown: list[str] = []
        for uid in ids:
            if uid in visible and uid in state.presence and uid not in state.presence_visible:
                state.presence_visible.add(uid)
                await self._sio.enter_room(state.sid, presence_room(uid))
                shown.append(uid)
            elif uid not in visible and uid in state.presence_visible:
                state.presence_visible.discard(uid)
                await self._sio.leave_room(state.sid, presence_room(uid))
        if announce and shown:
            snapshot = await self._presence.snapshot(shown)
            await asyncio.gather(*(self._sio.emit("presence", presence_view(uid, p), to=state.sid)
                                   for uid, p in snapshot.items()), return_exceptions=True)
