"""Socket.IO protocol fuzzer against a real node (``python -m server serve``):
seeded random attacks at the engine.io and socket.io layers, over websocket
and long-polling (tests/support/protocol_fuzz.py). Throughout, the node keeps
serving /healthz and a well-behaved pair keeps chatting; every misbehaving
connection is closed; the node's RSS and log stay bounded.

``SKILLSHARE_FUZZ_SEED=<n>`` replays a run (the seed is printed)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import TEST_SECRET
from tests.support.protocol_fuzz import ATTACKS, Fuzzer, Outcome, acks_out_of_order
from tests.support.rawsocket import rss_kib
from tests.support.realtime import SocketUser, new_client_id, open_direct, register_user
from tests.support.services import NodeProcess, RedisProcess, one_node

PING_INTERVAL_S, PING_TIMEOUT_S = 2.0, 3.0  # so half-open clients are found quickly
CONCURRENCY = 8
USERS = 6
RSS_GROWTH_LIMIT_KIB = 48 * 1024
LOG_BYTES_PER_ATTACK = 400  # one short line per closed connection, with room to spare
MAX_LOG_LINE = 300
ATTACK_TIMEOUT_S = 30.0
CHECK_INTERVAL_S = 0.5


@pytest.fixture(scope="module")
def node(mongo_url: str, redis_process: RedisProcess,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with one_node(mongo_url=mongo_url, redis_process=redis_process,
                  workdir=tmp_path_factory.mktemp("fuzz-node"), secret_key=TEST_SECRET,
                  node_ttl=3.0,
                  socket_ping_interval=str(PING_INTERVAL_S),
                  socket_ping_timeout=str(PING_TIMEOUT_S)) as proc:
        yield proc


async def _healthy(node: NodeProcess) -> None:
    assert node.proc is not None and node.proc.poll() is None, "the node died"
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/healthz") as resp:
        assert resp.status == 200


async def _chat(alice: SocketUser, bob: SocketUser, room_id: str) -> None:
    assert alice.sio.connected and bob.sio.connected, (
        f"well-behaved client disconnected: {alice.events[-3:]} {bob.events[-3:]}")
    client_id = new_client_id()
    ack = await alice.call("message:send", {"room_id": room_id, "client_id": client_id,
                                            "body": "still here"})
    assert ack["ok"], ack
    await bob.wait_for("message", lambda m: m["client_id"] == client_id, timeout=5)


async def _bounded(attack, fuzzer: Fuzzer, seed: int) -> Outcome:  # noqa: ANN001
    try:
        return await asyncio.wait_for(attack(fuzzer, random.Random(seed)), ATTACK_TIMEOUT_S)
    except TimeoutError:
        return Outcome(attack.__name__, False, True, f"hung (attack seed {seed})")


async def _fuzz(node: NodeProcess, attacks: int, seed: int) -> None:
    print(f"\nprotocol fuzzer: seed {seed} (SKILLSHARE_FUZZ_SEED={seed} replays it), "
          f"{attacks} attacks")
    rng = random.Random(seed)
    users = [await register_user(node.url, f"fuzz{i}") for i in range(USERS)]
    alice, bob = await register_user(node.url, "alice"), await register_user(node.url, "bob")
    room = await open_direct(node.url, alice["access_token"], bob["id"])
    a = await SocketUser(node.url, alice["access_token"], name="alice").connect()
    b = await SocketUser(node.url, bob["access_token"], name="bob").connect()
    fuzzer = Fuzzer(node.url, [u["access_token"] for u in users],
                    half_open_wait=PING_INTERVAL_S + PING_TIMEOUT_S)
    try:
        await _chat(a, b, room["id"])
        assert node.proc is not None
        rss_before, log_before = rss_kib(node.proc.pid), len(node.log())
        plan = [(rng.choice(ATTACKS), rng.randrange(2**32)) for _ in range(attacks)]
        plan.reverse()
        outcomes: list[Outcome] = []
        started = time.monotonic()

        async def attacker() -> None:
            while plan:
                attack, attack_seed = plan.pop()
                outcomes.append(await _bounded(attack, fuzzer, attack_seed))

        async def bystanders() -> int:
            """Meanwhile the node serves and a well-behaved pair chats."""
            rounds = 0
            while not done.is_set() or rounds == 0:
                await _healthy(node)
                await _chat(a, b, room["id"])
                await acks_out_of_order(node.url, alice["access_token"], rng)
                rounds += 1
                await asyncio.sleep(CHECK_INTERVAL_S)
            return rounds

        done = asyncio.Event()
        checks = asyncio.ensure_future(bystanders())
        await asyncio.gather(*(attacker() for _ in range(CONCURRENCY)))
        done.set()
        rounds = await checks
        await _healthy(node)
        await _chat(a, b, room["id"])
        rss_grown = rss_kib(node.proc.pid) - rss_before
        log = node.log()[log_before:]
    finally:
        await a.close()
        await b.close()
    by_attack = Counter(o.attack for o in outcomes)
    closed = sum(o.closed for o in outcomes)
    print(f"protocol fuzzer: {len(outcomes)} attacks in {time.monotonic() - started:.1f}s, "
          f"{closed} connections closed by the node, RSS +{rss_grown} KiB, "
          f"log +{len(log)} bytes, {rounds} bystander rounds; {dict(sorted(by_attack.items()))}")
    stayed_open = [o for o in outcomes if o.must_close and not o.closed]
    assert not stayed_open, f"seed {seed}: misbehaving clients not disconnected: {stayed_open[:5]}"
    assert rss_grown < RSS_GROWTH_LIMIT_KIB, f"seed {seed}: node grew {rss_grown} KiB"
    assert "Traceback" not in log, f"seed {seed}: {log[-3000:]}"
    assert len(log) <= LOG_BYTES_PER_ATTACK * len(outcomes), f"seed {seed}: log +{len(log)} bytes"
    long_lines = [line for line in log.splitlines() if len(line) > MAX_LOG_LINE]
    assert not long_lines, f"seed {seed}: {long_lines[:3]}"
    for user in users:
        assert user["access_token"] not in log


def _seed() -> int:
    return int(os.environ.get("SKILLSHARE_FUZZ_SEED") or random.randrange(2**32))


async def test_protocol_fuzz_bounded(node):
    await _fuzz(node, attacks=200, seed=_seed())


@pytest.mark.slow
async def test_protocol_fuzz_long(node):
    await _fuzz(node, attacks=3000, seed=_seed())
