"""One node, in process: the call state machine over real Socket.IO
clients — invite, accept, reject, missed, busy, hang-up, disconnect — plus
who may signal whom, what a signal may carry, and the ICE servers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from server.keys import METRICS
from tests.support.calls import CallSocket
from tests.support.realtime import http_json, open_direct, register_user

RING_TIMEOUT = 1.0
TURN_SECRET = "turn-shared-secret"
TURN_URLS = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]
STUN_URLS = ["stun:stun.example.com:3478"]
SDP = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
       "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n")
CANDIDATE = "candidate:842163049 1 udp 1677729535 192.0.2.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0"


@pytest.fixture
async def node(make_client):
    # no reconnect grace: a participant without a socket ends the call at once
    # (the grace period is tested in test_reconnect.py)
    client = await make_client(call_ring_timeout=RING_TIMEOUT, turn_urls=TURN_URLS,
                               turn_secret=TURN_SECRET, stun_urls=STUN_URLS, turn_ttl=600,
                               call_reconnect_grace=0)
    return str(client.make_url("")).rstrip("/"), client.server.app


@pytest.fixture
async def people(node):
    url, _ = node
    users = [await register_user(url, name) for name in ("alice", "bob", "carol")]
    sockets = [await CallSocket(url, u["access_token"], name=u["user"]["display_name"]).connect()
               for u in users]
    try:
        yield users, sockets
    finally:
        for s in sockets:
            await s.close()


async def _ring(caller: CallSocket, callee: CallSocket, callee_id: str) -> str:
    ack = await caller.ok("call:invite", {"user_id": callee_id, "media": {"audio": True, "video": True}})
    await callee.wait_for("call:incoming", lambda e: e["call_id"] == ack["call_id"])
    return ack["call_id"]


async def _active(caller: CallSocket, callee: CallSocket, callee_id: str) -> str:
    call_id = await _ring(caller, callee, callee_id)
    await callee.ok("call:accept", {"call_id": call_id})
    await caller.wait_for("call:accepted", lambda e: e["call_id"] == call_id)
    return call_id


def _check_turn(entry: dict, user_id: str, *, ttl: int) -> None:
    expiry, _, who = entry["username"].partition(":")
    assert who == user_id
    assert 0 < int(expiry) - time.time() <= ttl + 1
    digest = hmac.new(TURN_SECRET.encode(), entry["username"].encode(), hashlib.sha1).digest()
    assert entry["credential"] == base64.b64encode(digest).decode()
    assert entry["urls"] == TURN_URLS


async def test_ice_servers_endpoint_and_invite_carry_turn_credentials(node, people):
    url, _ = node
    (alice, bob, _), (a, b, _) = people
    status, body = await http_json("GET", f"{url}/api/v1/calls/ice-servers", token=alice["access_token"])
    assert status == 200 and body["ttl"] == 600
    stun, turn = body["ice_servers"]
    assert stun == {"urls": STUN_URLS}
    _check_turn(turn, alice["id"], ttl=600)
    status, _ = await http_json("GET", f"{url}/api/v1/calls/ice-servers")
    assert status == 401
    status, spec = await http_json("GET", f"{url}/openapi.json")
    assert "/api/v1/calls/ice-servers" in spec["paths"]

    ack = await a.ok("call:invite", {"user_id": bob["id"], "media": {"audio": True, "video": False}})
    _check_turn(ack["ice_servers"][1], alice["id"], ttl=600)
    incoming = await b.wait_for("call:incoming")
    assert incoming["from"] == alice["id"] and incoming["media"] == {"audio": True, "video": False}
    _check_turn(incoming["ice_servers"][1], bob["id"], ttl=600)  # the callee's own credentials


async def test_accept_signal_hang_up(node, people):
    (alice, bob, _), (a, b, _) = people
    call_id = await _ring(a, b, bob["id"])
    refused = await a.refused("call:signal", {"call_id": call_id, "to": bob["id"],
                                              "data": {"type": "offer", "sdp": SDP}})
    assert refused["code"] == "conflict"  # not active yet
    assert (await a.refused("call:accept", {"call_id": call_id}))["code"] == "forbidden"

    await b.ok("call:accept", {"call_id": call_id})
    accepted = await a.wait_for("call:accepted")
    assert accepted == {"call_id": call_id, "by": bob["id"]}
    assert (await b.refused("call:accept", {"call_id": call_id}))["code"] == "conflict"

    await a.ok("call:signal", {"call_id": call_id, "to": bob["id"], "data": {"type": "offer", "sdp": SDP}})
    got = await b.wait_for("call:signal")
    assert got == {"call_id": call_id, "from": alice["id"], "data": {"type": "offer", "sdp": SDP}}
    await b.ok("call:signal", {"call_id": call_id, "to": alice["id"], "data": {
        "type": "candidate", "candidate": {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0,
                                           "usernameFragment": "abcd", "extra": "dropped"}}})
    got = await a.wait_for("call:signal")
    assert got["data"] == {"type": "candidate", "candidate": {
        "candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}}

    ack = await a.ok("call:end", {"call_id": call_id})
    assert ack["ended"] is True
    for s in (a, b):
        ended = await s.wait_for("call:ended")
        assert ended == {"call_id": call_id, "by": alice["id"], "reason": "hangup"}
    again = await b.ok("call:end", {"call_id": call_id})
    assert again["ended"] is False
    assert (await a.refused("call:signal", {"call_id": call_id, "to": bob["id"],
                                            "data": {"type": "offer", "sdp": SDP}}))["code"] == "conflict"
    # both are free again
    await _active(b, a, alice["id"])


async def test_reject_and_cancel(node, people):
    (alice, bob, _), (a, b, _) = people
    call_id = await _ring(a, b, bob["id"])
    assert (await a.refused("call:reject", {"call_id": call_id}))["code"] == "forbidden"
    await b.ok("call:reject", {"call_id": call_id, "reason": "declined"})
    for s in (a, b):
        rejected = await s.wait_for("call:rejected")
        assert rejected == {"call_id": call_id, "by": bob["id"], "reason": "declined"}
    assert (await b.refused("call:accept", {"call_id": call_id}))["code"] == "conflict"

    call_id = await _ring(a, b, bob["id"])
    await a.ok("call:end", {"call_id": call_id})
    ended = await b.wait_for("call:ended", lambda e: e["call_id"] == call_id)
    assert ended["reason"] == "cancelled" and ended["by"] == alice["id"]
    bad = await b.refused("call:reject", {"call_id": call_id, "reason": "Not Snake Case!"})
    assert bad["code"] == "validation_error"

    call_id = await _ring(a, b, bob["id"])
    await b.ok("call:end", {"call_id": call_id})  # the callee hangs up while it rings
    ended = await a.wait_for("call:ended", lambda e: e["call_id"] == call_id)
    assert ended["reason"] == "declined" and ended["by"] == bob["id"]


async def test_unanswered_call_is_missed(node, people):
    (alice, bob, _), (a, b, _) = people
    started = time.monotonic()
    call_id = await _ring(a, b, bob["id"])
    for s in (a, b):
        ended = await s.wait_for("call:ended", timeout=RING_TIMEOUT + 3)
        assert ended == {"call_id": call_id, "by": None, "reason": "missed"}
    assert time.monotonic() - started >= RING_TIMEOUT * 0.9
    assert (await b.refused("call:accept", {"call_id": call_id}))["code"] == "conflict"


async def test_busy_self_unknown_and_offline(node, people):
    url, _ = node
    (alice, bob, carol), (a, b, c) = people
    call_id = await _active(a, b, bob["id"])
    busy = await c.refused("call:invite", {"user_id": bob["id"]})
    assert busy["code"] == "busy"
    assert not c.received("call:incoming") and len(b.received("call:incoming")) == 1
    mine = await a.refused("call:invite", {"user_id": carol["id"]})
    assert mine["code"] == "conflict"  # the caller is in a call
    assert not c.received("call:incoming")
    assert (await c.refused("call:invite", {"user_id": carol["id"]}))["code"] == "validation_error"
    assert (await c.refused("call:invite", {"user_id": "0" * 24}))["code"] == "not_found"
    dave = await register_user(url, "dave")  # never connected
    # A stranger is not told that dave is offline (presence is for contacts): it rings.
    ringing = await c.ok("call:invite", {"user_id": dave["id"]})
    await c.ok("call:end", {"call_id": ringing["call_id"]})
    # dave opened a room with carol: she may see his presence, so she is told.
    await open_direct(url, dave["access_token"], carol["id"])
    assert (await c.refused("call:invite", {"user_id": dave["id"]}))["code"] == "offline"
    await a.ok("call:end", {"call_id": call_id})
    await c.ok("call:invite", {"user_id": bob["id"]})


async def test_disconnect_mid_call_ends_it_for_the_other(node, people):
    (alice, bob, _), (a, b, _) = people
    call_id = await _active(a, b, bob["id"])
    await b.close()
    ended = await a.wait_for("call:ended", timeout=2)  # contract: offline within 2 s
    assert ended == {"call_id": call_id, "by": bob["id"], "reason": "disconnected"}
    assert (await a.refused("call:signal", {"call_id": call_id, "to": bob["id"],
                                            "data": {"type": "offer", "sdp": SDP}}))["code"] == "conflict"


async def test_a_second_socket_keeps_the_call(node, people):
    url, _ = node
    (alice, bob, _), (a, b, _) = people
    b2 = await CallSocket(url, bob["access_token"], name="bob-2").connect()
    try:
        call_id = await _active(a, b, bob["id"])
        await b.close()
        await a.ok("call:signal", {"call_id": call_id, "to": bob["id"], "data": {"type": "offer", "sdp": SDP}})
        await b2.wait_for("call:signal")
        assert not a.received("call:ended")
    finally:
        await b2.close()
    await a.wait_for("call:ended", lambda e: e["reason"] == "disconnected", timeout=2)


async def test_third_user_and_bad_signals_are_refused(node, people):
    (alice, bob, carol), (a, b, c) = people
    call_id = await _active(a, b, bob["id"])
    offer = {"type": "offer", "sdp": SDP}
    for target in (alice["id"], bob["id"]):
        refused = await c.refused("call:signal", {"call_id": call_id, "to": target, "data": offer})
        assert refused["code"] == "forbidden"
    assert (await c.refused("call:end", {"call_id": call_id}))["code"] == "forbidden"
    assert (await c.refused("call:relay", {"call_id": call_id, "sdp": SDP}))["code"] == "forbidden"
    assert (await a.refused("call:signal", {"call_id": call_id, "to": carol["id"], "data": offer}))["code"] == "forbidden"
    assert (await a.refused("call:signal", {"call_id": "nope", "to": bob["id"], "data": offer}))["code"] == "not_found"

    bad_data = [
        {"type": "offer", "sdp": "hello"},
        {"type": "offer", "sdp": "v=1\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"},
        {"type": "answer", "sdp": SDP + "not an sdp line\r\n"},
        {"type": "answer", "sdp": SDP.replace("s=-\r\n", "")},
        {"type": "offer", "sdp": SDP + "a=x:\x00\r\n"},
        {"type": "offer"},
        {"type": "rollback", "sdp": SDP},
        {"type": "candidate", "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host; rm -rf /"},
        {"type": "candidate", "candidate": "not a candidate"},
        {"type": "candidate", "candidate": {"candidate": CANDIDATE, "sdpMLineIndex": "zero"}},
        {"type": "candidate", "candidate": CANDIDATE + " x" * 300},
        {"type": "candidate"},
    ]
    for data in bad_data:
        refused = await a.refused("call:signal", {"call_id": call_id, "to": bob["id"], "data": data})
        assert refused["code"] == "validation_error", (data, refused)
    huge = SDP + "a=x-pad:" + "x" * (17 * 1024) + "\r\n"
    refused = await a.refused("call:signal", {"call_id": call_id, "to": bob["id"],
                                              "data": {"type": "offer", "sdp": huge}})
    assert refused["code"] == "payload_too_large"
    assert (await a.refused("call:relay", {"call_id": call_id, "sdp": "garbage"}))["code"] == "validation_error"

    await a.ok("call:signal", {"call_id": call_id, "to": bob["id"], "data": {"type": "candidate", "candidate": ""}})
    got = await b.wait_for("call:signal")
    assert got["data"]["candidate"]["candidate"] == ""  # end of candidates
    assert len(b.received("call:signal")) == 1  # nothing refused was delivered
    assert not c.received("call:signal") and not a.received("call:signal")


async def test_invites_are_rate_limited_per_caller(make_client):
    client = await make_client(call_invite_limit="2/minute")
    url = str(client.make_url("")).rstrip("/")
    alice, bob = await register_user(url, "alice"), await register_user(url, "bob")
    a = await CallSocket(url, alice["access_token"], name="alice").connect()
    b = await CallSocket(url, bob["access_token"], name="bob").connect()
    try:
        for _ in range(2):
            call_id = (await a.ok("call:invite", {"user_id": bob["id"]}))["call_id"]
            await a.ok("call:end", {"call_id": call_id})
        limited = await a.refused("call:invite", {"user_id": bob["id"]})
        assert limited["code"] == "rate_limited" and limited["details"]["retry_after"] >= 1
        assert len(b.received("call:incoming")) == 2
    finally:
        await a.close()
        await b.close()


async def test_stats_are_counted_once_per_participant(node, people):
    url, app = node
    (alice, bob, _), (a, b, c) = people
    call_id = await _active(a, b, bob["id"])
    stats = {"call_id": call_id, "path": "turn", "connected": False, "setup_ms": 5000}
    assert (await c.refused("call:stats", stats))["code"] == "forbidden"
    assert (await a.refused("call:stats", {**stats, "path": "carrier-pigeon"}))["code"] == "validation_error"
    assert (await a.ok("call:stats", stats))["counted"] is True
    assert (await a.ok("call:stats", stats))["counted"] is False
    assert (await b.ok("call:stats", {**stats, "connected": True}))["counted"] is True
    registry = app[METRICS].registry
    assert registry.get_sample_value("skillshare_calls_failed_total", {"path": "turn"}) == 1
    assert registry.get_sample_value("skillshare_calls_connected_total", {"path": "turn"}) == 1
    assert registry.get_sample_value("skillshare_call_setup_seconds_sum", {"path": "turn"}) == 5.0


def test_relay_cpu_is_counted_only_while_relaying():
    from prometheus_client import CollectorRegistry, Counter

    from server.calls.metrics import RelayCpuSampler

    counter = Counter("cpu_test_seconds", "test", registry=CollectorRegistry())
    cpu, calls = [10.0], [0]
    sampler = RelayCpuSampler(counter, lambda: calls[0], cpu=lambda: cpu[0])
    last, active = sampler.sample(10.0, False)  # idle: nothing counted
    cpu[0], calls[0] = 12.0, 1
    last, active = sampler.sample(last, active)  # became active during the interval
    cpu[0], calls[0] = 13.5, 0
    last, active = sampler.sample(last, active)  # was active at the start
    cpu[0] = 20.0
    sampler.sample(last, active)  # idle again
    assert counter._value.get() == 3.5
