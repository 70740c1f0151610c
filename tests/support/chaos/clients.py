"""Chat clients that behave like the SDK (clients/js-sdk/src/chat.js): one
socket at a time, reconnecting to any node; on every (re)connect
``room:join`` + ``room:sync`` from the last seq shown; holes in the live
stream filled with ``room:sync``; unacked sends re-sent with their original
``client_id``. Every message is recorded with how it arrived (live, sync, or
the final catch-up), so the soak can count what was lost or duplicated."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import socketio

ACK_TIMEOUT_S = 20.0  # a send waits through a 5 s database pause on a loaded machine
CONNECT_TIMEOUT_S = 10.0
RECONNECT_DELAY_S = (0.2, 1.0)  # random back-off between attempts, like the SDK
SYNC_PAGE = 100
RETRYABLE_CODES = {"unavailable", "rate_limited", "timeout", "disconnected"}
FINAL_CODES = {"validation_error", "forbidden", "not_found", "conflict", "payload_too_large"}

LIVE, SYNC, FINAL = "live", "sync", "final_sync"


class ClientFailure(Exception):
    """A socket call did not complete (timeout, disconnect, error ack)."""

    def __init__(self, code: str, detail: Any = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


@dataclass
class RoomView:
    """What one member has shown of one room: seq -> (message id, how)."""

    shown: dict[int, tuple[str, str]] = field(default_factory=dict)
    last_seen: int = 0  # highest seq with every seq below it shown
    conflicts: list[tuple[int, str, str]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def deliver(self, message: dict[str, Any], via: str) -> None:
        seq, mid = message["seq"], message["id"]
        earlier = self.shown.get(seq)
        if earlier is not None:
            if earlier[0] != mid:
                self.conflicts.append((seq, earlier[0], mid))
            return
        self.shown[seq] = (mid, via)
        while self.last_seen + 1 in self.shown:
            self.last_seen += 1

    @property
    def has_hole(self) -> bool:
        return any(seq > self.last_seen for seq in self.shown)


class Connection:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.closed = asyncio.Event()

    async def call(self, event: str, data: Any, *, timeout: float = ACK_TIMEOUT_S) -> dict:
        """The ack, or ``ClientFailure`` when the socket goes away first."""
        if self.closed.is_set() or not self.sio.connected:
            raise ClientFailure("disconnected")
        call = asyncio.ensure_future(self.sio.call(event, data, timeout=timeout))
        gone = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({call, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not call.done():
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
            raise ClientFailure("disconnected")
        try:
            ack = call.result()
        except socketio.exceptions.TimeoutError:
            raise ClientFailure("timeout") from None
        except socketio.exceptions.SocketIOError as exc:
            raise ClientFailure("disconnected", repr(exc)) from None
        if not isinstance(ack, dict) or not ack.get("ok"):
            error = (ack or {}).get("error") or {} if isinstance(ack, dict) else {}
            raise ClientFailure(error.get("code", "bad_ack"), ack)
        return ack

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()
        self.closed.set()


@dataclass
class Outgoing:
    client_id: str
    room_id: str
    body: str
    attempts: int = 0
    created: float = field(default_factory=time.monotonic)


class ChatClient:
    """One user's client. ``send_interval`` None: it only listens."""

    def __init__(
        self, *, name: str, user_id: str, token: str, rooms: list[str], urls: list[str],
        home: int, send_interval: float | None, rng: random.Random, burst: int = 1,
    ) -> None:
        self.name = name
        self.user_id = user_id
        self.token = token
        self.urls = urls
        self.home = home
        self.send_interval = send_interval
        self.burst = burst
        self.rng = rng
        self.views = {room_id: RoomView() for room_id in rooms}
        self.conn: Connection | None = None
        self.ready = asyncio.Event()  # connected and caught up
        self.released = asyncio.Event()  # not held away by the fault controller
        self.released.set()
        self.sending = True
        self.closing = False
        self.pending: list[Outgoing] = []
        self.acked: dict[str, dict[str, Any]] = {}  # client_id -> the acked message
        self.send_times: dict[str, tuple[float, float]] = {}  # message id -> (first send, ack), monotonic
        self.sent = 0
        self.ack_errors: Counter[str] = Counter()
        self.refused: list[Any] = []  # non-retryable error acks: a defect
        self.live_receipts: Counter[str] = Counter()  # message id -> live events received
        self.connects = 0
        self.last_ack_at = 0.0  # monotonic time of the latest ok send ack
        self.last_live_at = 0.0  # monotonic time of the latest live message
        self.presence_events: list[tuple[float, dict[str, Any]]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._gap_syncs: set[str] = set()

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._supervise(), name=f"{self.name}-conn"))
        if self.send_interval is not None:
            self._tasks.append(asyncio.create_task(self._send_loop(), name=f"{self.name}-send"))

    async def stop(self) -> None:
        self.closing = True
        self.released.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.conn is not None:
            await self.conn.close()

    def hold(self) -> None:
        """Keep this client away (no reconnect) until ``release()``."""
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    @property
    def node_url(self) -> str | None:
        conn = self.conn
        return conn.url if conn is not None and not conn.closed.is_set() else None

    # -- connecting and resuming -------------------------------------------
    async def _supervise(self) -> None:
        first = True
        while not self.closing:
            await self.released.wait()
            order = [self.urls[self.home]] if first else self.rng.sample(self.urls, len(self.urls))
            conn = await self._connect_any(order)
            if conn is None:
                await asyncio.sleep(self.rng.uniform(*RECONNECT_DELAY_S))
                continue
            first = False
            self.conn = conn
            try:
                await self._resume(conn)
            except ClientFailure:
                await conn.close()
                continue
            self.ready.set()
            await conn.closed.wait()
            self.ready.clear()
            if not self.closing:
                await asyncio.sleep(self.rng.uniform(*RECONNECT_DELAY_S))

    async def _connect_any(self, urls: list[str]) -> Connection | None:
        for url in urls:
            conn = Connection(url)
            conn.sio.on("message", self._on_message)
            conn.sio.on("presence", self._on_presence)
            conn.sio.on("disconnect", lambda *_a, c=conn: c.closed.set())
            try:
                await asyncio.wait_for(conn.sio.connect(
                    url, auth={"token": self.token}, transports=["websocket"],
                    wait_timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S * 2)
            except Exception:  # refused, timed out, reset: try the next node
                await conn.close()
                continue
            self.connects += 1
            return conn
        return None

    async def _resume(self, conn: Connection) -> None:
        for room_id, view in self.views.items():
            await conn.call("room:join", {"room_id": room_id})
            async with view.lock:
                await self._sync_locked(conn, room_id, view, SYNC)

    async def _sync_locked(self, conn: Connection, room_id: str, view: RoomView, via: str) -> None:
        while True:
            ack = await conn.call("room:sync", {"room_id": room_id, "after_seq": view.last_seen,
                                                "limit": SYNC_PAGE})
            for message in ack["messages"]:
                view.deliver(message, via)
            if not ack["has_more"] or not ack["messages"]:
                return

    async def final_sync(self) -> None:
        """The catch-up a client does when it next opens each room."""
        conn = self.conn
        if conn is None:
            raise ClientFailure("disconnected")
        for room_id, view in self.views.items():
            async with view.lock:
                await self._sync_locked(conn, room_id, view, FINAL)

    # -- live messages -------------------------------------------------------
    async def _on_message(self, message: dict[str, Any]) -> None:
        view = self.views.get(message.get("room_id", ""))
        if view is None:
            return
        self.live_receipts[message["id"]] += 1
        self.last_live_at = time.monotonic()
        view.deliver(message, LIVE)
        room_id = message["room_id"]
        if view.has_hole and room_id not in self._gap_syncs:
            self._gap_syncs.add(room_id)
            task = asyncio.create_task(self._fill_gap(room_id, view))
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)

    async def _on_presence(self, event: dict[str, Any]) -> None:
        self.presence_events.append((time.monotonic(), event))

    async def _fill_gap(self, room_id: str, view: RoomView) -> None:
        try:
            conn = self.conn
            if conn is None:
                return
            async with view.lock:
                if view.has_hole:
                    await self._sync_locked(conn, room_id, view, SYNC)
        except ClientFailure:
            pass  # resumed at the next connect
        finally:
            self._gap_syncs.discard(room_id)

    # -- sending -------------------------------------------------------------
    async def _send_loop(self) -> None:
        """Every ``send_interval`` (jittered) a burst of ``burst`` sends to
        one room, all in flight at once as a hurried user (or the SDK's
        queue) would; each is retried with its ``client_id`` until acked."""
        assert self.send_interval is not None
        rooms = list(self.views)
        while self.sending and not self.closing:
            room_id = self.rng.choice(rooms)
            burst = []
            for _ in range(self.burst):
                self.sent += 1
                out = Outgoing(str(uuid.uuid4()), room_id, f"{self.name} #{self.sent}")
                self.pending.append(out)
                burst.append(self._deliver_send(out))
            await asyncio.gather(*burst)
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.send_interval * self.burst)

    async def _deliver_send(self, out: Outgoing) -> None:
        while not self.closing:
            await self.ready.wait()
            conn = self.conn
            out.attempts += 1
            try:
                ack = await conn.call("message:send", {"room_id": out.room_id,
                                                       "client_id": out.client_id,
                                                       "body": out.body})
            except ClientFailure as exc:
                self.ack_errors[exc.code] += 1
                if exc.code not in RETRYABLE_CODES:
                    self.refused.append(exc.detail)  # a defect: reported, retried unless final
                if exc.code in FINAL_CODES:
                    self.pending.remove(out)
                    return
                await asyncio.sleep(self.rng.uniform(*RECONNECT_DELAY_S))
                continue
            self.acked[out.client_id] = ack["message"]
            self.last_ack_at = time.monotonic()
            self.send_times[ack["message"]["id"]] = (out.created, self.last_ack_at)
            self.pending.remove(out)
            return

    async def drained(self) -> None:
        while self.pending or not self.ready.is_set():
            await asyncio.sleep(0.1)
