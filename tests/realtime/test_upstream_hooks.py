"""The python-socketio / python-engineio internals that protocol hygiene
(server/realtime/transport.py) and the Redis manager (redis_manager.py) build on. If an upgrade changes one of them,
this fails: re-read the upstream code, adapt transport.py, then update the
fingerprints here."""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect

import socketio
from engineio import async_socket
from socketio.async_pubsub_manager import AsyncPubSubManager
from engineio.async_drivers import aiohttp as aiohttp_driver

from server.realtime.metrics import RealtimeMetrics
from server.realtime.server import build_server
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
    # close(wait=False) triggers 'disconnect' and queues CLOSE without waiting
    "engineio.AsyncSocket.close": (async_socket.AsyncSocket.close, "faa2e93902543244"),
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


def test_the_hooks_are_wired(make_settings):
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    sio = build_server(make_settings(), RealtimeMetrics(
        registry, bus_errors=Counter("x_bus_errors", "x", registry=registry)))
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
