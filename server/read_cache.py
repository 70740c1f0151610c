"""One small, bounded, time-limited cache for hot public reads (the ids on
listing pages, listings, their reviews, public people), kept correct by
invalidation.

Every write that changes a cached read calls ``changed(namespace, key)``
after it lands: the entry (or, without a key, the whole namespace) is
dropped here at once and the change is announced on the bus (topic
``read_cache_changed``), so every other node drops it too. The bus is
at-most-once: when it reconnects (a message may have been missed) the
whole cache is forgotten, and entries expire after ``ttl`` seconds
(longer for the namespaces in ``NAMESPACE_TTLS``) whatever happens.

A read that began before a change in its namespace does not store what it
read (a per-namespace version is taken when the read starts and compared
when it ends), so a slow read can never put back what a write replaced.

Values are shared between callers: treat them as read-only."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, TypeVar

from cachetools import TLRUCache
from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge

from .bus import Bus

T = TypeVar("T")
TOPIC = "read_cache_changed"
LISTING_PAGES = "listing_pages"  # ordered listing ids of pages and first search pages
LISTINGS = "listings"  # each publicly visible listing by id (the cards pages are drawn from)
REVIEWS = "reviews"  # each listing's newest reviews by listing id (the first review page)
PEOPLE = "people"  # active user documents by id (names on cards, public profiles)
MATCHES = "matches"  # each person's match ranking (any change of anyone's skills drops all)
IDENTITIES = "identities"  # each person's linked sign-in providers, by user id
REQUESTS = "requests"  # each person's newest skill requests (both sides), by user id
ROOMS = "rooms"  # each person's newest room documents (their /rooms page), by user id
BLOCKS = "blocks"  # everyone each person blocked or was blocked by, by user id
READ_MARKERS = "read_markers"  # each (room, person)'s read marker, by its _id
# Blocks live at least this long even where the cache-wide ttl is set
# shorter: every change drops them on every node (server/consent, through
# the awaited consent_changed announcement), so the lifetime bounds only a
# publish that failed while the other nodes' subscriptions stayed up.
NAMESPACE_TTLS = {BLOCKS: 120.0}


class ReadCache:
    def __init__(self, *, maxsize: int, ttl: float, bus: Bus | None = None,
                 registry: CollectorRegistry | None = None,
                 timer: Callable[[], float] | None = None,
                 ttls: Mapping[str, float] = NAMESPACE_TTLS) -> None:
        """``ttl``: seconds an entry lives; ``ttls``: per namespace, where longer."""
        self.enabled = maxsize > 0 and ttl > 0
        kwargs: dict[str, Any] = {"timer": timer} if timer is not None else {}
        lifetimes = {ns: max(ttl, t) for ns, t in ttls.items()}
        default = max(ttl, 0.001)

        def expires(key: tuple[Any, ...], _value: Any, now: float) -> float:
            return now + lifetimes.get(key[0], default)

        self._entries: TLRUCache[tuple[Any, ...], Any] = TLRUCache(
            maxsize=max(maxsize, 1), ttu=expires, **kwargs)
        self._epoch: dict[str, int] = defaultdict(int)  # part of every key: drops a namespace
        self._version: dict[str, int] = defaultdict(int)  # any change: guards reads in flight
        self._bus = bus
        self.node_id = uuid.uuid4().hex
        self._publishing: set[asyncio.Task[None]] = set()
        self._loading: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self._requests = Counter(
            "skillshare_read_cache_requests", "Read cache lookups by namespace and result",
            ["namespace", "result"], registry=registry)
        self._changes = Counter(
            "skillshare_read_cache_changes", "Invalidations by namespace and origin",
            ["namespace", "origin"], registry=registry)
        Gauge("skillshare_read_cache_entries",
              "Entries the read cache holds, all namespaces (at its size, it evicts)",
              registry=registry).set_function(lambda: len(self._entries))
        if bus is not None:
            bus.subscribe(TOPIC, self._on_bus)
            bus.on_reconnect(self._forget_all)

    def _key(self, namespace: str, key: Hashable) -> tuple[Any, ...]:
        return (namespace, self._epoch[namespace], key)

    async def read(self, namespace: str, key: Hashable, load: Callable[[], Awaitable[T]],
                   *, keep: Callable[[T], bool] | None = None) -> T:
        """The cached value, or ``load()``'s (stored unless ``keep`` says
        no, or the namespace changed while loading)."""
        if not self.enabled:
            return await load()
        full = self._key(namespace, key)
        try:
            value = self._entries[full]
        except KeyError:
            pass
        else:
            self._requests.labels(namespace, "hit").inc()
            return value
        # One load per key at a time, the others wait for it; a read that
        # starts after a change does not wait for a load begun before it.
        loading_key = (*full, self._version[namespace])
        in_flight = self._loading.get(loading_key)
        if in_flight is not None:
            self._requests.labels(namespace, "wait").inc()
            return await asyncio.shield(in_flight)
        self._requests.labels(namespace, "miss").inc()
        version = self._version[namespace]
        task = asyncio.ensure_future(load())
        self._loading[loading_key] = task
        try:
            value = await asyncio.shield(task)
        finally:
            if self._loading.get(loading_key) is task:
                del self._loading[loading_key]
        if self._version[namespace] == version and (keep is None or keep(value)):
            self._entries[self._key(namespace, key)] = value
        return value

    def get_many(self, namespace: str, keys: list[str]) -> tuple[dict[str, Any], int]:
        """The cached values among ``keys``, and the namespace's version to
        hand back to ``put_many`` with what was loaded for the others."""
        found: dict[str, Any] = {}
        if self.enabled:
            entries, epoch = self._entries, self._epoch[namespace]
            for key in keys:
                try:  # one lookup (``get`` is two, each reading the clock)
                    value = entries[(namespace, epoch, key)]
                except KeyError:
                    continue
                if value is not None:
                    found[key] = value
            self._requests.labels(namespace, "hit").inc(len(found))
            self._requests.labels(namespace, "miss").inc(len(keys) - len(found))
        return found, self._version[namespace]

    def version(self, namespace: str) -> int:
        """The namespace's version now, for ``put_many`` after a load."""
        return self._version[namespace]

    def put_many(self, namespace: str, values: dict[str, Any], version: int) -> None:
        """Store what was loaded, unless the namespace changed since ``version``."""
        if self.enabled and self._version[namespace] == version:
            for key, value in values.items():
                self._entries[self._key(namespace, key)] = value

    def drop(self, namespace: str, key: Hashable | None = None) -> None:
        """Forget a key, or (``key=None``) the whole namespace, on this node."""
        self._version[namespace] += 1
        if key is None:
            self._epoch[namespace] += 1
        else:
            self._entries.pop(self._key(namespace, key), None)

    async def _forget_all(self) -> None:
        """The bus reconnected: changes announced meanwhile were missed."""
        for namespace in list(self._version):
            self.drop(namespace)
        self._entries.clear()

    def changed(self, namespace: str, key: Hashable | None = None) -> None:
        """A write changed what ``namespace``/``key`` reads: drop it here and
        on every other node (announced in the background)."""
        self.drop(namespace, key)
        self._changes.labels(namespace, "local").inc()
        if self._bus is None:
            return
        payload = {"node": self.node_id, "namespace": namespace, "key": key}
        try:
            task = asyncio.get_running_loop().create_task(self._announce(payload),
                                                          name="read-cache-announce")
        except RuntimeError:  # no loop (a CLI tool writing): nobody else to tell here
            return
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _announce(self, payload: dict[str, Any]) -> None:
        assert self._bus is not None
        try:
            await self._bus.publish(TOPIC, payload)
        except Exception:  # counted by the bus; entries still expire after ttl
            logger.warning("read cache: could not announce a change to {}", payload["namespace"])

    async def _on_bus(self, payload: dict[str, Any]) -> None:
        if payload.get("node") == self.node_id:
            return
        namespace, key = payload.get("namespace"), payload.get("key")
        if not isinstance(namespace, str):
            return
        self.drop(namespace, key if isinstance(key, str) else None)
        self._changes.labels(namespace, "bus").inc()

    async def flush(self) -> None:
        """Wait for announcements in flight (shutdown, tests)."""
        if self._publishing:
            await asyncio.gather(*list(self._publishing), return_exceptions=True)
