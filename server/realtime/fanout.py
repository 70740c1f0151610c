"""The broadcast fast path: a server event to a room is encoded once, framed
once (one unmasked RFC 6455 text frame) and that frame is written straight
to every local websocket recipient's transport — no per-recipient task,
queue or timer. Sockets that cannot take it right now (polling, mid-upgrade,
packets still waiting in their Engine.IO queue) get the packet through their
queue instead, so each socket still sees events in emit order.

``DirectLink`` is one aiohttp websocket connection's outgoing side (it
replaces engine.io's per-socket writer, see ``serve_websocket``; used with
permessage-deflate on; without, ``wslink.WebSocketLink`` plays its part); ``FanoutManager``
is the python-socketio manager whose ``emit`` uses it. A link whose unsent
bytes pass ``SendLimits.buffer_limit`` is cut off (``on_overflow``): the
``slow_consumer`` path in ``transport.py``."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from socketio import packet as sio_packet

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
FIN = 0x80


def websocket_frame(payload: str | bytes, opcode: int | None = None) -> bytes:
    """One final, unmasked (server-to-client) frame carrying ``payload``:
    text for ``str``, binary for ``bytes`` (RFC 6455 section 5.2)."""
    if isinstance(payload, str):
        data, code = payload.encode(), OPCODE_TEXT
    else:
        data, code = payload, OPCODE_BINARY
    code = code if opcode is None else opcode
    n = len(data)
    if n < 126:
        header = struct.pack("!BB", FIN | code, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", FIN | code, 126, n)
    else:
        header = struct.pack("!BBQ", FIN | code, 127, n)
    return header + data


def close_frame(code: int) -> bytes:
    return websocket_frame(struct.pack("!H", code), OPCODE_CLOSE)


@dataclass(frozen=True, slots=True)
class SendLimits:
    """``compress``: offer permessage-deflate (off: every frame is built
    once and shared); with it on, messages of at least ``compress_threshold``
    characters are deflated per connection, smaller ones go out plain.
    ``buffer_limit``: unsent bytes a connection may hold before it is cut
    off as a slow consumer; ``queue_limit``: the same for packets waiting
    in a socket's Engine.IO queue (a polling client that stopped polling, a
    websocket whose writer is stuck)."""

    compress: bool = False
    compress_threshold: int = 1024
    buffer_limit: int = 1024 * 1024
    queue_limit: int = 1000  # packets waiting in a socket's queue (polling, backlog)


class DirectLink:
    """The outgoing side of one websocket connection: frames go straight to
    its transport (asyncio buffers what the kernel does not take). Every
    write keeps call order, so a broadcast written here while the socket's
    Engine.IO queue is empty lands after everything queued before it."""

    __slots__ = ("_on_overflow", "_sending", "_transport", "_ws", "compressed", "cut", "limits",
                 "socket")

    def __init__(self, socket: Any, ws: Any, transport: asyncio.Transport, limits: SendLimits,
                 on_overflow: Callable[[DirectLink], None]) -> None:
        self.socket = socket  # the engine.io AsyncSocket
        self._ws = ws  # aiohttp WebSocketResponse (compressed frames only)
        self._transport = transport
        self.limits = limits
        self.compressed = bool(ws.compress)
        self._on_overflow = on_overflow
        self._sending = False  # a compressed frame is on its way (aiohttp may yield)
        self.cut = False

    def takes_shared(self, size: int) -> bool:
        """Whether a shared (uncompressed) frame of ``size`` characters may
        be written now without overtaking queued packets."""
        return (self.socket.queue.empty() and not self._sending and not self.socket.closing
                and (not self.compressed or size < self.limits.compress_threshold))

    def write(self, frame: bytes) -> None:
        """Write a ready frame; dropped once the link is cut off."""
        if self.cut or self._transport.is_closing():
            return
        self._transport.write(frame)
        self._check_buffer()

    def _check_buffer(self) -> None:
        if not self.cut and self._transport.get_write_buffer_size() > self.limits.buffer_limit:
            self.cut = True
            self._on_overflow(self)

    def write_final(self, frame: bytes) -> None:
        """Write past the cut (the goodbye of a slow consumer)."""
        if not self._transport.is_closing():
            self._transport.write(frame)

    def close_transport(self, grace: float) -> None:
        """Flush what is buffered, close; drop it all after ``grace`` seconds
        if the peer does not read."""
        transport = self._transport
        transport.close()
        asyncio.get_running_loop().call_later(grace, transport.abort)

    async def send(self, encoded: str | bytes) -> None:
        """An Engine.IO packet from the socket's queue."""
        if self.compressed and len(encoded) >= self.limits.compress_threshold:
            if self.cut or self._transport.is_closing():
                return
            self._sending = True
            try:
                if isinstance(encoded, str):
                    await self._ws.send_str(encoded)
                else:
                    await self._ws.send_bytes(encoded)
            finally:
                self._sending = False
            self._check_buffer()
            return
        self.write(websocket_frame(encoded))


async def _write_queue(socket: Any, link: DirectLink) -> None:
    """Engine.IO's per-socket writer, without a timer per packet. A packet
    leaves the queue and is written in the same step (``queue.get`` keeps
    it queued until this task runs), so an empty queue means everything
    queued so far has been written: the fast path relies on that."""
    queue = socket.queue
    while True:
        batch = [await queue.get()]
        while not queue.empty():
            batch.append(queue.get_nowait())
        for _ in batch:
            queue.task_done()
        for pkt in batch:
            if pkt is None:
                return
            try:
                await link.send(pkt.encode())
            except Exception:  # the transport is gone; the reader notices
                return


