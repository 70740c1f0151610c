"""python-socketio and python-engineio with protocol hygiene applied
(``protocol.py``): every frame and packet is checked before the libraries
dispatch it, and a violation closes the connection at once, before anything
is buffered, with one short log line (by the ``on_violation`` hook).

Extension points used (``tests/realtime/test_upstream_hooks.py`` fails if
they change upstream): ``socketio.AsyncServer._engineio_server_class``,
``_handle_eio_message`` (registered by ``AsyncServer.__init__`` as the
engine.io ``message`` handler), ``_handle_eio_disconnect``,
``_handle_connect/_disconnect/_event/_ack``, ``_send_packet``,
``manager.callbacks``; engine.io's ``_async`` driver table (``websocket``,
``translate_request``), ``AsyncSocket.close(wait=False)`` and its
``closed``/``closing`` flags, and the websocket handler being a bound method
of its ``AsyncSocket``. The broadcast fast path (``fanout.py``) adds: the
driver's ``__call__`` (replaced, to pass ``compress=`` and serve the socket
with ``serve_websocket``), ``AsyncSocket.queue``/``receive``/``poll``'s
protocol and ``upgrading``/``upgraded``/``connected``, and
``AsyncManager.emit`` (replaced by ``FanoutManager.emit``). Idle sockets
(``wslink.py``, ``ping_wheel.py``) add: the ``connect`` event coming before
engine.io's first ``schedule_ping`` (the socket's class becomes
``WheelSocket`` there), ``schedule_ping``/``check_ping_timeout``/
``last_ping``, ``socket.queue`` being replaceable (the link becomes it),
aiohttp's request handler letting go of a transport (``wslink.detach``), and
(``WheelSocket.poll``/``close``) ``AsyncSocket.poll``'s and ``close``'s
bodies and the client's ``Payload.max_decode_packets``."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
import socketio
from aiohttp import WSCloseCode, web
from engineio import async_socket
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as aiohttp_driver
from socketio import packet as sio_packet

from .fanout import (
    DirectLink,
    FanoutManager,
    SendLimits,
    close_frame,
    serve_websocket,
    websocket_frame,
)
from .protocol import (
    SLOW_CONSUMER,
    FRAME_FLOOD,
    MALFORMED_FRAME,
    NAMESPACE,
    TOO_MANY_PACKETS,
    ProtocolViolation,
    check_frame,
    check_packet,
    decode_packet,
)
from .ping_wheel import PingWheel, WheelSocket
from .token_bucket import TokenBucket
from .wslink import WebSocketLink

OnViolation = Callable[[str, "str | None", ProtocolViolation], Awaitable[None]]
PAYLOAD_SEPARATOR = "\x1e"  # Engine.IO v4 polling bodies: packets joined by RS
MAX_PACKETS_PER_POST = 16  # what python-engineio decodes from one polling body
_POLLING_BODY = web.RequestKey("skillshare_polling_body", bytes)
SLOW_CONSUMER_GRACE = 10.0  # seconds a cut-off consumer has to read its goodbye
# what python-socketio keeps of a socket's WSGI-style environ after the handshake:
# nothing the app reads (its connect handler ignores environ; REMOTE_ADDR is a
# constant in engine.io's aiohttp driver)
KEPT_ENVIRON: tuple[str, ...] = ()


class _ReplayedBody:
    """The already-read polling body, for engine.io's ``wsgi.input.read()``."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self, length: int = -1) -> bytes:
        body, self._body = self._body, b""
        return body


def _translate_request(request: web.Request) -> dict[str, Any]:
    environ = aiohttp_driver.translate_request(request)
    body = request.get(_POLLING_BODY)
    if body is not None:
        environ["wsgi.input"] = _ReplayedBody(body)
    return environ


