"""Time as a collaborator, so expiry, throttling and presence timeouts can be
tested without sleeping."""

from __future__ import annotations

import time
from datetime import datetime, UTC


class Clock:
    """Wall-clock time, and monotonic time for intervals (rate limits,
    throttles, cache expiry). Tests pass a ``FrozenClock``."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)


class FrozenClock(Clock):
    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` suffix, as the contract's timestamps."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
