"""Real Socket.IO clients for tests: python-socketio's ``AsyncClient`` that
records every server-to-client event, so tests can wait for what a user
would see."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio
import contextlib

SERVER_EVENTS = (
    "message", "presence", "typing", "read", "session:expiring", "session:ended",
    "room:member_left", "room:member_added",
)


class SocketUser:
    """One socket of one user, with the events it received."""

    def __init__(self, url: str, token: str, *, name: str = "",
                 transports: list[str] | None = None) -> None:
        self.url = url
        self.token = token
        self.name = name
        self.transports = transports or ["websocket"]
        # the libraries' warnings (why a client dropped its connection) show
        # in a failing test's captured log
        self.sio = socketio.AsyncClient(reconnection=False,
                                        logger=logging.getLogger("socketio.client"),
                                        engineio_logger=logging.getLogger("engineio.client"))
        self.events: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self._changed = asyncio.Condition()
        for event in SERVER_EVENTS:
            self.sio.on(event, self._recorder(event))
        self.sio.on("disconnect", self._on_disconnect)

    def _recorder(self, event: str) -> Callable[[Any], Any]:
        async def record(data: Any = None) -> None:
            self.events.append((event, data))
            async with self._changed:
                self._changed.notify_all()
        return record

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()
        async with self._changed:
            self._changed.notify_all()

    async def connect(self) -> SocketUser:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=self.transports,
                               wait_timeout=10)
        return self

    async def call(self, event: str, data: Any = None, *, timeout: float = 10.0) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    def received(self, event: str, match: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        return [d for e, d in self.events if e == event and match(d)]

    async def wait_for(self, event: str, match: Callable[[Any], bool] = lambda _: True,
                       *, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                found = self.received(event, match)
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.name or 'socket'}: no {event!r} matching within {timeout}s "
                        f"(connected: {self.sio.connected}, disconnected: "
                        f"{self.disconnected.is_set()}); got {self.events[-10:]}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    async def wait_disconnected(self, timeout: float) -> None:
        await asyncio.wait_for(self.disconnected.wait(), timeout)


def new_client_id() -> str:
    return str(uuid.uuid4())


async def http_json(method: str, url: str, *, token: str | None = None,
                    json: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, \
            session.request(method, url, json=json, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def register_user(base_url: str, name: str = "user") -> dict[str, Any]:
    """Register through the public API; returns the body plus ``id``."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    status, body = await http_json("POST", f"{base_url}/api/v1/auth/register", json={
        "email": email, "password": "correct horse battery staple", "display_name": name,
    })
    assert status == 201, body
    return {**body, "id": body["user"]["id"], "email": email,
            "password": "correct horse battery staple"}


async def open_direct(base_url: str, token: str, other_id: str) -> dict[str, Any]:
    status, body = await http_json("POST", f"{base_url}/api/v1/rooms", token=token,
                                   json={"type": "direct", "user_id": other_id})
    assert status in (200, 201), body
    return body


async def open_group(base_url: str, owner: dict[str, Any], others: list[dict[str, Any]],
                     name: str = "g") -> dict[str, Any]:
    """A group room of ``owner`` and ``others``. Consent asks for a relation
    with each member: each of them first opens a direct room with the owner."""
    for other in others:
        await open_direct(base_url, other["access_token"], owner["id"])
    status, room = await http_json("POST", f"{base_url}/api/v1/rooms",
                                   token=owner["access_token"],
                                   json={"type": "group", "name": name,
                                         "member_ids": [u["id"] for u in others]})
    assert status == 201, room
    return room
