"""``delivery:report`` and the delivery metrics: what a client got live and
what it had to fetch with ``room:sync`` is counted, checked (members only,
bounded payloads) and rate-limited; ``room:sync`` counts what it served."""

from __future__ import annotations

from server.keys import METRICS
from tests.support.realtime import SocketUser, new_client_id, open_direct, register_user


def _sample(app, name: str) -> float:
    return app[METRICS].registry.get_sample_value(name, {}) or 0.0


async def test_reports_are_counted_checked_and_limited(make_client):
    client = await make_client(delivery_report_limit="3/minute")
    url, app = str(client.make_url("")).rstrip("/"), client.server.app
    alice, bob, carol = [await register_user(url, n) for n in ("alice", "bob", "carol")]
    room = await open_direct(url, alice["access_token"], bob["id"])
    a = await SocketUser(url, alice["access_token"], name="alice").connect()
    c = await SocketUser(url, carol["access_token"], name="carol").connect()
    try:
        ack = await a.call("delivery:report", {"live": 40, "after_reconnect": 3,
                                               "gaps": [{"room_id": room["id"], "seqs": [7, 8]}]})
        assert ack == {"ok": True}
        assert _sample(app, "skillshare_delivery_live_total") == 40
        assert _sample(app, "skillshare_delivery_gap_recovered_total") == 2
        assert _sample(app, "skillshare_delivery_reconnect_recovered_total") == 3
        # not a member of the room: refused, nothing counted
        ack = await c.call("delivery:report", {"live": 5, "gaps": [{"room_id": room["id"], "seqs": [1]}]})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
        assert _sample(app, "skillshare_delivery_live_total") == 40
        for bad in ({"live": -1}, {"live": "many"}, {"gaps": [{"room_id": room["id"], "seqs": list(range(501))}]},
                    {"live": 1, "extra": True}):
            ack = await a.call("delivery:report", bad)
            assert ack["ok"] is False and ack["error"]["code"] == "validation_error", bad
        await a.call("delivery:report", {"live": 1})
        await a.call("delivery:report", {"live": 1, "gaps": [{"room_id": room["id"], "unrecovered": [9]}]})
        assert _sample(app, "skillshare_delivery_unrecovered_total") == 1
        ack = await a.call("delivery:report", {"live": 1})
        assert ack["ok"] is False and ack["error"]["code"] == "rate_limited"
        assert _sample(app, "skillshare_delivery_reports_total") == 3
    finally:
        await a.close()
        await c.close()


async def test_room_sync_counts_the_messages_it_serves(make_client):
    client = await make_client()
    url, app = str(client.make_url("")).rstrip("/"), client.server.app
    alice, bob = await register_user(url, "alice"), await register_user(url, "bob")
    room = await open_direct(url, alice["access_token"], bob["id"])
    a = await SocketUser(url, alice["access_token"], name="alice").connect()
    try:
        for n in range(3):
            ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                                "body": f"hello {n}"})
            assert ack["ok"] is True
        ack = await a.call("room:sync", {"room_id": room["id"], "after_seq": 1})
        assert len(ack["messages"]) == 2
        assert _sample(app, "skillshare_messages_synced_total") == 2
    finally:
        await a.close()
