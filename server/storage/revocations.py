"""Revoked session ids, checked on every authenticated request and socket
connect. Kept until the longest-lived access token of the session would have
expired anyway. In Redis (``revoked:sid:<id>``) when configured, so a logout
on one node is refused by every node at once; in process memory otherwise."""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as redis

from ..clock import Clock

KEY_PREFIX = "skillshare:revoked:sid:"


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
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def revoke(self, session_ids: Iterable[str], *, ttl: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for sid in session_ids:
            pipe.set(KEY_PREFIX + sid, b"1", ex=ttl)
        await pipe.execute()

    async def is_revoked(self, session_id: str) -> bool:
        return bool(await self._redis.exists(KEY_PREFIX + session_id))


RevocationList = MemoryRevocationList | RedisRevocationList
