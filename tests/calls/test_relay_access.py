"""Who may use the media relay, and when: ``call:relay`` is answered only for
an active (accepted) call and only for its two participants. A ringing call,
a third user and an ended call are refused in the contract's error shape,
before the relay creates anything, and each refusal is counted."""

from __future__ import annotations

import pytest

from server.keys import MEDIA_RELAY, METRICS
from tests.support.calls import CallSocket, MediaPeer, wait_until
from tests.support.realtime import register_user

SIZE = (160, 120)


@pytest.fixture
async def node(make_client):
    # this host's interface addresses are in private ranges: let the relay reach them
    client = await make_client(call_relay_allow_private=True)
    return str(client.make_url("")).rstrip("/"), client.server.app


def _refused(app, reason: str) -> float:
    value = app[METRICS].registry.get_sample_value("skillshare_call_relay_refused_total",
                                                   {"reason": reason})
    return value or 0.0


def _assert_error_shape(error: dict) -> None:
    assert set(error) >= {"code", "message"} and error["message"], error


async def test_relay_only_for_participants_of_an_active_call(node):
    url, app = node
    relay = app[MEDIA_RELAY]
    alice, bob, carol = [await register_user(url, name) for name in ("alice", "bob", "carol")]
    a, b, c = [await CallSocket(url, u["access_token"], name=u["user"]["display_name"]).connect()
               for u in (alice, bob, carol)]
    pa, pb, pc_ = MediaPeer(SIZE), MediaPeer(SIZE), MediaPeer(SIZE)
    try:
        call_id = (await a.ok("call:invite", {"user_id": bob["id"]}))["call_id"]
        await b.wait_for("call:incoming", lambda e: e["call_id"] == call_id)

        # ringing: neither the caller nor the callee may reach the relay yet
        for socket, peer in ((a, pa), (b, pb)):
            ringing = await socket.refused("call:relay", {"call_id": call_id, "sdp": await peer.offer()})
            assert ringing["code"] == "conflict", ringing
            _assert_error_shape(ringing)
        assert relay.active_calls == 0 and relay.peer_connection_count == 0

        await b.ok("call:accept", {"call_id": call_id})
        await a.wait_for("call:accepted", lambda e: e["call_id"] == call_id)

        # a third user never may
        stranger = await c.refused("call:relay", {"call_id": call_id, "sdp": await pc_.offer()})
        assert stranger["code"] == "forbidden", stranger
        _assert_error_shape(stranger)
        assert relay.peer_connection_count == 0

        # active: both participants get an answer
        for socket, peer in ((a, pa), (b, pb)):
            ack = await socket.ok("call:relay", {"call_id": call_id, "sdp": peer.pc.localDescription.sdp})
            assert ack["sdp"].startswith("v=0")
        assert relay.active_calls == 1 and relay.peer_connection_count == 2

        # hung up: refused again, and the legs are gone
        await a.ok("call:end", {"call_id": call_id})
        await b.wait_for("call:ended", lambda e: e["call_id"] == call_id)
        await wait_until(lambda: relay.peer_connection_count == 0, timeout=5, what="relay legs closed")
        ended = await b.refused("call:relay", {"call_id": call_id, "sdp": pb.pc.localDescription.sdp})
        assert ended["code"] == "conflict", ended
        _assert_error_shape(ended)
        assert relay.active_calls == 0 and relay.peer_connection_count == 0

        assert _refused(app, "not_active") == 3
        assert _refused(app, "not_participant") == 1
    finally:
        for peer in (pa, pb, pc_):
            await peer.close()
        for s in (a, b, c):
            await s.close()