class GuardedWebSocket(aiohttp_driver.WebSocket):
    """Engine.IO's aiohttp websocket. By default the connection leaves
    aiohttp after the handshake (``WebSocketLink.detach``, which checks
    each frame the same way). With ``SendLimits.compress`` on, it stays an
    aiohttp websocket offering permessage-deflate, checking each frame
    before Engine.IO decodes it, stopping once its socket is closed, and
    served by ``fanout.serve_websocket`` (a ``DirectLink`` writer)."""

    async def __call__(self, environ: dict[str, Any]) -> web.StreamResponse:
        request: web.Request = environ["aiohttp.request"]
        server: GuardedEngineIO = self.server
        if not server.send_limits.compress:  # the connection leaves aiohttp (wslink.py)
            return WebSocketLink.detach(self.handler.__self__, server, request)
        self._sock = web.WebSocketResponse(max_msg_size=server.max_http_buffer_size,
                                           compress=server.send_limits.compress)
        await self._sock.prepare(request)
        self.environ = environ
        socket = self.handler.__self__
        transport = request.transport
        assert transport is not None

        def link() -> DirectLink:
            return DirectLink(socket, self._sock, transport, server.send_limits,
                              server.slow_consumer)

        def register(direct: DirectLink | None) -> None:
            if direct is not None:
                server.links[socket.sid] = direct
            else:
                server.links.pop(socket.sid, None)

        await serve_websocket(socket, self, link, register)
        return self._sock

    async def wait(self) -> Any:
        socket = self.handler.__self__  # the engine.io AsyncSocket this transport feeds
        server: GuardedEngineIO = self.server
        if socket.closed or socket.closing:
            raise OSError("closed")
        data = await super().wait()
        if socket.closed or socket.closing:
            raise OSError("closed")
        violation = server.check_frame(socket.sid, data)
        if violation is not None:
            await server.refuse(socket.sid, violation)
            raise OSError("protocol violation")
        return data

    async def close(self) -> None:
        sid = self.handler.__self__.sid
        refused = sid in self.server.refused
        self.server.refused.discard(sid)
        await self._sock.close(code=WSCloseCode.POLICY_VIOLATION if refused else WSCloseCode.OK)


