"""Rate limits with the ``limits`` library: in-memory on one node, Redis when
``SKILLSHARE_REDIS_URL`` is set so a limit holds across every node."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from loguru import logger

from .errors import RateLimited
from .metrics import Metrics
from .redis_client import retry_options
from .redis_keys import RedisKeys


class RateLimiter:
    """Named limits (``"login:account"``) over a shared storage.

    ``hit`` consumes one unit and raises ``RateLimited`` when the window is
    full. ``reserve`` is how a limit on
    *failures* is kept under concurrency: the unit is taken before the
    expensive check (a password or token verification), so a burst sent all
    at once gets no more verifications than the limit; the caller gives it
    back (``Reservation.refund``) or resets the window (``Reservation.clear``)
    when the attempt succeeds. A storage failure is logged and the request
    allowed: Redis trouble must not take logins down, and /readyz reports it."""

    def __init__(self, *, redis_url: str | None, enabled: bool, metrics: Metrics,
                 key_prefix: str = RedisKeys().rate_limits) -> None:
        if redis_url:
            storage = storage_from_string(f"async+{redis_url}", implementation="redispy",
                                          key_prefix=key_prefix, **retry_options())
        else:
            storage = storage_from_string("async+memory://")
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._enabled = enabled
        self._metrics = metrics
        self._parsed: dict[str, RateLimitItem] = {}
        self._storage_down = False

    def _storage_failed(self, action: str, name: str, exc: Exception) -> None:
        """One short line per outage: a traceback per request would flood the
        log exactly when Redis is down and every request fails the same way."""
        if not self._storage_down:
            self._storage_down = True
            logger.warning("rate limit storage failed ({} {}: {}); requests are allowed "
                           "until it is back", action, name, type(exc).__name__)

    def _storage_ok(self) -> None:
        if self._storage_down:
            self._storage_down = False
            logger.info("rate limit storage is back")

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
        await self._enforce(name, limit, keys)

    async def _enforce(self, name: str, limit: str, keys: tuple[str, ...]) -> None:
        if not self._enabled:
            return
        item = self._item(limit)
        try:
            allowed = await self._limiter.hit(item, name, *keys)
            retry_after = 0 if allowed else await self._retry_after(item, (name, *keys))
        except Exception as exc:
            self._storage_failed("hit", name, exc)
            return
        self._storage_ok()
        if allowed:
            return
        self._metrics.rate_limited.labels(name).inc()
        raise RateLimited(retry_after)

    async def reserve(self, name: str, limit: str, *keys: str) -> Reservation:
        """Take one unit now (``RateLimited`` when the window is full); the
        attempt's outcome decides whether it is kept."""
        await self._enforce(name, limit, keys)
        return Reservation(self, name, limit, keys, taken=self._enabled)

    async def refund(self, name: str, limit: str, *keys: str) -> None:
        """Give back the newest unit of a window (a reserved attempt that
        turned out not to count). ``limits`` has no such call: its moving
        window is a newest-first list in both storages this class builds."""
        if not self._enabled:
            return
        key = self._item(limit).key_for(name, *keys)
        try:
            if isinstance(self._storage, MemoryStorage):
                entries = self._storage.events.get(key)
                if entries:
                    entries.pop(0)
            elif isinstance(self._storage, RedisStorage) and \
                    isinstance(self._storage.bridge, RedispyBridge):  # implementation="redispy"
                bridge = self._storage.bridge
                # limits types the redis-py client as its own protocol (limits.typing.
                # AsyncRedisClientP), which lists only the commands limits calls
                await bridge.get_connection().lpop(  # type: ignore[attr-defined]
                    bridge.prefixed_key(key))
        except Exception as exc:
            self._storage_failed("refund", name, exc)

    async def clear(self, name: str, limit: str, *keys: str) -> None:
        try:
            await self._limiter.clear(self._item(limit), name, *keys)
        except Exception as exc:
            self._storage_failed("clear", name, exc)


class Reservation:
    """One unit taken by ``RateLimiter.reserve``: kept unless the caller
    refunds it or clears the window."""

    __slots__ = ("_limiter", "_name", "_limit", "_keys", "_open")

    def __init__(self, limiter: RateLimiter, name: str, limit: str, keys: tuple[str, ...], *,
                 taken: bool) -> None:
        self._limiter = limiter
        self._name = name
        self._limit = limit
        self._keys = keys
        self._open = taken

    async def refund(self) -> None:
        """The attempt does not count (e.g. a successful login from an IP)."""
        if self._open:
            self._open = False
            await self._limiter.refund(self._name, self._limit, *self._keys)

    async def clear(self) -> None:
        """The attempt succeeded and resets the window (e.g. an account's
        failures after the right password)."""
        if self._open:
            self._open = False
            await self._limiter.clear(self._name, self._limit, *self._keys)
