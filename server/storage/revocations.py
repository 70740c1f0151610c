"""Revoked session ids, checked on every authenticated request and socket
connect. Kept until the longest-lived access token of the session would have
expired anyway. In Redis (``<prefix>revoked:sid:<id>``) when configured, so a logout
on one node is refused by every node at once; in process memory otherwise."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as redis

from ..clock import Clock
from ..redis_keys import RedisKeys

KEY_PREFIX = RedisKeys().revoked_sessions  # with the default key prefix


class RevocationList(Protocol):
    """``MemoryRevocationList`` (one node) and ``RedisRevocationList``
    (shared between nodes) below."""

    async def revoke(self, session_ids: Iterable[str], *, ttl: int) -> None: ...
    async def is_revoked(self, session_id: str) -> bool: ...


class MemoryRevocationList:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    async def revoke(self, session_ids: Iterable[str], *, ttl: int) -> None:
        now = self._clock.time()
        for sid in session_ids:
            self._expiry[sid] = now + ttl
        self._expiry = {k: v for k, v in self._expiry.items() if v > now}

    async def is_revoked(self, session_id: str) -> bool:
        expiry = self._expiry.get(session_id)
        return expiry is not None and expiry > self._clock.time()


class RedisRevocationList:
    def __init__(self, client: redis.Redis, *, prefix: str = KEY_PREFIX) -> None:
        self._redis = client
        self._prefix = prefix

    async def revoke(self, session_ids: Iterable[str], *, ttl: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for sid in session_ids:
            pipe.set(self._prefix + sid, b"1", ex=ttl)
        await pipe.execute()

    async def is_revoked(self, session_id: str) -> bool:
        return bool(await self._redis.exists(self._prefix + session_id))

