"""Draining a node for a rolling deploy (SIGTERM).

aiohttp closes the listening socket first, so new connections go to other
nodes (nginx retries the next upstream; Kubernetes has already taken the pod
out of its endpoints during ``preStop``). Then, from ``on_shutdown``:

1. ``/readyz`` answers 503 (``draining``) and the heartbeat says so;
   new Socket.IO connections that still arrive are refused ``node_draining``;
2. the calls whose media this node relays end with reason ``node_draining``
   (peer-to-peer calls go on: their signalling follows the clients);
3. every socket gets ``session:ended {reason: "node_draining"}``; its further
   events are refused (``rate_limited``, retried on the next node — the SDK
   does so with the same ``client_id``);
4. events already being handled finish and are acknowledged (at most
   ``drain_timeout`` seconds), then the sockets are disconnected; clients
   reconnect, with jittered backoff, to any node and resume with ``room:sync``;
5. with other nodes (Redis configured), the node waits ``HANDOVER_S``
   (within the timeout) so clients reconnect elsewhere before its presence
   stops: users who moved never appear offline.

Then aiohttp gives remaining HTTP requests ``shutdown_timeout`` seconds and
the node exits 0. Worst case from SIGTERM to exit: ``drain_timeout +
shutdown_timeout`` plus the cleanup of the services."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from .calls.service import CallService
    from .node_watch import NodeWatch
    from .realtime.connections import ConnectionManager
    from .sockets.dispatcher import EventDispatcher

REASON = "node_draining"
HANDOVER_S = 3.0  # clients reconnect within ~1 s (SDK jitter), presence waits this long
ACK_FLUSH_S = 0.05  # lets the last acks reach their sockets' queues before the disconnects


class NodeDrain:
    def __init__(self, *, connections: ConnectionManager, dispatcher: EventDispatcher,
                 calls: CallService, watch: NodeWatch, timeout: float,
                 handover: float = HANDOVER_S) -> None:
        self._connections = connections
        self._dispatcher = dispatcher
        self._calls = calls
        self._watch = watch
        self._timeout = timeout
        self._handover = handover
        self._done: asyncio.Task[None] | None = None

    @property
    def draining(self) -> bool:
        return self._done is not None

    async def drain(self) -> None:
        """Idempotent: a second call waits for the first."""
        if self._done is None:
            self._done = asyncio.create_task(self._drain(), name="node-drain")
        await asyncio.shield(self._done)

    async def _drain(self) -> None:
        started = time.monotonic()

        def left() -> float:
            return max(0.0, self._timeout - (time.monotonic() - started))

        self._watch.draining = True
        logger.info("draining: no new sockets; moving {} sockets to other nodes "
                    "(at most {:.0f} s)", len(self._connections.sockets()), self._timeout)
        try:
            ended = await asyncio.wait_for(self._calls.end_relayed(), left())
        except Exception as exc:
            ended = 0
            logger.warning("draining: could not end every relayed call ({!r})", exc)
        told = await self._connections.start_draining(REASON)
        if not await self._dispatcher.wait_idle(left()):
            logger.warning("draining: {} events still being handled after {:.0f} s",
                           self._dispatcher.in_flight, self._timeout)
        await asyncio.sleep(ACK_FLUSH_S)
        await self._connections.close_all()
        if told and self._handover:
            await asyncio.sleep(min(self._handover, left()))
        logger.info("draining: done in {:.1f} s ({} sockets moved, {} relayed calls ended)",
                    time.monotonic() - started, told, ended)
