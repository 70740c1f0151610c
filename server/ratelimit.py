"""Rate limits with the ``limits`` library: in-memory on one node, Redis when
``SKILLSHARE_REDIS_URL`` is set so a limit holds across every node."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from loguru import logger

from .errors import RateLimited
from .metrics import Metrics
from .redis_client import retry_options


class RateLimiter:
    """Named limits (``"login:account"``) over a shared storage.

    ``hit`` consumes one unit and raises ``RateLimited`` when the window is
    full; ``check`` raises without consuming (used by login throttling, where
    only failures count but a throttled account is refused even with the right
    password). A storage failure is logged and the request allowed: Redis
    trouble must not take logins down, and /readyz reports it."""

    def __init__(self, *, redis_url: str | None, enabled: bool, metrics: Metrics) -> None:
        if redis_url:
            storage = storage_from_string(f"async+{redis_url}", implementation="redispy",
                                          **retry_options())
        else:
            storage = storage_from_string("async+memory://")
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._enabled = enabled
        self._metrics = metrics
        self._parsed: dict[str, RateLimitItem] = {}

    def _item(self, limit: str) -> RateLimitItem:
        item = self._parsed.get(limit)
        if item is None:
            item = self._parsed[limit] = parse(limit)
        return item

    async def _retry_after(self, item: RateLimitItem, keys: tuple[str, ...]) -> int:
        stats = await self._limiter.get_window_stats(item, *keys)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def hit(self, name: str, limit: str, *keys: str) -> None:
        """Consume one unit; ``RateLimited`` when the window is already full."""
        await self._enforce(name, limit, keys, consume=True)

    async def check(self, name: str, limit: str, *keys: str, cost: int = 1) -> None:
        """``RateLimited`` when the window has no room for ``cost`` more
        units, without consuming."""
        await self._enforce(name, limit, keys, consume=False, cost=cost)

    async def _enforce(self, name: str, limit: str, keys: tuple[str, ...], *, consume: bool,
                       cost: int = 1) -> None:
        if not self._enabled:
            return
        item = self._item(limit)
        try:
            probe = self._limiter.hit if consume else self._limiter.test
            if await probe(item, name, *keys, cost=cost):
                return
            retry_after = await self._retry_after(item, (name, *keys))
        except Exception:
            logger.exception("rate limit storage failed for {}; allowing", name)
            return
        self._metrics.rate_limited.labels(name).inc()
        raise RateLimited(retry_after)

    async def clear(self, name: str, limit: str, *keys: str) -> None:
        try:
            await self._limiter.clear(self._item(limit), name, *keys)
        except Exception:
            logger.exception("rate limit storage failed clearing {}", name)
