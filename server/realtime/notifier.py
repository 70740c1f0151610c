"""Server-to-client events for other areas: ``notify_users`` reaches every
socket of the given users on every node (each socket sits in the Socket.IO
room ``user:<id>``), with one publish through the client manager."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from loguru import logger


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def chat_room(room_id: str) -> str:
    return f"room:{room_id}"


def presence_room(user_id: str) -> str:
    return f"presence:{user_id}"


class Emitter(Protocol):
    async def emit(self, event: str, data: Any = None, *, to: Any = None,
                   skip_sid: Any = None, namespace: str | None = None) -> None: ...


class Notifier:
    """Fans events out to users and rooms. A failed publish (Redis down) is
    logged and counted, never raised: whatever must survive is stored, and
    clients catch up with ``room:sync``."""

    def __init__(self, emitter: Emitter, *, on_error: Any = None) -> None:
        self._emitter = emitter
        self._on_error = on_error

    async def notify_users(self, user_ids: Iterable[str], event: str, payload: dict) -> None:
        rooms = [user_room(u) for u in dict.fromkeys(user_ids)]
        if rooms:
            await self._emit(event, payload, rooms)

    async def notify_users_each(self, user_ids: Iterable[str], event: str,
                                payloads: list[dict]) -> None:
        """``notify_users`` for each of ``payloads``, in order, as one step
        where the emitter can (``emit_many``: each recipient's frames in one
        write on one node)."""
        rooms = [user_room(u) for u in dict.fromkeys(user_ids)]
        if not rooms or not payloads:
            return
        emit_many = getattr(self._emitter, "emit_many", None)
        if emit_many is None or len(payloads) == 1:
            for payload in payloads:
                await self._emit(event, payload, rooms)
            return
        try:
            await emit_many(event, payloads, to=rooms)
        except Exception:
            if self._on_error is not None:
                self._on_error()
            logger.exception("could not publish {} events", event)

    async def to_room(self, room: str, event: str, payload: dict,
                      *, skip_sid: str | None = None) -> None:
        await self._emit(event, payload, room, skip_sid=skip_sid)

    async def _emit(self, event: str, payload: dict, to: Any, skip_sid: str | None = None) -> None:
        try:
            await self._emitter.emit(event, payload, to=to, skip_sid=skip_sid)
        except Exception:
            if self._on_error is not None:
                self._on_error()
            logger.exception("could not publish {} event", event)
