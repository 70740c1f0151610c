"""Engine.IO heartbeats for every socket of a server from one timer, instead
of engine.io's sleeping task per socket (``AsyncSocket._send_ping``).

The protocol is engine.io's: a socket is pinged ``ping_interval`` seconds
after its previous PONG (after it connected, for the first), and one that
has not answered a ping ``ping_timeout`` seconds after it was sent is
closed (``PING_TIMEOUT``, a CLOSE packet first, as engine.io's
``check_ping_timeout`` does). Every socket waits the same interval, so the
due times come in the order they are scheduled: two FIFO queues and one
``call_at`` handle for the earliest entry cover all sockets.

``WheelSocket``, the socket class these sockets take on, also shapes its
polling responses for python-engineio's client: at most 16 packets each,
and a long-poll answered at once when the socket is aborted."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from engineio import async_socket
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio import payload as eio_payload

# entries due within this many seconds of the earliest are handled in one wake-up
PING_BATCH_WINDOW = 0.05


class PingWheel:
    """The heartbeat timer of one engine.io server (``ping_interval``,
    ``ping_timeout`` in seconds); ``loop_time`` is the monotonic clock the
    due times are kept in, ``wall_time`` the one engine.io stamps
    ``AsyncSocket.last_ping`` with (its ``check_ping_timeout`` reads it)."""

    def __init__(self, server: Any, *, loop_time: Any = None, wall_time: Any = time.time) -> None:
        self._server = server
        self._loop_time = loop_time
        self._wall_time = wall_time
        self._pings: deque[tuple[float, Any]] = deque()  # (due, socket)
        self._deadlines: deque[tuple[float, Any, float]] = deque()  # (due, socket, ping stamp)
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    def _now(self) -> float:
        return self._loop_time() if self._loop_time is not None else \
            asyncio.get_running_loop().time()

    def schedule(self, socket: Any) -> None:
        """Ping ``socket`` one ``ping_interval`` from now."""
        due = self._now() + self._server.ping_interval
        self._pings.append((due, socket))
        self._arm(due)

    def _arm(self, due: float) -> None:
        if self._handle is not None:
            if self._armed_at <= due:
                return
            self._handle.cancel()
        self._armed_at = due
        self._handle = asyncio.get_running_loop().call_at(due, self._fire)

    def _fire(self) -> None:
        self._handle = None
        horizon = self._now() + PING_BATCH_WINDOW
        pings, deadlines = self._pings, self._deadlines
        while pings and pings[0][0] <= horizon:
            self._ping(pings.popleft()[1])
        while deadlines and deadlines[0][0] <= horizon:
            _, socket, stamp = deadlines.popleft()
            if socket.last_ping == stamp and not _gone(socket):
                self._server.start_background_task(socket.time_out)
        heads = [q[0][0] for q in (pings, deadlines) if q]
        if heads:
            self._arm(min(heads))

    def _ping(self, socket: Any) -> None:
        if _gone(socket) or socket.last_ping is not None:
            return  # gone, or already pinged (a PONG rescheduled it twice)
        stamp = socket.last_ping = self._wall_time()
        socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))
        due = self._now() + self._server.ping_timeout
        self._deadlines.append((due, socket, stamp))
        self._arm(due)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._pings.clear()
        self._deadlines.clear()


def _gone(socket: Any) -> bool:
    """Whether ``socket`` is closing or closed; a closed one's websocket is
    closed too if nothing did it yet (its ``queue`` is a ``WebSocketLink``)."""
    if socket.closed:
        end = getattr(socket.queue, "end", None)
        if end is not None:
            end()
    return bool(socket.closing or socket.closed)


class WheelSocket(async_socket.AsyncSocket):
    """engine.io's socket whose pings are timed by its server's ``PingWheel``
    (``server.ping_wheel``) rather than a task of its own, and whose polling
    responses fit python-engineio's client (``poll``, ``close``). Everything
    else, including when a ping is due (``schedule_ping`` after connect and
    after each PONG), is engine.io's."""

    last_ping: float | None

    def schedule_ping(self) -> None:
        # only schedule a new ping if the previous ping wait cycle completed
        if self.last_ping:
            self.last_ping = None
            self.server.ping_wheel.schedule(self)

    async def check_ping_timeout(self) -> bool:
        if self.closed:
            raise eio_exceptions.SocketIsClosedError()
        last_ping = self.last_ping
        if last_ping and time.time() - last_ping > self.server.ping_timeout:
            await self.time_out()
            return False
        return True

    async def poll(self) -> list[Any]:
        """engine.io's ``poll``, with at most ``Payload.max_decode_packets``
        (16) packets in one polling response: python-engineio's client
        refuses a longer payload and drops the connection, and a broadcast
        batch (``FanoutManager.emit_many``) queues many at once. The rest
        wait for the next poll, in order."""
        try:
            first = await asyncio.wait_for(self.queue.get(),
                                           self.server.ping_interval + self.server.ping_timeout)
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise eio_exceptions.QueueEmpty() from None
        if first is None:
            return []
        packets = [first]
        while len(packets) < eio_payload.Payload.max_decode_packets:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """engine.io's close; an abort of a polling socket (its client sent
        CLOSE, or the server cut it off) also answers a long-poll in flight
        with a CLOSE packet, as the Node.js server does, instead of leaving
        it waiting up to ping_interval + ping_timeout (the client's
        ``disconnect()`` waits for that poll)."""
        was_open = not (self.closed or self.closing)
        await super().close(wait=wait, abort=abort, reason=reason)
        if was_open and abort and not self.upgraded:
            self.queue.put_nowait(eio_packet.Packet(eio_packet.CLOSE))

    async def time_out(self) -> None:
        """Close: no PONG came within the ping timeout. engine.io's
        ``check_ping_timeout`` means to send a CLOSE packet first (so the
        websocket is closed after it), but its ``send`` runs the same check
        again and drops the packet; the ping state is cleared first here."""
        self.server.logger.info("%s: Client is gone, closing socket", self.sid)
        self.last_ping = None
        await self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
