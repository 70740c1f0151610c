"""An Engine.IO websocket that leaves aiohttp once its handshake is done.

aiohttp keeps a request handler task, the parsed upgrade request, its
reader, queue and writer, and a second task for the handler's coroutine
chain alive for as long as a websocket is open: about half of an idle
socket's memory. Without permessage-deflate (the default), the upgrade is
answered here (``detach``): the 101 is written to the transport, the
transport is handed to a ``WebSocketLink`` (an ``asyncio.Protocol``), and
the request handler returns at once, taking all of that with it.

``WebSocketLink`` reads RFC 6455 frames itself and feeds each Engine.IO
packet to the engine.io ``AsyncSocket`` (``receive``: engine.io stays the
protocol), one task only while frames are waiting. Once the socket is a
websocket, the link *is* the socket's queue (``socket.queue``): a packet put
on it is written at once, so there is no writer task and no
``asyncio.Queue`` either; it keeps ``fanout.DirectLink``'s interface for the
broadcast fast path. engine.io's CLOSE packet closes the websocket after it,
as the Node.js server does."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import deque
from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp._websocket.helpers import websocket_mask
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from .fanout import OPCODE_BINARY, OPCODE_CLOSE, OPCODE_TEXT, SendLimits, close_frame, websocket_frame

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OPCODE_CONTINUATION = 0x0
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
MAX_CONTROL_PAYLOAD = 125  # RFC 6455 section 5.5
# frames parsed but not yet handed to engine.io before the link stops reading
MAX_PENDING_FRAMES = 64
CLOSE_GRACE = 10.0  # seconds a closing connection has to take its last frames

PROBING, UPGRADING, OPEN, ENDED = range(4)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def unmask(data: bytes, mask: bytes) -> bytes:
    out = bytearray(data)
    websocket_mask(mask, out)  # aiohttp's (compiled) masking, in place
    return bytes(out)


class _Detached(web.StreamResponse):
    """What the request handler returns for a connection that left aiohttp:
    its 101 is already written, nothing more is sent."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class WebSocketLink(asyncio.Protocol):
    """One websocket connection of an engine.io socket, after the upgrade.
    Reads client frames (masked, fragmented or not; pings answered, close
    echoed) and writes server frames straight to the transport. ``server``
    is the ``transport.GuardedEngineIO`` (its ``links``, ``refused``,
    ``check_frame``, ``refuse`` and ``slow_consumer``)."""

    __slots__ = ("_buffer", "_fragments", "_pending", "_pump", "_server", "_state",
                 "_transport", "cut", "limits", "socket")
    compressed = False

    def __init__(self, socket: Any, server: Any, transport: asyncio.Transport) -> None:
        self.socket = socket
        self._server = server
        self._transport = transport
        self.limits: SendLimits = server.send_limits
        self.cut = False
        self._buffer = b""
        self._fragments: list[bytes] | None = None  # a message in parts: opcode byte, parts
        self._pending: deque[str | bytes] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._state = PROBING if socket.connected else OPEN

    # ------------------------------------------------------------ the hand-over

    @classmethod
    def detach(cls, socket: Any, server: Any,
               request: web.Request) -> web.StreamResponse:
        """Answer the upgrade and take the connection from aiohttp; the
        returned response is what the request handler returns."""
        if not web.WebSocketResponse().can_prepare(request).ok:
            return web.Response(status=400, text="bad websocket upgrade")
        handler = request.protocol
        transport = request.transport
        if transport is None or transport.is_closing():
            return _Detached()
        link = cls(socket, server, transport)
        transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                        + accept_key(request.headers["Sec-WebSocket-Key"]).encode() + b"\r\n\r\n")
        tail = handler._message_tail  # bytes that followed the request (aiohttp keeps them)
        handler._message_tail = b""
        transport.set_protocol(link)
        handler.transport = None  # aiohttp must not close or write to it any more
        handler.connection_lost(None)  # its handler task ends, its server forgets it
        if not transport.is_reading():
            transport.resume_reading()
        if link._state == OPEN:
            link._start()
        else:
            socket.upgrading = True  # packets are queued until it is done
        if tail:
            link.data_received(tail)
        return _Detached()

    def _start(self) -> None:
        """The socket is a websocket now: this link becomes its queue
        (whatever was queued is written first) and takes broadcasts."""
        socket = self.socket
        socket.connected = True
        socket.upgraded = True
        socket.upgrading = False
        self._state = OPEN
        queue = socket.queue
        socket.queue = self
        self._server.links[socket.sid] = self
        while not queue.empty():
            self.put_nowait(queue.get_nowait())
            queue.task_done()

    # ------------------------------------------------------------ the queue engine.io sees

    def put_nowait(self, pkt: Any) -> None:
        if pkt is None or self._state == ENDED:
            return
        self.write(websocket_frame(pkt.encode()))
        if pkt.packet_type == eio_packet.CLOSE:
            self.end()

    async def put(self, pkt: Any) -> None:
        self.put_nowait(pkt)

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    def task_done(self) -> None:
        pass

    async def join(self) -> None:
        pass

    def get_nowait(self) -> Any:
        raise asyncio.QueueEmpty()

    # ------------------------------------------------------------ fanout.DirectLink's interface

    def takes_shared(self, size: int) -> bool:
        return not (self.cut or self.socket.closing or self._state != OPEN)

    def write(self, frame: bytes) -> None:
        if self.cut or self._transport.is_closing():
            return
        self._transport.write(frame)
        if self._transport.get_write_buffer_size() > self.limits.buffer_limit:
            self.cut = True
            self._server.slow_consumer(self)

    def write_final(self, frame: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(frame)

    def close_transport(self, grace: float) -> None:
        self._close(grace)

    # ------------------------------------------------------------ closing

    def _close(self, grace: float) -> None:
        transport = self._transport
        if not transport.is_closing():
            transport.close()
            asyncio.get_running_loop().call_later(grace, transport.abort)

    def end(self, code: int | None = None) -> None:
        """Close the websocket (a close frame: ``code``, or policy violation
        for a refused socket) and the engine.io socket behind it, once."""
        if self._state == ENDED:
            return
        upgraded = self._state == OPEN
        self._state = ENDED
        server, socket = self._server, self.socket
        if server.links.get(socket.sid) is self:
            del server.links[socket.sid]
        refused = socket.sid in server.refused
        server.refused.discard(socket.sid)
        if code is None:
            code = WSCloseCode.POLICY_VIOLATION if refused else WSCloseCode.OK
        self.write_final(close_frame(code))
        self._close(CLOSE_GRACE)
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
        if not upgraded:
            socket.upgrading = False  # a failed upgrade: the socket stays on polling
            return
        server.start_background_task(self._close_socket)

    async def _close_socket(self) -> None:
        socket = self.socket
        await socket.close(wait=False, abort=True,
                           reason=self._server.reason.TRANSPORT_CLOSE)
        if self._server.sockets.get(socket.sid) is socket:
            del self._server.sockets[socket.sid]  # engine.io's handler would, on return

    def connection_lost(self, exc: Exception | None) -> None:
        self.end()

    # ------------------------------------------------------------ reading

    def data_received(self, data: bytes) -> None:
        if self._state == ENDED:
            return
        buffer = self._buffer + data if self._buffer else data
        size, pos = len(buffer), 0
        max_size = self._server.max_http_buffer_size
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            opcode, length, head = first & 0x0F, second & 0x7F, pos + 2
            if length == 126:
                if size - head < 2:
                    break
                length, head = int.from_bytes(buffer[head:head + 2], "big"), head + 2
            elif length == 127:
                if size - head < 8:
                    break
                length, head = int.from_bytes(buffer[head:head + 8], "big"), head + 8
            if first & 0x70 or not second & 0x80:  # reserved bits, unmasked client frame
                self.end(WSCloseCode.PROTOCOL_ERROR)
                return
            if opcode >= 0x8 and (length > MAX_CONTROL_PAYLOAD or not first & 0x80):
                self.end(WSCloseCode.PROTOCOL_ERROR)
                return
            if length > max_size:
                self.end(WSCloseCode.MESSAGE_TOO_BIG)
                return
            if size - head < 4 + length:
                break
            payload = unmask(buffer[head + 4:head + 4 + length], buffer[head:head + 4])
            pos = head + 4 + length
            if not self._frame(bool(first & 0x80), opcode, payload):
                return
        self._buffer = buffer[pos:]

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> bool:
        """One frame; False once the connection is ending."""
        if opcode == OPCODE_PING:
            self.write_final(websocket_frame(payload, OPCODE_PONG))
            return True
        if opcode == OPCODE_PONG:
            return True
        if opcode == OPCODE_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else WSCloseCode.OK
            self.end(code if 1000 <= code < 5000 else WSCloseCode.PROTOCOL_ERROR)
            return False
        if opcode == OPCODE_CONTINUATION:
            if self._fragments is None:
                self.end(WSCloseCode.PROTOCOL_ERROR)
                return False
            self._fragments.append(payload)
            if sum(len(p) for p in self._fragments) - 1 > self._server.max_http_buffer_size:
                self.end(WSCloseCode.MESSAGE_TOO_BIG)
                return False
            if not fin:
                return True
            first, *parts = self._fragments
            self._fragments = None
            opcode, payload = first[0], b"".join(parts)
        elif opcode not in (OPCODE_TEXT, OPCODE_BINARY) or self._fragments is not None:
            self.end(WSCloseCode.PROTOCOL_ERROR)
            return False
        elif not fin:
            self._fragments = [bytes([opcode]), payload]
            return True
        message: str | bytes = payload
        if opcode == OPCODE_TEXT:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                self.end(WSCloseCode.INVALID_TEXT)
                return False
        return self._message(message)

    def _message(self, message: str | bytes) -> bool:
        if self._pending is None:
            if message == "3" and self._state == OPEN and self._pong_now():
                return True  # the idle case: a heartbeat, handled without a task
            self._pending = deque()
        self._pending.append(message)
        if len(self._pending) >= MAX_PENDING_FRAMES:
            self._transport.pause_reading()
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._drain())
        return True

    def _pong_now(self) -> bool:
        socket, server = self.socket, self._server
        if socket.closed or socket.closing or server.check_frame(socket.sid, "3") is not None:
            return False  # the task's path: it closes or refuses
        socket.schedule_ping()
        return True

    async def _drain(self) -> None:
        pending = self._pending
        try:
            while pending:
                if not await self._receive(pending.popleft()):
                    self.end()
                    return
                transport = self._transport
                if len(pending) < MAX_PENDING_FRAMES and not transport.is_closing() \
                        and not transport.is_reading():
                    transport.resume_reading()
        finally:
            self._pump = None
            self._pending = None

    async def _receive(self, data: str | bytes) -> bool:
        """``serve_websocket``'s read step: the checks of
        ``GuardedWebSocket.wait``, then engine.io's handling (the upgrade's
        probe and UPGRADE packets first, on an upgrade from polling)."""
        socket, server = self.socket, self._server
        if socket.closed or socket.closing or len(data) > server.max_http_buffer_size:
            return False
        violation = server.check_frame(socket.sid, data)
        if violation is not None:
            await server.refuse(socket.sid, violation)
            return False
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except Exception:  # undecodable: check_frame lets nothing of the kind through
            return False
        if self._state != OPEN:
            return await self._upgrade_step(pkt)
        try:
            await socket.receive(pkt)
        except eio_exceptions.UnknownPacketError:
            pass
        except eio_exceptions.SocketIsClosedError:
            return False
        except Exception:
            server.logger.exception("Unknown receive error")
        return not socket.closed  # a CLOSE packet from the client closes it

    async def _upgrade_step(self, pkt: eio_packet.Packet) -> bool:
        """engine.io's upgrade from polling: PING "probe" is answered and the
        poll in flight is ended (a NOOP on the polling queue); then UPGRADE
        makes it a websocket. Anything else fails the upgrade (the socket
        stays on polling)."""
        if self._state == PROBING:
            if pkt.packet_type != eio_packet.PING or pkt.data != "probe":
                return False
            self.write_final(websocket_frame(eio_packet.Packet(eio_packet.PONG,
                                                               data="probe").encode()))
            await self.socket.queue.put(eio_packet.Packet(eio_packet.NOOP))
            self._state = UPGRADING
            return True
        if pkt.packet_type != eio_packet.UPGRADE:
            return False
        self._start()
        return True
