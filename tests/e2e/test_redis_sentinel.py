"""Two node processes on Redis behind a real sentinel
(``SKILLSHARE_REDIS_URL=redis+sentinel://…/mymaster/0``): chat, presence and
revocation across the nodes; then the master is killed and, once the
sentinel promoted the replica, fan-out and readiness come back by
themselves with nothing acknowledged lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import TEST_SECRET
from tests.support.realtime import SocketUser, http_json, new_client_id, open_direct, register_user
from tests.support.services import NodeProcess, RedisSentinelProcess, cluster_node_env, running_nodes
import contextlib

RESUME_DEADLINE_S = 10.0


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelProcess]:
    service = RedisSentinelProcess(tmp_path_factory.mktemp("sentinel"))
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def nodes(mongo_url: str, sentinel: RedisSentinelProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    workdir = tmp_path_factory.mktemp("sentinel-nodes")
    env = cluster_node_env(mongo_url=mongo_url, db=f"rs_{uuid.uuid4().hex[:10]}",
                           redis_url=sentinel.url, data_dir=workdir / "data",
                           secret_key=TEST_SECRET, node_ttl=3.0)
    with running_nodes(env, workdir, 2) as procs:
        yield procs


async def _until_ready(url: str) -> None:
    deadline = time.monotonic() + RESUME_DEADLINE_S
    status, body = await http_json("GET", f"{url}/readyz")
    while status != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status, body = await http_json("GET", f"{url}/readyz")
    assert status == 200, body


async def test_cross_node_realtime_survives_a_sentinel_failover(nodes, sentinel):
    one, two = (n.url for n in nodes)
    alice, bob = await register_user(one, "alice"), await register_user(two, "bob")
    room = await open_direct(one, alice["access_token"], bob["id"])
    await open_direct(two, bob["access_token"], alice["id"])
    a = await SocketUser(one, alice["access_token"], name="alice@1").connect()
    b = None
    acked: list[dict] = []

    async def send(body: str) -> dict | None:
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                            "body": body})
        if ack.get("ok"):
            acked.append(ack["message"])
            return ack["message"]
        return None

    try:
        assert (await a.call("presence:subscribe", {"user_ids": [bob["id"]]}))["ok"]
        b = await SocketUser(two, bob["access_token"], name="bob@2").connect()
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "online",
                         timeout=5)
        for s in (a, b):
            assert (await s.call("room:join", {"room_id": room["id"]}))["ok"]
        first = await send("before")
        assert first is not None
        await b.wait_for("message", lambda m: m["id"] == first["id"], timeout=5)

        sentinel.kill_master()
        await asyncio.to_thread(sentinel.wait_promoted)
        promoted = time.monotonic()
        delivered = None
        while delivered is None and time.monotonic() - promoted < RESUME_DEADLINE_S:
            message = await send(f"after {len(acked)}")
            if message is None:
                await asyncio.sleep(0.2)
                continue
            with contextlib.suppress(AssertionError):
                delivered = await b.wait_for("message", lambda m, mid=message["id"]: m["id"] == mid,
                                             timeout=0.5)
        assert delivered is not None, f"no live delivery within {RESUME_DEADLINE_S}s of the promotion"
        synced = await b.call("room:sync", {"room_id": room["id"], "after_seq": 0, "limit": 100})
        assert {m["id"] for m in acked} <= {m["id"] for m in synced["messages"]}
        for url in (one, two):
            await _until_ready(url)

        # revocations still cross the nodes (the control bus follows the new master)
        status, _ = await http_json("POST", f"{two}/api/v1/auth/logout-all", token=alice["access_token"])
        assert status in (200, 204)
        ended = await a.wait_for("session:ended", timeout=5)
        assert ended["reason"] == "token_revoked"
    finally:
        for s in (a, b):
            if s is not None:
                await s.close()
