"""Socket lifecycle: authentication on connect, the per-socket token
expiry watch (``session:expiring``, then disconnect unless ``auth:refresh``
arrived), revocations from the bus, and presence bookkeeping."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio
from loguru import logger

from ..auth.sessions import SESSIONS_REVOKED_TOPIC, SessionService
from ..auth.tokens import AccessClaims
from ..bus import Bus
from ..clock import Clock
from ..errors import ApiError, Forbidden, NodeDraining, RateLimited, TokenExpired, Unauthorized
from .metrics import RealtimeMetrics
from .notifier import user_room
from .presence import PresenceService
from .socket_registry import SocketRegistry, SocketState
from .token_bucket import TokenBucket

MAX_TOKEN_CHARS = 4096


class ConnectionManager:
    def __init__(
        self, *, sio: socketio.AsyncServer, sessions: SessionService, presence: PresenceService,
        registry: SocketRegistry, bus: Bus, metrics: RealtimeMetrics, clock: Clock,
        expiry_warning: float, event_rate: float | None, event_burst: int,
        max_sockets_per_user: int,
    ) -> None:
        self._sio = sio
        self._sessions = sessions
        self._presence = presence
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._expiry_warning = expiry_warning
        self._event_rate = event_rate
        self._event_burst = event_burst
        self._max_sockets_per_user = max_sockets_per_user
        self.draining = False
        bus.subscribe(SESSIONS_REVOKED_TOPIC, self.on_sessions_revoked)

    async def _authenticate(self, token: Any) -> AccessClaims:
        if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("Send an access token: io(url, {auth: {token}}).")
        claims = await self._sessions.authenticate(token.strip())
        if claims.expires_at <= self._clock.time():
            raise TokenExpired("The access token has expired.")
        return claims

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if self.draining:
                raise NodeDraining()
            claims = await self._authenticate(token)
            if self._registry.count_for_user(claims.user_id) >= self._max_sockets_per_user:
                raise RateLimited(
                    30, f"At most {self._max_sockets_per_user} connections per user on a node."
                )
        except ApiError as exc:
            self._metrics.refused.labels(exc.code).inc()
            raise socketio.exceptions.ConnectionRefusedError(
                exc.code, {"code": exc.code, "message": exc.message}
            ) from None
        bucket = (TokenBucket(self._event_rate, self._event_burst, now=self._clock.monotonic)
                  if self._event_rate else None)
        state = SocketState(sid=sid, user_id=claims.user_id, session_id=claims.session_id,
                            expires_at=claims.expires_at, bucket=bucket)
        self._registry.add(state)
        self._metrics.connected.inc()
        await self._sio.enter_room(sid, user_room(claims.user_id))
        self._watch_expiry(state)
        await self._presence.connected(claims.user_id)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        state = self._registry.pop(sid)
        if state is None:
            return
        self._metrics.connected.dec()
        if state.expiry_task is not None:
            state.expiry_task.cancel()
        if self.draining:
            return  # still online here until presence stops: the client is moving to another node
        await self._presence.disconnected(state.user_id)

    async def refresh(self, state: SocketState, token: str) -> None:
        """``auth:refresh``: a fresh access token for the same user moves the
        socket's expiry (and session, after a re-login) forward."""
        claims = await self._authenticate(token)
        if claims.user_id != state.user_id:
            raise Forbidden("That token belongs to another user.")
        if claims.session_id != state.session_id:
            self._registry.rebind(state, claims.session_id)
        state.expires_at = claims.expires_at
        self._watch_expiry(state)

    def _watch_expiry(self, state: SocketState) -> None:
        """A timer (not a task: one per socket, idle for most of its life)
        fires at the warning; only then does a task take over."""
        if state.expiry_task is not None:
            state.expiry_task.cancel()
        left = state.expires_at - self._clock.time()
        warn_in = left - min(self._expiry_warning, left / 2)
        state.expiry_task = asyncio.get_running_loop().call_later(
            max(warn_in, 0), self._start_expiry, state, state.expires_at)

    def _start_expiry(self, state: SocketState, expires_at: int) -> None:
        state.expiry_task = asyncio.get_running_loop().create_task(
            self._expire(state, expires_at), name=f"socket-expiry-{state.sid}")

    async def _expire(self, state: SocketState, expires_at: int) -> None:
        left = expires_at - self._clock.time()
        if left > 0:
            with contextlib.suppress(Exception):
                await self._sio.emit("session:expiring", {"expires_in": int(left)}, to=state.sid)
            await asyncio.sleep(left)
        if self._registry.get(state.sid) is state and state.expires_at == expires_at:
            state.expiry_task = None  # do not let on_disconnect cancel us mid-close
            await self.close(state, "token_expired")

    async def close(self, state: SocketState, reason: str) -> None:
        """Tell the client why (``session:ended``), then disconnect it."""
        state.closing = True
        with contextlib.suppress(Exception):
            await self._sio.emit("session:ended", {"reason": reason}, to=state.sid)
        await self._sio.disconnect(state.sid)

    async def on_sessions_revoked(self, payload: dict[str, Any]) -> None:
        session_ids = payload.get("session_ids") or []
        if not isinstance(session_ids, list):
            return
        states = self._registry.by_sessions([str(s) for s in session_ids])
        if states:
            logger.info("disconnecting {} sockets of revoked sessions", len(states))
        await asyncio.gather(*(self.close(s, "token_revoked") for s in states),
                             return_exceptions=True)

    def sockets(self) -> list[SocketState]:
        return self._registry.all()

    async def start_draining(self, reason: str) -> int:
        """Refuse new sockets; tell every connected one ``session:ended
        {reason}`` and refuse its further events (they are retried on the
        next node). Presence is left as it is: each user stays online while
        their client moves. How many sockets were told."""
        self.draining = True
        states = self._registry.all()
        for state in states:
            state.closing = True
            if state.expiry_task is not None:
                state.expiry_task.cancel()
                state.expiry_task = None
        await asyncio.gather(*(self._sio.emit("session:ended", {"reason": reason}, to=s.sid)
                               for s in states), return_exceptions=True)
        return len(states)

    async def close_all(self) -> None:
        for state in self._registry.all():
            if state.expiry_task is not None:
                state.expiry_task.cancel()
        await asyncio.gather(*(self._sio.disconnect(s.sid) for s in self._registry.all()),
                             return_exceptions=True)
