"""Calls that survive a lost socket: a participant whose last socket goes
away keeps the call for ``call_reconnect_grace`` (the other side gets
``call:peer_reconnecting``, then ``call:peer_reconnected``), or the call ends
``disconnected`` when the grace runs out. With the in-process call store and
with Redis. Plus the call outcome metrics and periodic ``call:stats``."""

from __future__ import annotations

import pytest

from server.calls.outcomes import call_outcome
from server.keys import METRICS
from server.storage.calls import ACTIVE, CallRecord
from tests.support.calls import CallSocket
from tests.support.realtime import register_user

GRACE = 3.0
SDP = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
       "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n")


@pytest.fixture(params=["memory", "redis"])
async def node(request, make_client):
    overrides = {"call_reconnect_grace": GRACE, "call_stats_limit": "5/minute"}
    if request.param == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    client = await make_client(**overrides)
    return str(client.make_url("")).rstrip("/"), client.server.app


@pytest.fixture
async def pair(node):
    url, _ = node
    alice, bob = await register_user(url, "alice"), await register_user(url, "bob")
    a = await CallSocket(url, alice["access_token"], name="alice").connect()
    b = await CallSocket(url, bob["access_token"], name="bob").connect()
    opened = [a, b]
    try:
        yield alice, bob, a, b, opened
    finally:
        for s in opened:
            await s.close()


async def _active(a: CallSocket, b: CallSocket, callee_id: str) -> str:
    call_id = (await a.ok("call:invite", {"user_id": callee_id}))["call_id"]
    await b.wait_for("call:incoming", lambda e: e["call_id"] == call_id)
    await b.ok("call:accept", {"call_id": call_id})
    await a.wait_for("call:accepted", lambda e: e["call_id"] == call_id)
    return call_id


def _sample(app, name: str, labels: dict[str, str] | None = None) -> float:
    return app[METRICS].registry.get_sample_value(name, labels or {}) or 0.0


async def test_socket_back_within_the_grace_keeps_the_call(node, pair):
    url, app = node
    alice, bob, a, b, opened = pair
    call_id = await _active(a, b, bob["id"])
    await b.close()
    away = await a.wait_for("call:peer_reconnecting", timeout=5)
    assert away == {"call_id": call_id, "user_id": bob["id"], "grace": GRACE}
    b2 = await CallSocket(url, bob["access_token"], name="bob-again").connect()
    opened.append(b2)
    back = await a.wait_for("call:peer_reconnected", timeout=5)
    assert back == {"call_id": call_id, "user_id": bob["id"]}
    assert (await b2.ok("call:resume", {"call_id": call_id}))["state"] == ACTIVE
    # the call goes on: signals flow both ways, and it does not end after the grace
    await a.ok("call:signal", {"call_id": call_id, "to": bob["id"], "data": {"type": "offer", "sdp": SDP}})
    await b2.wait_for("call:signal", timeout=5)
    with pytest.raises(AssertionError):  # no call:ended: Bob is back
        await a.wait_for("call:ended", timeout=GRACE + 1.5)
    assert _sample(app, "skillshare_call_reconnects_total", {"kind": "socket", "outcome": "resumed"}) == 1
    await a.ok("call:end", {"call_id": call_id})
    await b2.wait_for("call:ended", lambda e: e["reason"] == "hangup", timeout=5)
    assert _sample(app, "skillshare_call_outcomes_total", {"outcome": "unreported"}) == 1


async def test_grace_running_out_ends_the_call_disconnected(node, pair):
    url, app = node
    alice, bob, a, b, opened = pair
    call_id = await _active(a, b, bob["id"])
    for s in (a, b):
        await s.ok("call:stats", {"call_id": call_id, "path": "p2p", "connected": True, "setup_ms": 900})
    await b.close()
    await a.wait_for("call:peer_reconnecting", timeout=5)
    assert not a.received("call:ended")
    ended = await a.wait_for("call:ended", timeout=GRACE + 5)
    assert ended == {"call_id": call_id, "by": bob["id"], "reason": "disconnected"}
    # Bob comes back too late: his call is over, and he can learn why.
    b2 = await CallSocket(url, bob["access_token"], name="bob-late").connect()
    opened.append(b2)
    resumed = await b2.ok("call:resume", {"call_id": call_id})
    assert resumed["state"] == "ended" and resumed["reason"] == "disconnected"
    assert _sample(app, "skillshare_call_reconnects_total", {"kind": "socket", "outcome": "expired"}) == 1
    assert _sample(app, "skillshare_call_outcomes_total", {"outcome": "dropped"}) == 1
    assert _sample(app, "skillshare_call_setups_total", {"result": "ok"}) == 2