async def serve_websocket(socket: Any, ws: Any, link: Callable[[], DirectLink],
                          register: Callable[[DirectLink | None], None]) -> None:
    """``engineio.AsyncSocket._websocket_handler`` with its writer replaced
    by a ``DirectLink`` (registered for the fast path while the socket is a
    websocket) and reads timed by one deadline instead of a task per frame.
    ``ws`` is the engine.io driver's websocket (``wait``/``send``/``close``)."""
    server = socket.server

    async def websocket_wait() -> Any:
        data = await ws.wait()
        if data and len(data) > server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return data

    if socket.connected:  # an upgrade from polling
        socket.upgrading = True  # packets are queued until it is done
        try:
            pkt = await websocket_wait()
        except OSError:
            return
        decoded = eio_packet.Packet(encoded_packet=pkt)
        if decoded.packet_type != eio_packet.PING or decoded.data != "probe":
            socket.upgrading = False
            return
        await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
        await socket.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the poll
        try:
            pkt = await websocket_wait()
        except OSError:
            socket.upgrading = False
            return
        if eio_packet.Packet(encoded_packet=pkt).packet_type != eio_packet.UPGRADE:
            socket.upgrading = False
            return
        socket.upgraded = True
        socket.upgrading = False
    else:
        socket.connected = True
        socket.upgraded = True

    direct = link()
    register(direct)
    writer = asyncio.ensure_future(_write_queue(socket, direct))
    try:
        while True:
            try:
                async with asyncio.timeout(server.ping_interval + server.ping_timeout):
                    p = await websocket_wait()
            except Exception:  # closed, refused, too large, timed out
                break
            if p is None:
                break
            try:
                await socket.receive(eio_packet.Packet(encoded_packet=p))
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                break
            except Exception:
                server.logger.exception("Unknown receive error")
    finally:
        register(None)
        socket.queue.put_nowait(None)  # the writer stops
        # the rest even if the request is cancelled (its client went away)
        await asyncio.shield(_finish(socket, ws, writer))


async def _finish(socket: Any, ws: Any, writer: asyncio.Future[None]) -> None:
    await writer
    with contextlib.suppress(Exception):
        await ws.close()
    await socket.close(wait=False, abort=True, reason=socket.server.reason.TRANSPORT_CLOSE)


class FanoutManager(socketio.AsyncManager):
    """``AsyncManager.emit`` without a task per recipient: the packet is
    encoded once; each local recipient gets the shared websocket frame
    written to its ``DirectLink`` or, when it cannot take it now, the
    Engine.IO packet put on its queue (both synchronously, so per-socket
    order is the emit order). Events with a callback (a distinct ack id per
    recipient) and binary ones take the library's path."""

    def delivered(self, event: str, count: int) -> None:
        """Hook: ``count`` local sockets were handed ``event`` for a room."""

    async def emit(self, event, data, namespace, room=None, skip_sid=None,
                   callback=None, to=None, **kwargs):
        room = to or room
        links = getattr(self.server.eio, "links", None)
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        if (callback is not None or links is None or namespace not in self.rooms
                or sio_packet.Packet.data_is_binary(args)):
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, **kwargs)
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace,  # checked above
                                           data=[event, *args], binary=False).encode()
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        size = len(encoded) + 1
        frame: bytes | None = None
        sockets = self.server.eio.sockets
        limits = self.server.eio.send_limits
        count = 0
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            socket = sockets.get(eio_sid)
            if socket is None or socket.closed:
                continue
            count += 1
            link = links.get(eio_sid)
            if link is not None and link.takes_shared(size):
                if frame is None:
                    frame = websocket_frame(pkt.encode())
                link.write(frame)
            elif socket.queue.qsize() < limits.queue_limit:
                socket.queue.put_nowait(pkt)
            else:
                self.server.eio.slow_consumer_queued(socket)
        if room is not None and count:
            self.delivered(event, count)

    async def emit_many(self, event: str, datas: list[Any], namespace: str, room: Any) -> None:
        """``emit(event, data, namespace, room=room)`` for each of ``datas``,
        in order, as one step: each packet encoded once, and a websocket
        recipient that can take them now gets all their frames in one write
        (one syscall per recipient for a whole group-commit batch). Binary
        data takes ``emit`` one by one."""
        links = getattr(self.server.eio, "links", None)
        if (links is None or namespace not in self.rooms
                or any(sio_packet.Packet.data_is_binary([d]) for d in datas)):
            for data in datas:
                await self.emit(event, data, namespace, room=room)
            return
        pkts = [eio_packet.Packet(eio_packet.MESSAGE, self.server.packet_class(  # checked above
            sio_packet.EVENT, namespace=namespace, data=[event, data], binary=False).encode())
            for data in datas]
        size = max(len(p.data) for p in pkts) + 1
        frames: bytes | None = None
        sockets = self.server.eio.sockets
        limit = self.server.eio.send_limits.queue_limit
        count = 0
        for _sid, eio_sid in self.get_participants(namespace, room):
            socket = sockets.get(eio_sid)
            if socket is None or socket.closed:
                continue
            count += 1
            link = links.get(eio_sid)
            if link is not None and link.takes_shared(size):
                if frames is None:
                    frames = b"".join(websocket_frame(p.encode()) for p in pkts)
                link.write(frames)
                continue
            for pkt in pkts:
                if socket.queue.qsize() >= limit:
                    self.server.eio.slow_consumer_queued(socket)
                    break
                socket.queue.put_nowait(pkt)
        if room is not None and count:
            self.delivered(event, count * len(pkts))
