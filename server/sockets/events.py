"""Socket.IO event tables (``SocketEvents``, like ``http.routes.Routes``) and
what a handler gets (``SocketContext``).

A handler is ``async def handler(ctx: SocketContext, payload: Model) -> dict``;
the dict is merged into ``{"ok": true, ...}``. Raise ``ApiError`` for
refusals; anything else becomes ``internal_error`` (logged once)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from socketio import AsyncServer

from ..realtime.socket_registry import SocketState

EventHandler = Callable[["SocketContext", Any], Awaitable[dict[str, Any] | None]]
# (user id, action) -> None, or 403 ``email_not_verified`` (AccountService.require_verified)
RequireVerified = Callable[[str, str], Awaitable[None]]


@dataclass(slots=True)
class EventSpec:
    event: str
    handler: EventHandler
    model: type[BaseModel] | None
    description: str | None = None


class SocketEvents:
    """A handler module's client-to-server events; list the table in
    ``SOCKET_EVENT_TABLES`` (``server/app.py``, next to ``ROUTE_TABLES``)."""

    def __init__(self) -> None:
        self.specs: list[EventSpec] = []

    def on(self, event: str, model: type[BaseModel] | None = None) -> Callable[[EventHandler], EventHandler]:
        def register(handler: EventHandler) -> EventHandler:
            self.specs.append(EventSpec(event, handler, model, (handler.__doc__ or "").strip() or None))
            return handler
        return register


@dataclass(slots=True)
class SocketContext:
    """What a handler gets: the app (for services), the server and the socket."""

    app: web.Application
    sio: AsyncServer
    state: SocketState
    require_verified: RequireVerified

    @property
    def sid(self) -> str:
        return self.state.sid

    @property
    def user_id(self) -> str:
        return self.state.user_id

    @property
    def session_id(self) -> str:
        return self.state.session_id

    async def require_verified_email(self, action: str) -> None:
        """``email_not_verified`` if the operator requires it for ``action``."""
        await self.require_verified(self.user_id, action)
