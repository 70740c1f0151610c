"""The Socket.IO event edge: a table of event handlers (``SocketEvents``,
like ``http.Routes``), per-socket state, and the one dispatcher that rate
limits, parses, calls the handler and turns every outcome into an ack.

A handler is ``async def handler(ctx: SocketContext, payload: Model) -> dict``;
the dict is merged into ``{"ok": true, ...}``. Raise ``ApiError`` for
refusals; anything else becomes ``internal_error`` (logged once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger
from pydantic import BaseModel

from ..clock import Clock
from ..dependency_errors import DEPENDENCY_ERRORS
from ..errors import (
    ApiError,
    InternalError,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    UnknownEvent,
    ValidationFailed,
)
from ..http import parse_model
from ..keys import ACCOUNTS
from ..tasks import cancel_and_wait
from .metrics import RealtimeMetrics

if TYPE_CHECKING:
    from aiohttp import web
    from socketio import AsyncServer

    from .protocol import ProtocolViolation

EventHandler = Callable[["SocketContext", Any], Awaitable[dict[str, Any] | None]]
FLOOD_WINDOW_S = 10.0
# A socket's refused events are logged once per this window (the metrics
# count every one), so a client cannot turn bad events into log volume.
REFUSAL_LOG_WINDOW_S = 10.0
UNKNOWN_EVENT_LABEL = "unknown"


@dataclass(slots=True)
class EventSpec:
    event: str
    handler: EventHandler
    model: type[BaseModel] | None
    description: str | None = None


class SocketEvents:
    """A handler module's client-to-server events; register the table in
    ``SOCKET_EVENT_TABLES`` (``server/realtime/setup.py``) or at run time
    with ``app[SOCKETS].add(table)``."""

    def __init__(self) -> None:
        self.specs: list[EventSpec] = []

    def on(self, event: str, model: type[BaseModel] | None = None) -> Callable[[EventHandler], EventHandler]:
        def register(handler: EventHandler) -> EventHandler:
            self.specs.append(EventSpec(event, handler, model, (handler.__doc__ or "").strip() or None))
            return handler
        return register


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, *, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._now = now
        self._at = now()

    def take(self) -> bool:
        now = self._now()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        return max(0.0, (1.0 - self._tokens) / self.rate)


@dataclass(slots=True)
class SocketState:
    """What this node knows about one connected socket."""

    sid: str
    user_id: str
    session_id: str
    expires_at: int
    bucket: TokenBucket | None
    rooms: set[str] = field(default_factory=set)
    presence: set[str] = field(default_factory=set)  # presence:subscribe wishes
    presence_visible: set[str] = field(default_factory=set)  # of those, the ones allowed
    refused: int = 0
    refused_since: float = 0.0
    refusal_logged_at: float = float("-inf")
    expiry_task: asyncio.Task[None] | asyncio.TimerHandle | None = None  # see connections.py
    closing: bool = False


class SocketRegistry:
    """Local sockets, by sid, by session and by user."""

    def __init__(self) -> None:
        self._by_sid: dict[str, SocketState] = {}
        self._by_session: dict[str, set[str]] = {}
        self._per_user: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_sid)

    def add(self, state: SocketState) -> None:
        self._by_sid[state.sid] = state
        self._by_session.setdefault(state.session_id, set()).add(state.sid)
        self._per_user[state.user_id] = self._per_user.get(state.user_id, 0) + 1

    def count_for_user(self, user_id: str) -> int:
        return self._per_user.get(user_id, 0)

    def get(self, sid: str) -> SocketState | None:
        return self._by_sid.get(sid)

    def pop(self, sid: str) -> SocketState | None:
        state = self._by_sid.pop(sid, None)
        if state is not None:
            self._unindex(state)
            left = self._per_user[state.user_id] - 1
            if left:
                self._per_user[state.user_id] = left
            else:
                del self._per_user[state.user_id]
        return state

    def rebind(self, state: SocketState, session_id: str) -> None:
        self._unindex(state)
        state.session_id = session_id
        self._by_session.setdefault(session_id, set()).add(state.sid)

    def _unindex(self, state: SocketState) -> None:
        sids = self._by_session.get(state.session_id)
        if sids is not None:
            sids.discard(state.sid)
            if not sids:
                del self._by_session[state.session_id]

    def by_sessions(self, session_ids: list[str]) -> list[SocketState]:
        out = []
        for sid_ in session_ids:
            out.extend(self._by_sid[s] for s in self._by_session.get(sid_, ()) if s in self._by_sid)
        return out

    def all(self) -> list[SocketState]:
        return list(self._by_sid.values())


@dataclass(slots=True)
class SocketContext:
    """What a handler gets: the app (for services), the server and the socket."""

    app: "web.Application"
    sio: "AsyncServer"
    state: SocketState

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
        await self.app[ACCOUNTS].require_verified(self.user_id, action)


def payload_size(payload: Any) -> int:
    if isinstance(payload, (bytes, bytearray)):
        return len(payload)
    try:
        return len(orjson.dumps(payload))
    except (orjson.JSONEncodeError, TypeError):
        raise ValidationFailed.field("payload", "The payload is not plain JSON.") from None


def error_ack(exc: ApiError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details is not None:
        error["details"] = exc.details
    return {"ok": False, "error": error}


class EventDispatcher:
    """Every client-to-server event goes through ``dispatch``."""

    def __init__(
        self, *, app: "web.Application", sio: "AsyncServer", registry: SocketRegistry,
        metrics: RealtimeMetrics, max_payload: int, flood_limit: int,
        on_flood: Callable[[SocketState], Awaitable[None]], clock: Clock,
    ) -> None:
        self._app = app
        self._clock = clock
        self._sio = sio
        self._registry = registry
        self._metrics = metrics
        self._max_payload = max_payload
        self._flood_limit = flood_limit
        self._on_flood = on_flood
        self._specs: dict[str, EventSpec] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Events being handled now (their acks not sent yet)."""
        return self._in_flight

    async def wait_idle(self, timeout: float) -> bool:
        """Until no event is being handled (True), or ``timeout`` passed (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Cancel and await the flood-disconnect tasks still running."""
        await cancel_and_wait(list(self._tasks))

    def add(self, table: SocketEvents) -> None:
        for spec in table.specs:
            if spec.event in self._specs:
                raise ValueError(f"socket event {spec.event!r} registered twice")
            self._specs[spec.event] = spec

    @property
    def events(self) -> list[EventSpec]:
        return list(self._specs.values())

    async def dispatch(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        started = time.perf_counter()
        spec = self._specs.get(event) if isinstance(event, str) else None
        label = spec.event if spec is not None else UNKNOWN_EVENT_LABEL
        self._in_flight += 1
        self._idle.clear()
        try:
            ack = await self._handle(spec, event, sid, args)
            outcome = "ok"
        except ApiError as exc:
            ack, outcome = error_ack(exc), exc.code
            if not isinstance(exc, RateLimited) and self._log_refusal_now(sid):
                logger.info("socket {} event {!r} refused: {} {} (further refusals within {:.0f} s "
                            "only counted)", sid, str(event)[:64], exc.code,
                            str(exc.details if exc.details is not None else exc.message)[:200],
                            REFUSAL_LOG_WINDOW_S)
        except DEPENDENCY_ERRORS as exc:
            logger.error("socket {} event {!r}: dependency unavailable: {!r}", sid,
                         str(event)[:64], exc)
            ack, outcome = error_ack(Unavailable()), Unavailable.code
        except Exception:
            logger.exception("socket {} event {!r} failed", sid, str(event)[:64])
            ack, outcome = error_ack(InternalError()), InternalError.code
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        self._metrics.events.labels(label, outcome).inc()
        self._metrics.ack_latency.labels(label).observe(time.perf_counter() - started)
        return ack

    def _log_refusal_now(self, sid: str) -> bool:
        state = self._registry.get(sid)
        if state is None:
            return False
        now = self._clock.monotonic()
        if now - state.refusal_logged_at < REFUSAL_LOG_WINDOW_S:
            return False
        state.refusal_logged_at = now
        return True

    async def _handle(self, spec: EventSpec | None, event: str, sid: str,
                      args: tuple[Any, ...]) -> dict[str, Any]:
        state = self._registry.get(sid)
        if state is None or state.closing:
            raise RateLimited(1, "This connection is closing.")
        if state.bucket is not None and not state.bucket.take():
            await self._refuse(state)
            raise RateLimited(int(state.bucket.retry_after()) + 1)
        if spec is None:
            raise UnknownEvent()
        if len(args) != 1:
            raise ValidationFailed.field("payload", "Send exactly one payload object.")
        payload = args[0]
        if payload_size(payload) > self._max_payload:
            raise PayloadTooLarge(f"An event payload is at most {self._max_payload} bytes.")
        parsed = parse_model(spec.model, payload) if spec.model is not None else payload
        result = await spec.handler(SocketContext(self._app, self._sio, state), parsed)
        return {"ok": True, **(result or {})}

    def protocol_violation(self, eio_sid: str, state: SocketState | None,
                           violation: "ProtocolViolation") -> None:
        """A connection is being closed for a protocol violation: counted as
        a refused event (the flood limiter's last straw), in the metrics,
        and logged once, short, without the payload."""
        self._metrics.protocol_errors.labels(violation.kind).inc()
        if state is not None:
            state.refused += 1
            state.closing = True
        logger.warning("connection {} closed: protocol violation {} ({})", eio_sid, violation.kind,
                       f"user {state.user_id}" if state is not None else "not signed in")

    def slow_consumer(self, eio_sid: str, state: SocketState | None) -> None:
        """A connection is being cut off: it left more unsent bytes than
        ``socket_send_buffer_limit`` allows."""
        self._metrics.slow_consumers.inc()
        if state is not None:
            state.closing = True
        logger.warning("connection {} cut off: slow consumer ({})", eio_sid,
                       f"user {state.user_id}" if state is not None else "not signed in")

    async def _refuse(self, state: SocketState) -> None:
        now = self._clock.monotonic()
        if now - state.refused_since > FLOOD_WINDOW_S:
            state.refused_since, state.refused = now, 0
            logger.info("socket {} of user {} is over its event rate", state.sid, state.user_id)
        state.refused += 1
        if state.refused > self._flood_limit and not state.closing:
            state.closing = True
            logger.warning("socket {} of user {} keeps flooding; disconnecting",
                           state.sid, state.user_id)
            task = asyncio.get_running_loop().create_task(self._on_flood(state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