class GuardedEngineIO(engineio.AsyncServer):
    """Engine.IO server that checks frames (websocket) and polling bodies,
    keeps a frame budget per connection and can drop a connection without
    waiting for its client."""

    on_violation: Callable[[str, ProtocolViolation, Any], Awaitable[None]] | None = None
    # (eio_sid) -> the Socket.IO goodbye text for a slow consumer, or None
    on_slow_consumer: Callable[[str], str | None] | None = None

    def __init__(self, *args: Any, frame_rate: float | None = None, frame_burst: int = 1,
                 send_limits: SendLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.send_limits = send_limits or SendLimits()
        self.links: dict[str, DirectLink | WebSocketLink] = {}  # websockets, by eio sid
        self.ping_wheel = PingWheel(self)
        self.cut_off: set[str] = set()  # slow consumers being closed: nothing more is queued
        self._async: dict[str, Any] = {**self._async, "websocket": GuardedWebSocket,
                       "translate_request": _translate_request}
        self._frame_rate = frame_rate
        self._frame_burst = frame_burst
        self._budgets: dict[str, TokenBucket] = {}
        self.refused: set[str] = set()

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":  # a new socket, before engine.io schedules its first ping
            socket = self.sockets.get(args[0])
            if type(socket) is async_socket.AsyncSocket:
                socket.__class__ = WheelSocket  # its pings come from self.ping_wheel
        return await super()._trigger_event(event, *args, **kwargs)

    def close_links(self) -> None:
        """Close every websocket that left aiohttp (aiohttp's shutdown no
        longer knows them) and stop the ping timer."""
        for link in list(self.links.values()):
            if isinstance(link, WebSocketLink):
                link.end(WSCloseCode.GOING_AWAY)
        self.ping_wheel.stop()

    async def shutdown(self) -> None:
        self.close_links()
        await super().shutdown()

    def check_frame(self, eio_sid: str, frame: str | bytes) -> ProtocolViolation | None:
        violation = check_frame(frame)
        if violation is None and self._frame_rate is not None:
            bucket = self._budgets.get(eio_sid)
            if bucket is None:
                bucket = self._budgets[eio_sid] = TokenBucket(self._frame_rate, self._frame_burst)
            if not bucket.take():
                violation = FRAME_FLOOD
        return violation

    async def refuse(self, eio_sid: str, violation: ProtocolViolation, packet: Any = None) -> None:
        """Close a misbehaving connection once; ``on_violation`` first tells
        the client why (``packet``: the offending Socket.IO packet, if any)."""
        if eio_sid in self.refused:
            return
        self.refused.add(eio_sid)
        socket = self.sockets.get(eio_sid)
        if self.on_violation is not None:
            await self.on_violation(eio_sid, violation, packet)
        await self.drop(eio_sid)
        if socket is None or not socket.upgraded:
            self.refused.discard(eio_sid)  # polling: the socket is closed; websocket: close() does it

    async def drop(self, eio_sid: str) -> None:
        """Close a connection now: the disconnect handlers run, a CLOSE
        packet is queued, and nothing more is read from it. Unlike
        ``disconnect()`` this does not wait for the client to fetch its
        queue (a polling client may never come back): a poll in flight still
        gets what was queued (the refusal); later requests get 400, and
        engine.io forgets the socket then, or at its next service sweep."""
        socket = self.sockets.get(eio_sid)
        if socket is not None and not socket.closed:
            await socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)

    def slow_consumer(self, link: DirectLink | WebSocketLink) -> None:
        """``link`` holds more unsent bytes than ``send_limits.buffer_limit``:
        nothing more is written to it but the goodbye (``session:ended
        {reason: slow_consumer}``) and a close frame; the socket leaves its
        rooms now, the transport is flushed then dropped after a grace."""
        eio_sid = link.socket.sid
        self.cut_off.add(eio_sid)
        goodbye = self.on_slow_consumer(eio_sid) if self.on_slow_consumer is not None else None
        if goodbye is not None:
            link.write_final(websocket_frame(goodbye))
        link.write_final(close_frame(WSCloseCode.TRY_AGAIN_LATER))
        link.close_transport(SLOW_CONSUMER_GRACE)
        self.links.pop(eio_sid, None)
        self.start_background_task(link.socket.close, wait=False, abort=True,
                                   reason=self.reason.SERVER_DISCONNECT)

    def slow_consumer_queued(self, socket: Any) -> None:
        """More than ``send_limits.queue_limit`` packets wait in ``socket``'s
        queue: they are dropped and the socket leaves its rooms now. A
        websocket is cut off like ``slow_consumer`` (it gets the goodbye); a
        polling client that stopped polling finds its session gone (HTTP 400)
        when it polls again, like any closed one, and reconnects."""
        if socket.closing or socket.closed or socket.sid in self.cut_off:
            return
        self.cut_off.add(socket.sid)
        queue = socket.queue
        while not queue.empty():
            queue.get_nowait()
            queue.task_done()
        link = self.links.get(socket.sid)
        if link is not None:
            link.cut = True
            self.slow_consumer(link)
            return
        if self.on_slow_consumer is not None:
            self.on_slow_consumer(socket.sid)
        self.start_background_task(socket.close, wait=False, abort=True,
                                   reason=self.reason.SERVER_DISCONNECT)

    def forget(self, eio_sid: str) -> None:
        self._budgets.pop(eio_sid, None)
        self.cut_off.discard(eio_sid)

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        """engine.io's ``send_packet``, except that a websocket with nothing
        waiting in its queue gets the frame written at once (acks, events to
        one socket): no queue hop and writer wake-up per packet. Order is
        kept: only an empty queue is overtaken, and ``AsyncSocket.send``'s
        ping-timeout check still runs first."""
        link = self.links.get(sid)
        socket = self.sockets.get(sid) if link is not None else None
        if link is not None and socket is not None and not socket.closed:
            encoded = pkt.encode()
            if isinstance(encoded, str) and link.takes_shared(len(encoded)):
                if await socket.check_ping_timeout():
                    link.write(websocket_frame(encoded))
                return
        await super().send_packet(sid, pkt)

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        sid = request.query.get("sid")
        socket = self.sockets.get(sid) if sid is not None else None
        if sid is not None and (socket is None or socket.closed):
            # a closed, refused or made-up session: refused without logging
            # the client's text (engine.io would log it once, at ERROR)
            return web.Response(status=400, text="unknown session")
        if request.method == "POST" and sid is not None:
            violation = await self._check_polling_body(request, sid)
            if violation is not None:
                await self.refuse(sid, violation)
                return web.Response(status=400, text="protocol violation")
        return await super().handle_request(request)

    async def _check_polling_body(self, request: web.Request, sid: str) -> ProtocolViolation | None:
        length = request.content_length
        if length is None or length > self.max_http_buffer_size:
            return None  # engine.io refuses oversized bodies itself
        try:
            body = await request.content.readexactly(length)
            packets = body.decode("utf-8").split(PAYLOAD_SEPARATOR) if body else []
        except (UnicodeDecodeError, EOFError, ValueError):
            return MALFORMED_FRAME
        request[_POLLING_BODY] = body
        if len(packets) > MAX_PACKETS_PER_POST:
            return TOO_MANY_PACKETS
        for frame in packets:
            violation = self.check_frame(sid, frame)
            if violation is not None:
                return violation
        return None


