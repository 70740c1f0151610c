"""Relay placement across nodes.

A relayed call's media must meet on one server: its relay legs all live in
the :class:`~server.media.relay.MediaRelay` of the node that received the
call's first ``call:relay`` (its id is stored with the call). An offer that
arrives on another node is forwarded to the owner over the bus and answered
there (request/response, matched by request id, with a deadline); the
answer comes back the same way. When a call ends, every node is told to
close the call's relay legs (only the owner has any).

Each node with a relay keeps a short-lived "alive" mark in the call store;
when the node that holds a call's relay goes away (killed, drained), its
mark expires and the next ``call:relay`` offer of that call — the SDK
re-offers when its relay connection fails — claims the relay on the node
that received it: the relayed call moves there.

On one node the in-process bus delivers the same messages directly."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from ..bus import Bus
from ..errors import ApiError, BadRequest, Conflict, Unavailable
from ..tasks import cancel_and_wait

if TYPE_CHECKING:
    from ..media.relay import MediaRelay
    from .metrics import CallMetrics

RELAY_NODE_TTL_S = 6.0  # a relay node not heard of this long is gone
RELAY_NODE_BEAT_S = RELAY_NODE_TTL_S / 3

OFFER_TOPIC = "calls_relay_offer"
ANSWER_TOPIC = "calls_relay_answer"
ENDED_TOPIC = "calls_ended"

_ERRORS: dict[str, type[ApiError]] = {
    BadRequest.code: BadRequest, Conflict.code: Conflict, Unavailable.code: Unavailable,
}


def _error_from(payload: dict[str, Any]) -> ApiError:
    error = payload.get("error") or {}
    cls = _ERRORS.get(str(error.get("code")), Unavailable)
    return cls(str(error.get("message") or "The media relay did not answer."))


class RelayNodes(Protocol):
    """Where relay nodes say they are alive (the call store)."""

    async def relay_node_alive(self, node_id: str, *, ttl: float) -> None: ...
    async def relay_node_gone(self, node_id: str) -> None: ...


class RelayLink:
    """This node's view of the relays: answers offers for calls it owns and
    forwards the others to their owner."""

    def __init__(self, *, relay: MediaRelay, bus: Bus, node_id: str, timeout: float,
                 metrics: CallMetrics, registry: RelayNodes) -> None:
        self.relay = relay
        self._registry = registry
        self._beat_task: asyncio.Task[None] | None = None
        self.node_id = node_id
        self._bus = bus
        self._timeout = timeout
        self._metrics = metrics
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        bus.subscribe(OFFER_TOPIC, self._on_offer)
        bus.subscribe(ANSWER_TOPIC, self._on_answer)
        bus.subscribe(ENDED_TOPIC, self._on_ended)

    async def answer(self, *, owner: str, call_id: str, participant_id: str, sdp: str) -> str:
        if owner == self.node_id:
            return await self.relay.answer(call_id, participant_id, sdp)
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self._bus.publish(OFFER_TOPIC, {
                "request_id": request_id, "to": owner, "reply_to": self.node_id,
                "call_id": call_id, "participant_id": participant_id, "sdp": sdp,
            })
            reply = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            self._metrics.relay_forwards.labels("timeout").inc()
            raise Unavailable("The node holding this call's media relay did not answer.") from None
        except ApiError:
            raise
        except Exception as exc:
            self._metrics.relay_forwards.labels("error").inc()
            raise Unavailable("Could not reach the node holding this call's media relay.") from exc
        finally:
            self._waiting.pop(request_id, None)
        if "sdp" in reply:
            self._metrics.relay_forwards.labels("answered").inc()
            return str(reply["sdp"])
        self._metrics.relay_forwards.labels("refused").inc()
        raise _error_from(reply)

    async def call_ended(self, call_id: str) -> None:
        """Close the call's relay legs here and tell every other node to."""
        await self.relay.close_call(call_id)
        try:
            await self._bus.publish(ENDED_TOPIC, {"call_id": call_id, "from": self.node_id})
        except Exception:
            logger.warning("calls: could not announce the end of call {} to other nodes", call_id)

    async def _on_ended(self, payload: dict[str, Any]) -> None:
        if payload.get("from") != self.node_id and isinstance(payload.get("call_id"), str):
            await self.relay.close_call(payload["call_id"])

    async def _on_offer(self, payload: dict[str, Any]) -> None:
        if payload.get("to") != self.node_id:
            return
        # The bus awaits handlers in turn; answering takes a while (ICE
        # gathering), so do it in a task of our own.
        task = asyncio.get_running_loop().create_task(self._answer_forwarded(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_forwarded(self, payload: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"request_id": payload.get("request_id"), "to": payload.get("reply_to")}
        try:
            reply["sdp"] = await self.relay.answer(
                str(payload["call_id"]), str(payload["participant_id"]), str(payload["sdp"]))
        except ApiError as exc:
            reply["error"] = {"code": exc.code, "message": exc.message}
        except Exception:
            logger.exception("calls: forwarded relay offer for call {} failed", payload.get("call_id"))
            reply["error"] = {"code": Unavailable.code, "message": "The media relay failed."}
        try:
            await self._bus.publish(ANSWER_TOPIC, reply)
        except Exception:
            logger.warning("calls: could not return a relay answer for call {}", payload.get("call_id"))

    async def _on_answer(self, payload: dict[str, Any]) -> None:
        if payload.get("to") != self.node_id:
            return
        future = self._waiting.get(str(payload.get("request_id")))
        if future is not None and not future.done():
            future.set_result(payload)

    async def start(self) -> None:
        """Say this relay is alive now, then keep saying it."""
        try:
            await self._registry.relay_node_alive(self.node_id, ttl=RELAY_NODE_TTL_S)
        except Exception as exc:
            logger.warning("calls: could not mark relay node {} alive ({!r})", self.node_id, exc)
        self._beat_task = asyncio.create_task(self._beat(), name="relay-node-alive")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(RELAY_NODE_BEAT_S)
            try:
                await self._registry.relay_node_alive(self.node_id, ttl=RELAY_NODE_TTL_S)
            except Exception as exc:
                logger.warning("calls: could not mark relay node {} alive ({!r})", self.node_id, exc)

    async def close(self) -> None:
        await cancel_and_wait([self._beat_task, *self._tasks])
        try:
            await self._registry.relay_node_gone(self.node_id)
        except Exception:
            logger.warning("calls: could not withdraw relay node {}", self.node_id)
        await self.relay.close_all()