async def test_a_ringing_call_still_ends_at_once(node, pair):
    _, _ = node
    alice, bob, a, b, _ = pair
    call_id = (await a.ok("call:invite", {"user_id": bob["id"]}))["call_id"]
    await b.wait_for("call:incoming")
    await b.close()
    ended = await a.wait_for("call:ended", timeout=2)
    assert ended == {"call_id": call_id, "by": bob["id"], "reason": "disconnected"}
    assert not a.received("call:peer_reconnecting")


async def test_periodic_and_recovery_stats_are_counted_and_rate_limited(node, pair):
    url, app = node
    alice, bob, a, b, opened = pair
    carol = await register_user(url, "carol")
    c = await CallSocket(url, carol["access_token"], name="carol").connect()
    opened.append(c)
    call_id = await _active(a, b, bob["id"])
    interval = {"call_id": call_id, "kind": "interval", "path": "relay", "connected": True, "rtt_ms": 40}
    assert (await c.refused("call:stats", interval))["code"] == "forbidden"
    assert (await a.refused("call:stats", {**interval, "rtt_ms": -1}))["code"] == "validation_error"
    assert (await a.refused("call:stats", {**interval, "kind": "gossip"}))["code"] == "validation_error"
    assert (await a.ok("call:stats", interval))["counted"] is True
    assert (await a.ok("call:stats", interval))["counted"] is True
    recovered = {"call_id": call_id, "kind": "recovered", "path": "p2p", "connected": True, "recovery_ms": 2500}
    assert (await a.ok("call:stats", recovered))["counted"] is True
    assert (await a.ok("call:stats", {**recovered, "kind": "lost", "connected": False}))["counted"] is True
    assert (await a.ok("call:stats", interval))["counted"] is True
    # five per minute per participant here: the sixth is refused, the other side is not limited
    assert (await a.refused("call:stats", interval))["code"] == "rate_limited"
    assert (await b.ok("call:stats", interval))["counted"] is True
    assert _sample(app, "skillshare_call_media_reports_total", {"path": "relay", "connected": "true"}) == 4
    assert _sample(app, "skillshare_call_rtt_seconds_count") == 4
    assert _sample(app, "skillshare_call_reconnects_total", {"kind": "media", "outcome": "recovered"}) == 1
    assert _sample(app, "skillshare_call_reconnects_total", {"kind": "media", "outcome": "lost"}) == 1
    assert _sample(app, "skillshare_call_recovery_seconds_sum") == 2.5


async def test_late_setup_counts_as_a_failed_setup(node, pair):
    _, app = node
    alice, bob, a, b, _ = pair
    call_id = await _active(a, b, bob["id"])
    await a.ok("call:stats", {"call_id": call_id, "path": "p2p", "connected": True, "setup_ms": 800})
    await b.ok("call:stats", {"call_id": call_id, "path": "p2p", "connected": True, "setup_ms": 12_000})
    await a.ok("call:end", {"call_id": call_id})
    await b.wait_for("call:ended")
    assert _sample(app, "skillshare_call_setups_total", {"result": "slow"}) == 1
    assert _sample(app, "skillshare_call_outcomes_total", {"outcome": "setup_failed"}) == 1
    assert _sample(app, "skillshare_calls_accepted_total") == 1


def _record(**changes) -> CallRecord:
    base = dict(id="c", caller="a", callee="b", state="ended", audio=True, video=True,
                created_at=0.0, accepted_at=1.0)
    return CallRecord(**{**base, **changes})


def test_call_outcome_classification():
    both = frozenset({"a", "b"})
    assert call_outcome(_record(stats_from=both, setup_ok=both), "hangup") == "success"
    assert call_outcome(_record(stats_from=both, setup_ok=both), "disconnected") == "dropped"
    assert call_outcome(_record(stats_from=both, setup_ok=frozenset({"a"})), "hangup") == "setup_failed"
    assert call_outcome(_record(), "connection_failed") == "setup_failed"
    assert call_outcome(_record(stats_from=frozenset({"a"}), setup_ok=frozenset({"a"})), "hangup") == "unreported"