class GuardedServer(socketio.AsyncServer):
    """``socketio.AsyncServer`` that lets only well-formed packets through:
    reserved event names, repeated CONNECTs, binary packets, unsolicited
    acks and undecodable packets close the connection instead of reaching
    the handlers (or being buffered). ``on_violation(eio_sid, sid, v)`` is
    awaited first (logging, metrics, flood accounting)."""

    # (eio_sid, sid) -> None: a slow consumer is being cut off (metrics, log)
    on_slow_consumer: Callable[[str, str | None], None] | None = None

    def __init__(self, *args: Any, on_violation: OnViolation | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_violation = on_violation
        self.eio.on_violation = self._refuse_frame
        self.eio.on_slow_consumer = self._slow_consumer_goodbye

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return GuardedEngineIO

    async def emit_many(self, event: str, datas: list[Any], *, to: Any,
                        namespace: str | None = None) -> None:
        """``emit(event, data, to=to)`` for each of ``datas``, in order. On
        one node (the manager's emit is ``FanoutManager.emit``) they go out
        as one step, each recipient's frames in one write; a manager that
        publishes (Redis) gets one ``emit`` per item, as before."""
        namespace = namespace or NAMESPACE
        if type(self.manager).emit is FanoutManager.emit:
            await self.manager.emit_many(event, datas, namespace, room=to)
            return
        for data in datas:
            await self.emit(event, data, to=to, namespace=namespace)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        """The environ python-socketio keeps for the life of a socket (it
        hands it to connect handlers) holds the headers and the aiohttp
        request (which keeps the whole parsed request alive): only
        ``KEPT_ENVIRON`` is kept; the app's handlers read none of it."""
        ret = await super()._handle_eio_connect(eio_sid, environ)
        if eio_sid in self.environ:
            self.environ[eio_sid] = {k: environ[k] for k in KEPT_ENVIRON if k in environ}
        return ret

    def _connected_sid(self, eio_sid: str) -> str | None:
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        return sid if sid is not None and self.manager.is_connected(sid, NAMESPACE) else None

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid not in self.environ or eio_sid in self.eio.refused:
            return  # a closed or refused connection: drop whatever was in flight
        pkt = decode_packet(self.packet_class, data)
        if isinstance(pkt, ProtocolViolation):
            await self.eio.refuse(eio_sid, pkt)
            return
        sid = self._connected_sid(eio_sid)
        pending = sid is not None and pkt.id in self.manager.callbacks.get(sid, {})
        violation = check_packet(pkt, connected=sid is not None, ack_pending=pending)
        if violation is not None:
            await self.eio.refuse(eio_sid, violation, pkt)
            return
        if pkt.packet_type == sio_packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif pkt.packet_type == sio_packet.DISCONNECT:
            await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
        elif pkt.packet_type == sio_packet.EVENT:
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        else:
            await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)

    async def _refuse_frame(self, eio_sid: str, violation: ProtocolViolation,
                            pkt: sio_packet.Packet | None) -> None:
        """Tell the client why, in the contract's shape where the protocol
        has a place for it, before engine.io drops the connection."""
        packet_type = pkt.packet_type if pkt is not None else None
        namespace = (pkt.namespace if pkt is not None else None) or NAMESPACE
        ack_id = pkt.id if pkt is not None else None
        sid = self._connected_sid(eio_sid)
        if self.on_violation is not None:
            await self.on_violation(eio_sid, sid, violation)
        error = violation.error()
        with contextlib.suppress(Exception):
            if sid is None:
                if packet_type == sio_packet.CONNECT:
                    await self._send_packet(eio_sid, self.packet_class(
                        sio_packet.CONNECT_ERROR, namespace=namespace,
                        data={"message": violation.code, "data": error}))
                return
            if packet_type == sio_packet.EVENT and ack_id is not None:
                await self._send_packet(eio_sid, self.packet_class(
                    sio_packet.ACK, namespace=NAMESPACE, id=ack_id,
                    data=[{"ok": False, "error": error}]))
            await self.emit("session:ended", {"reason": violation.reason, "error": error},
                            to=sid, ignore_queue=True)

    def _slow_consumer_goodbye(self, eio_sid: str) -> str | None:
        """The Engine.IO text of ``session:ended {reason: slow_consumer}``."""
        sid = self._connected_sid(eio_sid)
        if self.on_slow_consumer is not None:
            self.on_slow_consumer(eio_sid, sid)
        if sid is None:
            return None
        pkt = self.packet_class(sio_packet.EVENT, namespace=NAMESPACE,
                                data=["session:ended", {"reason": SLOW_CONSUMER}])
        return eio_packet.Packet(eio_packet.MESSAGE, pkt.encode()).encode()

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        self.eio.forget(eio_sid)
