"""The read cache's lifetimes: a namespace dropped by every change that can
alter it (``blocks``) lives longer than the public reads, and a bus
reconnect (a change may have been missed meanwhile) forgets every entry."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis
from prometheus_client import CollectorRegistry

from server.bus import RedisBus
from server.read_cache import BLOCKS, LISTINGS, NAMESPACE_TTLS, ReadCache
from tests.support.services import RedisProcess


class Timer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Loads:
    """A loader that counts its calls and returns the count."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> int:
        self.count += 1
        return self.count


async def test_blocks_outlive_the_public_reads_and_expire_after_their_own_lifetime():
    timer = Timer()
    cache = ReadCache(maxsize=100, ttl=30.0, timer=timer)
    listing, blocks = Loads(), Loads()
    assert await cache.read(LISTINGS, "l1", listing) == 1
    assert await cache.read(BLOCKS, "ada", blocks) == 1
    timer.now = 31.0
    assert await cache.read(LISTINGS, "l1", listing) == 2  # expired
    assert await cache.read(BLOCKS, "ada", blocks) == 1  # still kept
    timer.now = NAMESPACE_TTLS[BLOCKS] + 1
    assert await cache.read(BLOCKS, "ada", blocks) == 2


async def test_a_lifetime_shorter_than_the_cache_wide_one_is_not_used():
    timer = Timer()
    cache = ReadCache(maxsize=100, ttl=3600.0, timer=timer, ttls={BLOCKS: 10.0})
    blocks = Loads()
    assert await cache.read(BLOCKS, "ada", blocks) == 1
    timer.now = 600.0
    assert await cache.read(BLOCKS, "ada", blocks) == 1


async def test_a_bus_reconnect_forgets_every_entry(redis_url: str, redis_process: RedisProcess):
    client = redis.from_url(redis_url)
    bus = RedisBus(client)
    cache = ReadCache(maxsize=100, ttl=3600.0, bus=bus)
    await bus.start()
    try:
        listing, blocks = Loads(), Loads()
        assert await cache.read(LISTINGS, "l1", listing) == 1
        assert await cache.read(BLOCKS, "ada", blocks) == 1
        assert await cache.read(BLOCKS, "ada", blocks) == 1  # cached
        async with redis.from_url(redis_url) as admin:
            assert await admin.client_kill_filter(_type="pubsub") >= 1
        async with asyncio.timeout(20):
            while await cache.read(BLOCKS, "ada", blocks) == 1:
                await asyncio.sleep(0.05)
        assert await cache.read(LISTINGS, "l1", listing) == 2
    finally:
        await bus.stop()
        await client.aclose()


async def test_the_number_of_entries_is_exported():
    registry = CollectorRegistry()
    cache = ReadCache(maxsize=2, ttl=30.0, registry=registry)
    entries = lambda: registry.get_sample_value("skillshare_read_cache_entries")  # noqa: E731
    assert entries() == 0
    await cache.read(LISTINGS, "l1", Loads())
    await cache.read(BLOCKS, "ada", Loads())
    assert entries() == 2
    await cache.read(LISTINGS, "l2", Loads())  # full: the least recently used goes
    assert entries() == 2
