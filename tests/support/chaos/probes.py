"""Observers that run beside the chat: REST requests against every node,
each answer timed so that 5xx can be held against the fault windows, and a
presence watcher that asks the cluster who is online."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from .clients import ChatClient, ClientFailure

REST_TIMEOUT_S = 30.0  # longer than any outage: a request slower than this is a stall
REST_PAUSE_S = 0.2
PRESENCE_POLL_S = 0.2


@dataclass(frozen=True)
class RestAnswer:
    node: int
    path: str  # "GET /healthz"
    started: float
    ended: float
    status: int | None  # None: no HTTP answer
    failure: str | None = None  # refused | stalled | <exception name>
    error_code: str | None = None  # error.code of an error answer in the contract's shape


class RestProbe:
    """GETs a few endpoints on every node, continuously, one loop per node."""

    def __init__(self, urls: list[str], *, token: str, room_id: str) -> None:
        self.urls = urls
        self.token = token
        self.paths = ["/healthz", "/api/v1/users/me", "/api/v1/rooms?limit=5",
                      f"/api/v1/rooms/{room_id}/messages?limit=5"]
        self.answers: list[RestAnswer] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REST_TIMEOUT_S),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        self._tasks = [asyncio.create_task(self._loop(i), name=f"rest-probe-{i}")
                       for i in range(len(self.urls))]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _loop(self, node: int) -> None:
        assert self._session is not None
        while True:
            for path in self.paths:
                self.answers.append(await self._request(node, "GET", path))
            self.answers.append(await self._request(node, "PATCH", "/api/v1/users/me",
                                                    {"bio": f"probe {len(self.answers)}"}))
            await asyncio.sleep(REST_PAUSE_S)

    async def _request(self, node: int, method: str, path: str,
                       body: dict[str, Any] | None = None) -> RestAnswer:
        assert self._session is not None
        started = time.monotonic()
        name = f"{method} {path}"
        try:
            async with self._session.request(method, self.urls[node] + path, json=body) as resp:
                await resp.read()
                code = None
                if resp.status >= 400:
                    code = error_code(await resp.json(content_type=None)
                                      if resp.content_type == "application/json" else None)
                return RestAnswer(node, name, started, time.monotonic(), resp.status,
                                  error_code=code)
        except aiohttp.ClientConnectorError:
            failure = "refused"
        except TimeoutError:
            failure = "stalled"
        except aiohttp.ClientError as exc:
            failure = type(exc).__name__
        return RestAnswer(node, name, started, time.monotonic(), None, failure)


def error_code(body: Any) -> str | None:
    """``error.code`` when ``body`` is the contract's error shape, else None."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and {"code", "message", "details", "request_id"} <= set(error):
        return str(error["code"])
    return None


async def presence_of(watcher: ChatClient, user_ids: list[str]) -> dict[str, str]:
    """Status of each user as the cluster answers ``presence:subscribe``."""
    while True:
        await watcher.ready.wait()
        conn = watcher.conn
        try:
            ack = await conn.call("presence:subscribe", {"user_ids": user_ids})
        except ClientFailure:
            await asyncio.sleep(PRESENCE_POLL_S)
            continue
        return {uid: p["status"] for uid, p in ack["presence"].items()}


async def wait_presence(watcher: ChatClient, expected: dict[str, str], *, timeout: float) -> float:
    """Seconds until every user in ``expected`` has that status (``online``
    matches any non-offline status); raises ``TimeoutError`` with the
    differences when it does not happen within ``timeout``."""
    started = time.monotonic()
    deadline = started + timeout
    wrong: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            seen = await asyncio.wait_for(presence_of(watcher, list(expected)),
                                          max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        wrong = {uid: seen.get(uid, "?") for uid, want in expected.items()
                 if (seen.get(uid) == "offline") != (want == "offline")}
        if not wrong:
            return time.monotonic() - started
        await asyncio.sleep(PRESENCE_POLL_S)
    raise TimeoutError(f"presence did not converge in {timeout}s: {wrong}")
