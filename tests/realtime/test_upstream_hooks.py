"""The python-socketio / python-engineio (and aiohttp) internals that protocol hygiene
(server/realtime/transport.py), the broadcast fast path (server/realtime/fanout.py), idle
sockets (wslink.py, ping_wheel.py) and the Redis manager (redis_manager.py) build on. If an upgrade changes one of them,
this fails: re-read the upstream code, adapt transport.py, then update the
fingerprints here."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import inspect

import socketio
from aiohttp import web, web_protocol
from aiohttp._websocket.helpers import websocket_mask
from engineio import async_server, async_socket, payload
from engineio.async_drivers import aiohttp as aiohttp_driver
from socketio import async_pubsub_manager, base_manager
from socketio.async_pubsub_manager import AsyncPubSubManager

from server.realtime.fanout import FanoutManager
from server.realtime.metrics import RealtimeMetrics
from server.realtime.server import CountingManager, CountingRedisManager, build_server
from server.realtime.transport import GuardedEngineIO, GuardedServer, GuardedWebSocket

# sha256 (first 16 hex digits) of the upstream source we replace or rely on,
# as of python-socketio 5.18.1 / python-engineio 4.15.1.
UPSTREAM_FINGERPRINTS = {
    # replaced by GuardedServer._handle_eio_message: its packet dispatch must match
    "socketio.AsyncServer._handle_eio_message": (socketio.AsyncServer._handle_eio_message,
                                                 "bef50fc0e1635921"),
    "socketio.AsyncServer._handle_eio_disconnect": (socketio.AsyncServer._handle_eio_disconnect,
                                                    "9344593148b66fd9"),
    # its read loop ends on an OSError from ws.wait(); frames are decoded after wait()
    "engineio.AsyncSocket._websocket_handler": (async_socket.AsyncSocket._websocket_handler,
                                                "27f120df4d717a24"),
    # reads environ['wsgi.input'] once, decodes UTF-8, splits the payload
    "engineio.AsyncSocket.handle_post_request": (async_socket.AsyncSocket.handle_post_request,
                                                 "82dca119a261a959"),
    # close(wait=False) triggers 'disconnect' and queues CLOSE without waiting;
    # close(abort=True) queues nothing (WheelSocket.close then ends a long-poll)
    "engineio.AsyncSocket.close": (async_socket.AsyncSocket.close, "faa2e93902543244"),
    # python-engineio's client refuses a polling payload of more than
    # max_decode_packets packets: WheelSocket.poll sends at most that many
    "engineio.Payload.decode": (payload.Payload.decode, "9c7975664d815d3d"),
    # server/realtime/redis_manager.py: replaces the listener loop (keeps the PubSub it
    # reads), connects sentinel/cluster URLs itself, filters canaries out of _listen(),
    # and reads `thread` (set by initialize()) to know whether the manager listens
    "socketio.AsyncRedisManager._redis_listen_with_retries": (
        socketio.AsyncRedisManager._redis_listen_with_retries, "ad347f253fd3423a"),
    "socketio.AsyncRedisManager._redis_connect": (
        socketio.AsyncRedisManager._redis_connect, "da4530c936323c25"),
    "socketio.AsyncRedisManager._listen": (socketio.AsyncRedisManager._listen, "3e74fdd1084b4e13"),
    "socketio.AsyncPubSubManager._thread": (AsyncPubSubManager._thread, "fa8d075729aac64d"),
    "socketio.AsyncPubSubManager.initialize": (AsyncPubSubManager.initialize, "e8a2b026ecea320f"),
    # the bus JSON (BUS_JSON): set_server sets self.json, which _publish dumps with and
    # _thread loads with; _publish publishes what dumps returns (bytes from orjson)
    "socketio.BaseManager.set_server": (base_manager.BaseManager.set_server, "6ca0a0ef7fa21dc6"),
    "socketio.AsyncRedisManager._publish": (socketio.AsyncRedisManager._publish,
                                            "033e4da7cc8768b4"),
    # --- the fast path (fanout.py) ---
    # serve_websocket is this handler with its writer replaced: re-read both together
    # (the _websocket_handler entry above); the writer's protocol is poll()'s: a None
    # in the queue ends it, packets are engine.io Packets with encode(); WheelSocket.poll
    # is this one taking at most Payload.max_decode_packets packets
    "engineio.AsyncSocket.poll": (async_socket.AsyncSocket.poll, "826f58a9f3606db2"),
    # send() is check_ping_timeout() then queue.put(): FanoutManager puts on the queue itself
    "engineio.AsyncSocket.send": (async_socket.AsyncSocket.send, "0437276ccba7ab09"),
    # PONG reschedules the ping, MESSAGE dispatches, CLOSE closes (serve_websocket calls it)
    "engineio.AsyncSocket.receive": (async_socket.AsyncSocket.receive, "a91ae36ec2fb5340"),
    # builds _async['websocket'](self._websocket_handler, self.server) and awaits it
    "engineio.AsyncSocket._upgrade_websocket": (async_socket.AsyncSocket._upgrade_websocket,
                                                "820b83efe96adb98"),
    # replaced by GuardedWebSocket.__call__ (which adds compress=)
    "engineio aiohttp WebSocket.__call__": (aiohttp_driver.WebSocket.__call__,
                                            "71f9a94476d737c3"),
    # GuardedEngineIO.send_packet: _get_socket() then AsyncSocket.send() (above); its
    # direct write runs check_ping_timeout() first, as send() does
    "engineio.AsyncServer.send_packet": (async_server.AsyncServer.send_packet,
                                         "c54317440865030d"),
    "engineio.AsyncSocket.check_ping_timeout": (async_socket.AsyncSocket.check_ping_timeout,
                                                "77616d5ca7809257"),
    # --- idle sockets (ping_wheel.py, wslink.py) ---
    # creates async_socket.AsyncSocket, triggers 'connect' (GuardedEngineIO swaps the class
    # to WheelSocket there) before the first schedule_ping(); for a websocket, returns
    # what the websocket driver returned and deletes the socket only if it is closed
    "engineio.AsyncServer._handle_connect": (async_server.AsyncServer._handle_connect,
                                             "5bd7edc1d1ae115a"),
    # replaced by WheelSocket.schedule_ping + PingWheel (same guard on last_ping)
    "engineio.AsyncSocket.schedule_ping": (async_socket.AsyncSocket.schedule_ping,
                                           "fe316639159cd70d"),
    "engineio.AsyncSocket._send_ping": (async_socket.AsyncSocket._send_ping, "67db82a704ea49d0"),
    # calls check_ping_timeout() (WheelSocket's) and deletes closed sockets
    "engineio.AsyncServer._service_task": (async_server.AsyncServer._service_task,
                                           "b6358bda51d0b34b"),
    # stores the environ GuardedServer._handle_eio_connect then trims
    "socketio.AsyncServer._handle_eio_connect": (socketio.AsyncServer._handle_eio_connect,
                                                 "76704886d944a7e6"),
    # replaced by FanoutManager.emit: data normalisation, skip_sid, callbacks must match
    "socketio.AsyncManager.emit": (socketio.AsyncManager.emit, "01ccd5b82b4f955e"),
    # both hand local delivery to super().emit (FanoutManager.emit, by the MRO)
    "socketio.AsyncPubSubManager.emit": (async_pubsub_manager.AsyncPubSubManager.emit,
                                         "6cc46e0ff9b6d7cf"),
    "socketio.AsyncPubSubManager._handle_emit": (
        async_pubsub_manager.AsyncPubSubManager._handle_emit, "4284671be955f644"),
    # a list of rooms yields each participant once
    "socketio.BaseManager.get_participants": (base_manager.BaseManager.get_participants,
                                              "7d78ad681c95de5b"),
}


# aiohttp's request handler, which WebSocketLink.detach takes a connection from: bytes
# after an upgrade request wait in _message_tail; connection_lost() with .transport set to
# None closes nothing and (handler_cancellation off) cancels nothing, and lets the server
# forget the handler when its task ends; finish_response() only calls the response's
# prepare()/write_eof() and start() then stops on keep_alive False without a transport.
AIOHTTP_FINGERPRINTS = {
    "RequestHandler.connection_lost": (web_protocol.RequestHandler.connection_lost,
                                       "df2fe6e95fd04c7c"),
    "RequestHandler.force_close": (web_protocol.RequestHandler.force_close, "38d0e1e798e4d3b7"),
    "RequestHandler.finish_response": (web_protocol.RequestHandler.finish_response,
                                       "b7eb53db8f4b30ca"),
    "RequestHandler.start": (web_protocol.RequestHandler.start, "2e565fd40c8e04fb"),
    "RequestHandler.data_received": (web_protocol.RequestHandler.data_received,
                                     "1ee57ebe052e6c80"),
}


def _fingerprint(func) -> str:
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:16]


def test_upstream_internals_are_the_ones_transport_py_was_written_against():
    versions = (importlib.metadata.version("python-socketio"),
                importlib.metadata.version("python-engineio"))
    changed = {name: _fingerprint(func) for name, (func, expected) in UPSTREAM_FINGERPRINTS.items()
               if _fingerprint(func) != expected}
    assert not changed, (f"upstream changed under python-socketio/engineio {versions}: {changed}; "
                         "review server/realtime/transport.py")
    assert payload.Payload.max_decode_packets == 16


def test_aiohttp_internals_are_the_ones_wslink_py_was_written_against():
    changed = {name: _fingerprint(func) for name, (func, expected) in AIOHTTP_FINGERPRINTS.items()
               if _fingerprint(func) != expected}
    assert not changed, (f"upstream changed under aiohttp {importlib.metadata.version('aiohttp')}: "
                         f"{changed}; review server/realtime/wslink.py")
    assert "_message_tail" in web_protocol.RequestHandler.__slots__
    data = bytearray(b"abcdef")
    websocket_mask(b"\x01\x02\x03\x04", data)  # in place, RFC 6455 masking
    assert bytes(data) == bytes(b ^ m for b, m in zip(b"abcdef", b"\x01\x02\x03\x04\x01\x02",
                                                       strict=True))


def test_the_hooks_are_wired(make_settings):
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    sio = build_server(make_settings(), RealtimeMetrics(
        registry, bus_errors=Counter("x_bus_errors", "x", registry=registry)), node_id="test-node")
    assert isinstance(sio, GuardedServer)
    assert isinstance(sio.eio, GuardedEngineIO)
    # AsyncServer.__init__ registers the (overridden) bound method as engine.io's handler.
    assert sio.eio.handlers["message"].__func__ is GuardedServer._handle_eio_message
    assert sio.eio.handlers["disconnect"].__func__ is GuardedServer._handle_eio_disconnect
    assert sio.eio._async["websocket"] is GuardedWebSocket
    assert sio.reserved_events == ["connect", "disconnect"]
    assert hasattr(sio.manager, "callbacks")
    for name in ("_handle_connect", "_handle_disconnect", "_handle_event", "_handle_ack",
                 "_send_packet"):
        assert callable(getattr(sio, name)), name
    params = inspect.signature(socketio.AsyncServer._handle_event).parameters
    assert list(params) == ["self", "eio_sid", "namespace", "id", "data"]
    assert list(inspect.signature(async_socket.AsyncSocket.close).parameters) == [
        "self", "wait", "abort", "reason"]
    assert {"wait", "close", "__call__"} <= set(vars(aiohttp_driver.WebSocket))


def test_the_fast_path_hooks_are_wired(make_settings):
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    sio = build_server(make_settings(), RealtimeMetrics(
        registry, bus_errors=Counter("x_bus_errors", "x", registry=registry)), node_id="test-node")
    assert isinstance(sio.manager, CountingManager) and isinstance(sio.manager, FanoutManager)
    assert sio.eio.links == {}
    # the pub/sub manager's super().emit must land on FanoutManager.emit
    mro = CountingRedisManager.__mro__
    assert mro.index(async_pubsub_manager.AsyncPubSubManager) + 1 == mro.index(FanoutManager)
    assert mro.index(FanoutManager) + 1 == mro.index(socketio.AsyncManager)
    # the engine.io socket state the fast path reads and writes
    eio_socket = async_socket.AsyncSocket(sio.eio, "sid")
    assert isinstance(eio_socket.queue, asyncio.Queue)
    assert eio_socket.queue.maxsize == 0  # put_nowait never fails
    for flag in ("closed", "closing", "upgrading", "upgraded", "connected"):
        assert getattr(eio_socket, flag) is False, flag
    assert {"compress", "max_msg_size"} <= set(inspect.signature(web.WebSocketResponse).parameters)
    assert isinstance(web.WebSocketResponse.compress, property)
    assert isinstance(web.BaseRequest.transport, property)
