"""Calls through a real coturn: ``turnserver`` started from the kit's
``config/turnserver.conf`` (tests/support/services.py ``TurnProcess``) with
the node's TURN secret, and two SDK clients in headless Chromium
(clients/js-sdk/test/browser/call-turn.browser.test.mjs): TURN-only calls
over UDP and TCP with video decoded both ways, credentials expiring
mid-call, wrong and stale credentials failing with ``turn_failed``, and the
fallback order direct -> TURN -> server relay in call:stats and metrics."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from server.media.turn import turn_credentials
from tests.support.services import TurnProcess

from ._node import explain, run_node_tests
from .test_browser import _require_chromium

#: call-turn.browser.test.mjs: UDP, TCP, expiry, wrong, stale, fallback order.
TURN_BROWSER_TESTS = 6
#: Credential lifetime in the protocol-level test: expires within it.
SHORT_TTL_S = 2
#: LIFETIME asked for in Allocate/Refresh (coturn's default; the test coturn
#: caps it to ``TurnProcess.allocation_lifetime_s``).
ALLOCATION_REQUEST_S = 600
CHANNEL_REFRESH_S = 500
#: Generous bound on one STUN transaction (retransmissions included) on loopback.
STUN_WAIT_S = 15


def test_calls_through_coturn_in_chromium(tmp_path: Path) -> None:
    _require_chromium()
    turn = TurnProcess(tmp_path, secret=secrets.token_urlsafe(24))
    turn.start()
    try:
        run = run_node_tests(["test/browser/call-turn.browser.test.mjs"], env={
            "SKILLSHARE_TEST_TURN_PORT": str(turn.port),
            "SKILLSHARE_TEST_TURN_SECRET": turn.secret,
        })
        log = turn.log()
    finally:
        turn.stop()
    assert run.returncode == 0 and run.failed == 0, explain(run) + "\ncoturn log:\n" + log[-4000:]
    assert run.passed == TURN_BROWSER_TESTS, explain(run)
    # The kit's file parsed cleanly, and the media went through this coturn
    # with refreshed allocations.
    assert "CONFIGURATION ALERT" not in log, log[:6000]
    assert "ALLOCATE processed, success" in log, log[-4000:]
    assert "REFRESH processed, success" in log, log[-4000:]


class _Received(asyncio.DatagramProtocol):
    """Datagrams that reach one end, as (data, source) pairs."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.items.put_nowait((data, addr))


async def _allocate(turn: TurnProcess, username: str, password: str) -> TurnClientUdpProtocol:
    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", turn.port)
    _, client = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(server, username=username, password=password,
                                      lifetime=ALLOCATION_REQUEST_S, channel_refresh_time=CHANNEL_REFRESH_S),
        remote_addr=server,
    )
    try:
        await asyncio.wait_for(client.connect(), STUN_WAIT_S)
    except BaseException:
        client.transport.close()
        raise
    return client


async def _refresh(client: TurnClientUdpProtocol) -> int:
    request = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
    request.attributes["LIFETIME"] = ALLOCATION_REQUEST_S
    response, _ = await asyncio.wait_for(client.request_with_retry(request), STUN_WAIT_S)
    return response.attributes["LIFETIME"]


async def _allocation_error(turn: TurnProcess, username: str, password: str) -> int:
    try:
        client = await _allocate(turn, username, password)
    except stun.TransactionFailed as exc:
        return exc.response.attributes["ERROR-CODE"][0]
    await client.delete()
    raise AssertionError(f"coturn allocated for {username!r}")


async def test_coturn_refreshes_an_allocation_after_its_credentials_expired(tmp_path: Path) -> None:
    """Protocol level, against the same coturn set-up: the node's
    credentials allocate; after they expire the live allocation is still
    refreshed and relays both ways (what keeps a call's media), while a new
    allocation with them, or with a wrong password, is refused with 401."""
    secret = secrets.token_urlsafe(24)
    turn = TurnProcess(tmp_path, secret=secret)
    turn.start()
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(_Received, local_addr=("127.0.0.1", 0))
    peer_addr = peer_transport.get_extra_info("sockname")
    client = None
    try:
        username, password = turn_credentials(user_id="u1", secret=secret, ttl_s=SHORT_TTL_S, now=time.time())
        client = await _allocate(turn, username, password)
        relayed = _Received()
        client.receiver = relayed
        await client.send_data(b"before expiry", peer_addr)
        data, source = await asyncio.wait_for(peer.items.get(), STUN_WAIT_S)
        assert (data, source) == (b"before expiry", client.relayed_address)

        expiry = int(username.split(":")[0])
        await asyncio.sleep(expiry + 1 - time.time())
        assert time.time() > expiry
        # coturn caps the lifetime (max-allocate-lifetime); aioice refreshes at
        # 5/6 of it on its own too. Two lifetimes on, only refreshes made with
        # the expired credentials can have kept the allocation.
        assert await _refresh(client) == turn.allocation_lifetime_s
        await asyncio.sleep(2 * turn.allocation_lifetime_s)
        assert not client.transport.is_closing(), "aioice gave the allocation up (a refresh failed)"
        await client.send_data(b"after expiry", peer_addr)
        assert await asyncio.wait_for(peer.items.get(), STUN_WAIT_S) == (b"after expiry", client.relayed_address)
        peer_transport.sendto(b"reply", client.relayed_address)
        assert await asyncio.wait_for(relayed.items.get(), STUN_WAIT_S) == (b"reply", peer_addr)

        assert await _allocation_error(turn, username, password) == 401
        fresh_user, fresh_password = turn_credentials(user_id="u1", secret=secret, ttl_s=60, now=time.time())
        assert await _allocation_error(turn, fresh_user, "d3Jvbmc=") == 401
        fresh = await _allocate(turn, fresh_user, fresh_password)
        await fresh.delete()
    finally:
        if client is not None:
            await client.delete()
        peer_transport.close()
        turn.stop()
