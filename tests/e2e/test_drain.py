"""A rolling deploy, for real: two node processes behind a small load
balancer (tests/support/tcp_proxy.py, the next upstream when one refuses),
one of them SIGTERMed while a client on it sends a steady stream of chat
messages. The client is told ``node_draining``, reconnects through the
balancer to the other node and goes on; every acknowledged message is
stored, delivered and in ``room:sync``, with gap-free seqs; the drained node
exits 0."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio

from tests.conftest import TEST_SECRET
from tests.support.realtime import SocketUser, new_client_id, open_direct, register_user
from tests.support.services import NodeProcess, RedisProcess, cluster_node_env, running_nodes
from tests.support.tcp_proxy import TcpProxy

MESSAGES = 40
SEND_INTERVAL_S = 0.05
DRAIN_TIMEOUT_S = 5
JITTER_S = 0.5  # what the SDK spreads reconnections over (smaller here)
JS_CLIENT = Path(__file__).resolve().parents[1] / "js" / "drain_sdk_client.mjs"


@pytest.fixture
def two_nodes(mongo_url: str, redis_process: RedisProcess, tmp_path: Path) -> Iterator[list[NodeProcess]]:
    if redis_process.proc is None or redis_process.proc.poll() is not None:
        redis_process.start()
    env = cluster_node_env(mongo_url=mongo_url, db=f"d_{uuid.uuid4().hex[:10]}",
                           redis_url=redis_process.url, data_dir=tmp_path / "data",
                           secret_key=TEST_SECRET, node_ttl=3.0,
                           drain_timeout=str(DRAIN_TIMEOUT_S))
    with running_nodes(env, tmp_path, 2) as nodes:
        yield nodes


class MovingClient:
    """A Socket.IO client that does what the SDK does on ``node_draining``:
    once disconnected, reconnects to the balancer after a random delay and
    joins its room again; an event refused or unanswered meanwhile is sent
    again with the same ``client_id``."""

    def __init__(self, url: str, token: str, room_id: str) -> None:
        self.url, self.token, self.room_id = url, token, room_id
        self.sio = socketio.AsyncClient(reconnection=False)
        self.endings: list[dict] = []
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self.sio.on("session:ended", self.endings.append)
        self.sio.on("disconnect", self._on_disconnect)

    async def connect(self) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"],
                               wait_timeout=10)
        ack = await self.sio.call("room:join", {"room_id": self.room_id}, timeout=10)
        assert ack["ok"], ack
        self.connected.set()

    async def _on_disconnect(self, *args) -> None:
        self.connected.clear()
        if self.endings and self.endings[-1].get("reason") == "node_draining":
            self._task = asyncio.create_task(self._move())

    async def _move(self) -> None:
        await asyncio.sleep(random.uniform(0, JITTER_S))
        for _ in range(50):
            try:
                self.sio = _fresh(self)
                await self.connect()
                self.reconnects += 1
                return
            except Exception:
                await asyncio.sleep(0.2)

    async def send(self, body: str) -> dict:
        client_id = new_client_id()
        while True:
            await asyncio.wait_for(self.connected.wait(), 30)
            try:
                ack = await self.sio.call("message:send", {
                    "room_id": self.room_id, "client_id": client_id, "body": body}, timeout=5)
            except Exception:
                await asyncio.sleep(0.1)
                continue
            if ack.get("ok"):
                return ack["message"]
            assert ack["error"]["code"] in ("rate_limited", "unavailable"), ack
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        if self._task is not None:
            await self._task
        if self.sio.connected:
            await self.sio.disconnect()


def _fresh(client: MovingClient) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("session:ended", client.endings.append)
    sio.on("disconnect", client._on_disconnect)
    return sio


async def test_sigterm_moves_clients_to_the_other_node_without_losing_acked_messages(two_nodes):
    node_a, node_b = two_nodes
    balancer = await TcpProxy(node_a.port, node_b.port).start()
    alice = await register_user(node_a.url, "alice")
    bob = await register_user(node_b.url, "bob")
    room = await open_direct(node_a.url, alice["access_token"], bob["id"])
    receiver = await SocketUser(node_b.url, bob["access_token"], name="bob@B").connect()
    sender = MovingClient(f"http://127.0.0.1:{balancer.port}", alice["access_token"], room["id"])
    try:
        assert (await receiver.call("room:join", {"room_id": room["id"]}))["ok"]
        await sender.connect()
        assert balancer.connections[node_a.port] >= 1  # on node A, through the balancer

        acked: list[dict] = []
        exit_code: asyncio.Future = asyncio.get_running_loop().create_future()

        async def send_all() -> None:
            for i in range(MESSAGES):
                acked.append(await sender.send(f"message {i}"))
                if i == MESSAGES // 4:  # a rolling deploy starts mid-conversation
                    task = asyncio.create_task(asyncio.to_thread(node_a.terminate, 60.0))
                    task.add_done_callback(lambda t: exit_code.set_result(t.result()))
                await asyncio.sleep(SEND_INTERVAL_S)

        await asyncio.wait_for(send_all(), 120)
        assert await asyncio.wait_for(exit_code, 60) == 0
        assert {"reason": "node_draining"} in sender.endings
        assert sender.reconnects >= 1 and balancer.connections[node_b.port] >= 1

        seqs = [m["seq"] for m in acked]
        assert seqs == list(range(1, MESSAGES + 1))  # one seq per message, no gap, no repeat
        for message in acked:
            await receiver.wait_for("message", lambda m, mid=message["id"]: m["id"] == mid, timeout=10)
        synced = await receiver.call("room:sync", {"room_id": room["id"], "after_seq": 0, "limit": 100})
        assert [m["id"] for m in synced["messages"]] == [m["id"] for m in acked]
    finally:
        await sender.close()
        await receiver.close()
        await balancer.stop()


async def test_the_js_sdk_moves_to_the_other_node_when_its_node_drains(two_nodes):
    node_a, node_b = two_nodes
    balancer = await TcpProxy(node_a.port, node_b.port).start()
    alice = await register_user(node_a.url, "alice")
    bob = await register_user(node_b.url, "bob")
    room = await open_direct(node_a.url, alice["access_token"], bob["id"])
    receiver = await SocketUser(node_b.url, bob["access_token"], name="bob@B").connect()
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(JS_CLIENT), f"http://127.0.0.1:{balancer.port}",
        alice["email"], alice["password"], room["id"], str(MESSAGES),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    acked: list[dict] = []
    summary: dict = {}
    terminating: asyncio.Task | None = None
    try:
        assert (await receiver.call("room:join", {"room_id": room["id"]}))["ok"]
        assert proc.stdout is not None
        while line := await asyncio.wait_for(proc.stdout.readline(), 90):
            event = json.loads(line)
            if "acked" in event:
                acked.append(event["acked"])
                if len(acked) == MESSAGES // 4:
                    assert balancer.connections[node_a.port] >= 1
                    terminating = asyncio.create_task(asyncio.to_thread(node_a.terminate, 60.0))
            else:
                summary = event
        assert await proc.wait() == 0, (summary, (await proc.stderr.read()).decode()[-2000:])
        assert terminating is not None and await terminating == 0
        assert summary.get("done"), summary
        assert {"state": "connecting", "reason": "node_draining"} in summary["states"]
        assert summary["states"][-1]["state"] == "connected"
        assert balancer.connections[node_b.port] >= 1

        assert [m["seq"] for m in acked] == list(range(1, MESSAGES + 1))
        synced = await receiver.call("room:sync", {"room_id": room["id"], "after_seq": 0, "limit": 100})
        assert [m["id"] for m in synced["messages"]] == [m["id"] for m in acked]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await receiver.close()
        await balancer.stop()
