"""A node that stops hearing the bus (its subscriber connection stays open but
delivers nothing, python-socketio #1581/#826) notices through its own canary,
answers 503 on /readyz naming the bus, re-subscribes by itself and counts it;
nodes list their live peers from each other's heartbeats."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import msgpack
import pytest
import redis.asyncio as redis

from server.bus import CHANNEL_PREFIX
from server.keys import BUS
from tests.support.market import new_admin
from tests.support.realtime import SocketUser, new_client_id, open_direct, register_user
from tests.support.services import RedisProcess
from tests.support.tcp_proxy import TcpProxy

FAST_CANARY = {"bus_canary_interval": 0.2, "bus_canary_timeout": 1.0}
DEADLINE_S = 15.0


@pytest.fixture
async def proxy(redis_url: str, redis_process: RedisProcess) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy(redis_process.port).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def _until(check, *, timeout: float = DEADLINE_S, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _resubscribed(client, channel: str, *, at_least: int) -> bool:
    text = await (await client.get("/metrics")).text()
    match = re.search(rf'^skillshare_bus_resubscribes_total{{channel="{channel}"}} (\S+)$', text, re.M)
    return bool(match) and float(match.group(1)) >= at_least


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


async def test_a_deaf_subscriber_is_noticed_reported_and_recovered(make_client, proxy, redis_process):
    client = await make_client(redis_url=proxy.url(), **FAST_CANARY)
    assert (await client.get("/readyz")).status == 200
    heard: list[dict] = []

    async def on_probe(payload: dict) -> None:
        heard.append(payload)

    client.app[BUS].subscribe("test_probe", on_probe)
    assert proxy.deafen(b"PSUBSCRIBE") == 1

    async def not_ready():
        resp = await client.get("/readyz")
        return resp.status == 503 and "bus" in (await resp.json())["error"]["details"]["failing"]

    await _until(not_ready, what="/readyz 503 naming the bus")
    # still deaf on a new connection: it keeps trying, once per timeout
    await _until(lambda: _resubscribed(client, "bus", at_least=2), what="a second re-subscription")
    proxy.hear_again()

    async def ready_again():
        return (await client.get("/readyz")).status == 200

    await _until(ready_again, what="/readyz 200 after re-subscribing")
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, 'skillshare_bus_deaf_total{channel="bus"}') >= 1
    assert _metric(metrics, 'skillshare_bus_hearing{channel="bus"}') == 1

    # it hears what other nodes publish again, without anyone restarting it
    other = redis.Redis(port=redis_process.port)
    try:
        async def delivered():
            await other.publish(CHANNEL_PREFIX + "test_probe",
                                msgpack.packb({"n": 1}, use_bin_type=True))
            await asyncio.sleep(0.1)
            return heard

        await _until(delivered, what="a bus message after recovery")
    finally:
        await other.aclose()


async def test_nodes_list_their_live_peers(make_client, redis_url):
    first = await make_client(redis_url=redis_url, **FAST_CANARY)
    second = await make_client(redis_url=redis_url, **FAST_CANARY)
    admin = await new_admin(first)

    async def both_listed():
        resp = await first.get("/api/v1/admin/nodes", headers=admin["headers"])
        assert resp.status == 200, await resp.text()
        items = (await resp.json())["items"]
        return items if len(items) == 2 else None

    items = await _until(both_listed, what="two live nodes")
    assert sum(1 for item in items if item["self"]) == 1
    assert all(item["node_id"] and item["last_seen_s"] >= 0 for item in items)
    metrics = await (await first.get("/metrics")).text()
    assert _metric(metrics, "skillshare_cluster_nodes") == 2

    await second.close()  # a clean stop says goodbye: gone from the list at once

    async def one_left():
        resp = await first.get("/api/v1/admin/nodes", headers=admin["headers"])
        items = (await resp.json())["items"]
        return len(items) == 1 and items[0]["self"]

    await _until(one_left, what="the stopped node to leave the list")


async def test_the_node_list_is_for_admins_only(make_client, redis_url):
    from tests.support.market import new_user

    client = await make_client(redis_url=redis_url)
    user = await new_user(client, "Someone")
    resp = await client.get("/api/v1/admin/nodes", headers=user["headers"])
    assert resp.status == 403
    assert (await client.get("/api/v1/admin/nodes")).status == 401


async def test_a_deaf_fan_out_subscriber_is_noticed_and_recovered(make_client, proxy):
    """python-socketio #1581/#826: the Socket.IO manager's subscriber hears
    nothing while its connection stays open; cross-node chat stops silently."""
    nodes = [await make_client(redis_url=proxy.url(), **FAST_CANARY) for _ in range(2)]
    urls = [str(n.make_url("")).rstrip("/") for n in nodes]
    alice, bob = await register_user(urls[0], "alice"), await register_user(urls[1], "bob")
    room = await open_direct(urls[0], alice["access_token"], bob["id"])
    a = await SocketUser(urls[0], alice["access_token"], name="alice@0").connect()
    b = await SocketUser(urls[1], bob["access_token"], name="bob@1").connect()
    try:
        for s in (a, b):
            assert (await s.call("room:join", {"room_id": room["id"]}))["ok"]
        assert proxy.deafen(b"SUBSCRIBE\r\n$19\r\nskillshare:socketio") == 2

        async def not_ready():
            resp = await nodes[1].get("/readyz")
            return resp.status == 503 and "fanout" in (await resp.json())["error"]["details"]["failing"]

        await _until(not_ready, what="/readyz 503 naming the fan-out")
        proxy.hear_again()

        async def ready_again():
            return all([(await n.get("/readyz")).status == 200 for n in nodes])

        await _until(ready_again, what="/readyz 200 after re-subscribing")
        metrics = await (await nodes[1].get("/metrics")).text()
        assert _metric(metrics, 'skillshare_bus_deaf_total{channel="fanout"}') >= 1

        sent = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                             "body": "heard again"})
        assert sent["ok"], sent
        await b.wait_for("message", lambda m: m["id"] == sent["message"]["id"], timeout=5)
    finally:
        for s in (a, b):
            await s.close()
