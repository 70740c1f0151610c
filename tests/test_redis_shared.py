"""Two app instances on one real redis-server share rate limits and
revocations, as two nodes would."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis
from loguru import logger
from redis.crc import key_slot

from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, register
from tests.support.realtime import SocketUser, register_user


async def test_logout_on_one_node_is_refused_on_the_other(make_client, redis_url):
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    account = await register(node_a)
    headers = bearer(account["access_token"])
    assert (await node_b.get("/api/v1/users/me", headers=headers)).status == 200
    assert (await node_a.post("/api/v1/auth/logout", headers=headers)).status == 204
    resp = await node_b.get("/api/v1/users/me", headers=headers)
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "token_revoked"


async def test_login_throttle_holds_across_nodes(make_client, redis_url):
    node_a = await make_client(redis_url=redis_url, login_account_limit="4/15minutes")
    node_b = await make_client(redis_url=redis_url, login_account_limit="4/15minutes")
    account = await register(node_a)
    for node in (node_a, node_b, node_a, node_b):
        resp = await node.post("/api/v1/auth/login",
                               json={"email": account["email"], "password": "wrong password 1"})
        assert resp.status == 401
    for node in (node_a, node_b):
        resp = await node.post("/api/v1/auth/login",
                               json={"email": account["email"], "password": DEFAULT_PASSWORD})
        assert resp.status == 429


async def test_readyz_reports_redis(make_client, redis_url):
    client = await make_client(redis_url=redis_url)
    body = await (await client.get("/readyz")).json()
    assert body["checks"] == {"database": "ok", "redis": "ok"}


async def test_redis_down_logins_still_work_and_token_checks_fail_closed(
        make_client, redis_process, redis_url):
    client = await make_client(redis_url=redis_url)
    account = await register(client)
    redis_process.stop()
    try:
        # Rate limits fail open (logged once, short): signing in does not depend on Redis.
        lines: list[str] = []
        sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
        try:
            for _ in range(3):
                resp = await client.post("/api/v1/auth/login", json={
                    "email": account["email"], "password": DEFAULT_PASSWORD})
                assert resp.status == 200
        finally:
            logger.remove(sink)
        storage_lines = [line for line in lines if "rate limit storage" in line]
        assert len(storage_lines) == 1, storage_lines
        assert "Traceback" not in "".join(lines)
        # Revocations cannot be checked: refuse with 503, never let a revoked token in.
        resp = await client.get("/api/v1/users/me", headers=bearer(account["access_token"]))
        assert resp.status == 503
        assert (await error_of(resp))["code"] == "unavailable"
        # The control bus's listener noticed and is counted for operators.
        for _ in range(50):
            metrics = await (await client.get("/metrics")).text()
            if "skillshare_redis_bus_errors_total 0.0" not in metrics:
                break
            await asyncio.sleep(0.1)
        assert "skillshare_redis_bus_errors_total 0.0" not in metrics
        assert "skillshare_redis_bus_errors_total" in metrics
    finally:
        redis_process.start()
    resp = await client.get("/api/v1/users/me", headers=bearer(account["access_token"]))
    assert resp.status == 200


async def test_a_logout_survives_redis_losing_its_data(make_client, redis_process, redis_url):
    """Redis restarts empty (no persistence): once the nodes are reconnected,
    the revoked session is refused again on every node."""
    node_a = await make_client(redis_url=redis_url)
    node_b = await make_client(redis_url=redis_url)
    account = await register(node_a)
    headers = bearer(account["access_token"])
    assert (await node_a.post("/api/v1/auth/logout", headers=headers)).status == 204
    redis_process.stop()
    redis_process.start()
    statuses: list[int] = []
    for _ in range(100):  # until the buses have reconnected and restored
        statuses = [(await node.get("/api/v1/users/me", headers=headers)).status
                    for node in (node_a, node_b)]
        if statuses == [401, 401]:
            break
        await asyncio.sleep(0.1)
    assert statuses == [401, 401]
    resp = await node_b.get("/api/v1/users/me", headers=headers)
    assert (await error_of(resp))["code"] == "token_revoked"


async def test_requests_after_a_redis_restart_get_no_503_from_stale_connections(
        make_client, redis_process, redis_url):
    """Found by the chaos soak: every connection pooled before Redis restarted
    failed its next command with 503, however long after the restart."""
    client = await make_client(redis_url=redis_url)
    account = await register(client)
    headers = bearer(account["access_token"])

    async def burst() -> list[int]:
        resps = await asyncio.gather(*(client.get("/api/v1/users/me", headers=headers)
                                       for _ in range(20)))
        return [r.status for r in resps]

    assert set(await burst()) == {200}  # fills the pool with several connections
    redis_process.kill()
    redis_process.start()
    assert set(await burst()) == {200}


async def test_every_redis_key_and_channel_is_under_the_configured_prefix(make_client, redis_url):
    prefix = "tenant-b:"
    node_a = await make_client(redis_url=redis_url, redis_key_prefix=prefix)
    node_b = await make_client(redis_url=redis_url, redis_key_prefix=prefix)
    base = str(node_a.make_url("")).rstrip("/")
    alice, bob = await register_user(base, "alice"), await register_user(base, "bob")
    sock = await SocketUser(base, alice["access_token"], name="alice").connect()  # presence
    try:
        # A stranger is not told that bob is offline: the call rings (call state).
        ack = await sock.call("call:invite", {"user_id": bob["id"], "media": {"audio": True}})
        assert ack["ok"], ack
    finally:
        await sock.close()
    resp = await node_a.post("/api/v1/auth/login", json={"email": bob["email"], "password": "wrong!"})
    assert resp.status == 401  # counted by the login throttle
    headers = bearer(bob["access_token"])
    assert (await node_a.post("/api/v1/auth/logout", headers=headers)).status == 204
    assert (await node_b.get("/api/v1/users/me", headers=headers)).status == 401  # shared revocation

    client = redis.from_url(redis_url)
    try:
        keys = [key.decode() async for key in client.scan_iter()]
        channels = {channel.decode() for channel in await client.pubsub_channels()}
    finally:
        await client.aclose()
    assert keys and [key for key in keys if not key.startswith(prefix)] == []
    groups = {name: [key for key in keys if key.startswith(prefix + name)]
              for name in ("{presence}:", "{calls}:", "revoked:sid:", "limits:")}
    assert all(groups.values()), groups
    # Each hash-tagged keyspace is one slot, so its scripts run on a Redis Cluster.
    assert len({key_slot(key.encode()) for key in groups["{presence}:"]}) == 1
    assert len({key_slot(key.encode()) for key in groups["{calls}:"]}) == 1
    assert f"{prefix}socketio" in channels
