"""The one dispatcher every client-to-server event goes through: it rate
limits, refuses unknown and oversized events, parses the payload, calls the
handler from the ``SocketEvents`` tables and turns every outcome into an ack
(``to_api_error``, as the REST middleware does)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from aiohttp import web
from loguru import logger
from socketio import AsyncServer

from ..clock import Clock
from ..edge_errors import to_api_error
from ..errors import (
    ApiError,
    PayloadTooLarge,
    RateLimited,
    UnknownEvent,
    ValidationFailed,
)
from ..realtime.metrics import RealtimeMetrics
from ..realtime.protocol import ProtocolViolation
from ..realtime.socket_registry import SocketRegistry, SocketState
from ..schemas.parsing import parse_model
from ..tasks import cancel_and_wait
from .events import EventSpec, RequireVerified, SocketContext, SocketEvents

FLOOD_WINDOW_S = 10.0
# A socket's refused events are logged once per this window (the metrics
# count every one), so a client cannot turn bad events into log volume.
REFUSAL_LOG_WINDOW_S = 10.0
UNKNOWN_EVENT_LABEL = "unknown"


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
        self, *, app: web.Application, sio: AsyncServer, registry: SocketRegistry,
        metrics: RealtimeMetrics, max_payload: int, flood_limit: int,
        on_flood: Callable[[SocketState], Coroutine[Any, Any, None]], require_verified: RequireVerified,
        clock: Clock,
    ) -> None:
        self._app = app
        self._clock = clock
        self._sio = sio
        self._require_verified = require_verified
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
        except TimeoutError:
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
        except Exception as exc:
            error = to_api_error(exc, where=f"socket {sid} event {str(event)[:64]!r}",
                                 tags={"event": label, "sid": str(sid)})
            ack, outcome = error_ack(error), error.code
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
        result = await spec.handler(SocketContext(self._app, self._sio, state, self._require_verified), parsed)
        return {"ok": True, **(result or {})}

    def protocol_violation(self, eio_sid: str, state: SocketState | None,
                           violation: ProtocolViolation) -> None:
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
