"""The Redis presence keyspace keeps an offline user's last_seen for a
bounded time, so it does not grow with every user who ever connected."""

from __future__ import annotations

import redis.asyncio as redis

from server.storage.presence import KEY_PREFIX, OFFLINE_RETENTION_S, RedisPresenceStore


async def test_offline_users_expire_and_online_users_do_not(redis_url):
    client = redis.from_url(redis_url)
    try:
        store = RedisPresenceStore(client, node_id="node-a", node_ttl=5)
        await store.reassert({}, now=1.0)
        key = f"{KEY_PREFIX}user:u1"

        assert await store.connect("u1", now=1.0)
        assert await client.ttl(key) == -1  # no expiry while online
        assert await store.disconnect("u1", now=2.0)
        ttl = await client.ttl(key)
        assert OFFLINE_RETENTION_S - 5 <= ttl <= OFFLINE_RETENTION_S
        assert (await store.get_many(["u1"]))["u1"].last_seen == 2.0

        assert await store.connect("u1", now=3.0)
        assert await client.ttl(key) == -1

        # A dead node's users are swept offline and start expiring too.
        other = RedisPresenceStore(client, node_id="node-b", node_ttl=5)
        await other.reassert({"u2": 1}, now=3.0)
        assert await client.ttl(f"{KEY_PREFIX}user:u2") == -1
        await client.delete(f"{KEY_PREFIX}hb:node-b")  # node-b died
        assert await store.sweep(now=4.0) == ["u2"]
        assert await client.ttl(f"{KEY_PREFIX}user:u2") > OFFLINE_RETENTION_S - 5
    finally:
        await client.aclose()
