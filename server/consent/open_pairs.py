"""Pairs of people this node recently found with no block between them,
for checks made many times a conversation (typing indicators).

A pair found open is trusted for ``ttl`` seconds unless a consent change
about either person (``ConsentService.changed``: here at once, on other
nodes through the bus) arrives first; a check that read the database
before such a change does not store what it read. The ``ttl`` bounds the
staleness if a bus message is lost (the bus is at-most-once); a bus
reconnect forgets everything."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cachetools import TTLCache

OPEN_PAIR_TTL_S = 10.0
MAX_PAIRS = 100_000
# Changes remembered per person: the ttl's worth of consent changes. More
# than this many in one ttl and every pair is forgotten instead.
MAX_CHANGES = 100_000


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


class OpenPairs:
    def __init__(self, *, timer: Callable[[], float], ttl: float = OPEN_PAIR_TTL_S,
                 max_pairs: int = MAX_PAIRS, max_changes: int = MAX_CHANGES) -> None:
        self._version = 0  # counts changes: a pair stores the version its read began at
        self._pairs: TTLCache[tuple[str, str], int] = TTLCache(max_pairs, ttl, timer=timer)
        # each changed person's version at their last change, kept as long as a pair
        self._changed: TTLCache[str, int] = TTLCache(max_changes, ttl, timer=timer)

    def version(self) -> int:
        """Take before reading the database; hand to ``remember_open``."""
        return self._version

    def _unchanged_since(self, user_id: str, version: int) -> bool:
        return self._changed.get(user_id, -1) <= version

    def is_open(self, a: str, b: str) -> bool:
        version = self._pairs.get(_pair(a, b))
        return (version is not None and self._unchanged_since(a, version)
                and self._unchanged_since(b, version))

    def remember_open(self, a: str, b: str, version: int) -> None:
        """No block between ``a`` and ``b``, as read after ``version()``
        returned ``version``."""
        if self._unchanged_since(a, version) and self._unchanged_since(b, version):
            self._pairs[_pair(a, b)] = version

    def changed(self, user_ids: Iterable[str]) -> None:
        """Consent changed for these people: their pairs are not trusted."""
        ids = list(user_ids)
        self._version += 1
        if len(self._changed) + len(ids) > self._changed.maxsize:
            self.forget_all()  # (a full ledger would evict a change a pair still needs)
            return
        for user_id in ids:
            self._changed[user_id] = self._version

    def forget_all(self) -> None:
        self._version += 1
        self._pairs.clear()
        self._changed.clear()
