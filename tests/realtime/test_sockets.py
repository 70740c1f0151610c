"""One node: connection auth, token expiry and refresh, logout, presence,
limits and malformed events."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import socketio

from tests.support.realtime import SocketUser, http_json, new_client_id, open_direct, register_user


async def _node(make_client, **overrides) -> str:
    client = await make_client(**overrides)
    return str(client.make_url("")).rstrip("/")


async def _refusal(url: str, auth) -> dict:
    sio = socketio.AsyncClient(reconnection=False)
    got: dict = {}
    sio.on("connect_error", lambda data: got.setdefault("data", data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
    await sio.disconnect()
    error = got.get("data") or {}
    assert error.get("message") == error.get("data", {}).get("code"), error
    return error.get("data") or {}


async def test_connect_refusals_carry_a_code(make_client):
    node = await _node(make_client)
    user = await register_user(node)
    assert (await _refusal(node, None))["code"] == "unauthorized"
    assert (await _refusal(node, {"token": "nonsense"}))["code"] == "unauthorized"
    await http_json("POST", f"{node}/api/v1/auth/logout", token=user["access_token"])
    assert (await _refusal(node, {"token": user["access_token"]}))["code"] == "token_revoked"


async def test_expiry_warns_then_disconnects_unless_refreshed(make_client):
    node = await _node(make_client, access_token_ttl=10, socket_expiry_warning=3)
    user = await register_user(node)
    keeps = await SocketUser(node, user["access_token"], name="refreshes").connect()
    drops = await SocketUser(node, user["access_token"], name="does not").connect()
    try:
        warning = await keeps.wait_for("session:expiring", timeout=12)
        assert 0 < warning["expires_in"] <= 10
        status, fresh = await http_json("POST", f"{node}/api/v1/auth/refresh",
                                        json={"refresh_token": user["refresh_token"]})
        assert status == 200
        ack = await keeps.call("auth:refresh", {"token": fresh["access_token"]})
        assert ack["ok"], ack
        await drops.wait_disconnected(timeout=12)
        assert drops.received("session:ended")[0]["reason"] == "token_expired"
        assert keeps.sio.connected
        assert (await keeps.call("presence:set", {"status": "away"}))["ok"]
    finally:
        await keeps.close()
        await drops.close()


async def test_logout_disconnects_that_sessions_sockets(make_client):
    node = await _node(make_client)
    user = await register_user(node)
    status, other = await http_json("POST", f"{node}/api/v1/auth/login",
                                    json={"email": user["email"], "password": user["password"]})
    s1 = await SocketUser(node, user["access_token"]).connect()
    s2 = await SocketUser(node, other["access_token"]).connect()
    try:
        await http_json("POST", f"{node}/api/v1/auth/logout", token=user["access_token"])
        await s1.wait_disconnected(timeout=2)
        await asyncio.sleep(0.2)
        assert s2.sio.connected
        await http_json("POST", f"{node}/api/v1/auth/logout-all", token=other["access_token"])
        await s2.wait_disconnected(timeout=2)
    finally:
        await s1.close()
        await s2.close()


async def test_presence_online_away_offline(make_client):
    node = await _node(make_client)
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    await open_direct(node, bob["access_token"], alice["id"])  # bob lets alice see him
    a = await SocketUser(node, alice["access_token"], name="alice").connect()
    try:
        ack = await a.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["ok"] and ack["presence"][bob["id"]]["status"] == "offline"
        b = await SocketUser(node, bob["access_token"], name="bob").connect()
        await a.wait_for("presence", lambda p: p["user_id"] == bob["id"] and p["status"] == "online", timeout=2)
        assert (await b.call("presence:set", {"status": "dnd"}))["ok"]
        await a.wait_for("presence", lambda p: p["status"] == "dnd", timeout=2)
        ack = await a.call("presence:subscribe", {"user_ids": [bob["id"]]})
        assert ack["presence"][bob["id"]]["status"] == "dnd"
        await b.close()
        offline = await a.wait_for("presence", lambda p: p["status"] == "offline", timeout=2)
        assert offline["last_seen"]
        too_many = await a.call("presence:subscribe", {"user_ids": [f"u{i}" for i in range(501)]})
        assert too_many["error"]["code"] == "validation_error"
    finally:
        await a.close()


async def test_malformed_events_get_error_acks_and_harm_no_one(make_client):
    node = await _node(make_client)
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    a = await SocketUser(node, alice["access_token"]).connect()
    try:
        cases = [
            ("message:send", {"room_id": room["id"]}, "validation_error"),
            ("message:send", {"room_id": room["id"], "client_id": "not-a-uuid", "body": "x"}, "validation_error"),
            ("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "   "}, "validation_error"),
            ("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "a\x00b"}, "validation_error"),
            ("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "x" * 4001}, "validation_error"),
            ("message:send", {"room_id": 5, "client_id": new_client_id(), "body": "x"}, "validation_error"),
            ("message:send", "just a string", "validation_error"),
            ("message:send", None, "validation_error"),
            ("typing", {"room_id": room["id"], "typing": "yes"}, "validation_error"),
            ("room:sync", {"room_id": room["id"], "after_seq": -1}, "validation_error"),
            ("no:such:event", {}, "unknown_event"),
            ("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "y" * 3000, "pad": "z" * 70_000}, "payload_too_large"),
        ]
        for event, payload, code in cases:
            ack = await a.call(event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == code, (event, payload, ack)
        exactly = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                                "body": "\tok\n" + "x" * 3990 + "\n"})
        assert exactly["ok"] and exactly["message"]["body"].startswith("ok\n")
        assert a.sio.connected
    finally:
        await a.close()


async def test_flooding_is_refused_then_disconnected_without_slowing_others(make_client):
    node = await _node(make_client, socket_event_rate="5/second", socket_event_burst=5,
                       socket_flood_limit=20)
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    flood = await SocketUser(node, alice["access_token"], name="flooder").connect()
    calm = await SocketUser(node, bob["access_token"], name="calm").connect()
    try:
        acks = await asyncio.gather(*(
            flood.call("presence:set", {"status": "online"}) for _ in range(15)
        ))
        codes = [a["error"]["code"] if not a["ok"] else "ok" for a in acks]
        assert codes.count("ok") <= 6 and "rate_limited" in codes
        assert (await calm.call("presence:set", {"status": "away"}))["ok"]
        for _ in range(40):
            if not flood.sio.connected:
                break
            await flood.sio.emit("presence:set", {"status": "online"})
        await flood.wait_disconnected(timeout=5)
        assert flood.received("session:ended")[0]["reason"] == "flooding"
        assert (await calm.call("presence:set", {"status": "online"}))["ok"]
    finally:
        await flood.close()
        await calm.close()


async def test_browser_origins_outside_the_allowed_list_are_refused(make_client):
    node = await _node(make_client, cors_origins=["https://app.example"])
    user = await register_user(node)
    evil = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await evil.connect(node, auth={"token": user["access_token"]}, transports=["websocket"],
                           headers={"Origin": "https://evil.example"}, wait_timeout=5)
    await evil.disconnect()
    good = SocketUser(node, user["access_token"])
    await good.sio.connect(node, auth={"token": user["access_token"]}, transports=["websocket"],
                           headers={"Origin": "https://app.example"}, wait_timeout=5)
    assert good.sio.connected
    await good.close()


async def test_metrics_count_sockets_events_messages_and_deliveries(make_client):
    node = await _node(make_client)
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    a = await SocketUser(node, alice["access_token"]).connect()
    b = await SocketUser(node, bob["access_token"]).connect()
    try:
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(), "body": "m"})
        await b.wait_for("message")
        await a.call("no:such:event", {})
        async with aiohttp.ClientSession() as http, http.get(f"{node}/metrics") as resp:
            text = await resp.text()
        assert ack["ok"]
        assert "skillshare_socket_connected 2.0" in text
        assert 'skillshare_socket_events_total{event="message:send",outcome="ok"} 1.0' in text
        assert 'skillshare_socket_events_total{event="unknown",outcome="unknown_event"} 1.0' in text
        assert "skillshare_messages_persisted_total 1.0" in text
        assert 'skillshare_socket_deliveries_total{event="message"} 2.0' in text
        assert 'skillshare_socket_ack_seconds_count{event="message:send"} 1.0' in text
    finally:
        await a.close()
        await b.close()


async def test_dependency_outage_gives_unavailable_acks_not_internal_errors(
        make_client, redis_process, redis_url):
    node = await _node(make_client, redis_url=redis_url)
    alice = await register_user(node)
    bob = await register_user(node)
    socket = await SocketUser(node, alice["access_token"], name="alice").connect()
    try:
        redis_process.stop()
        ack = await socket.call("call:invite", {"user_id": bob["id"],
                                                "media": {"audio": True, "video": True}})
        assert ack["ok"] is False
        assert ack["error"]["code"] == "unavailable", ack
    finally:
        redis_process.start()
        await socket.close()


async def test_operator_can_require_a_verified_email_to_chat(make_client):
    node = await _node(make_client, require_verified_email_for=["message.send", "call.invite"])
    alice = await register_user(node)
    bob = await register_user(node)
    room = await open_direct(node, alice["access_token"], bob["id"])
    socket = await SocketUser(node, alice["access_token"], name="alice").connect()
    try:
        assert (await socket.call("room:join", {"room_id": room["id"]}))["ok"]
        ack = await socket.call("message:send", {"room_id": room["id"],
                                                 "client_id": new_client_id(), "body": "hi"})
        assert ack["ok"] is False and ack["error"]["code"] == "email_not_verified"
        ack = await socket.call("call:invite", {"user_id": bob["id"],
                                                "media": {"audio": True, "video": False}})
        assert ack["ok"] is False and ack["error"]["code"] == "email_not_verified"
        # Reading and presence still work unverified.
        assert (await socket.call("presence:set", {"status": "away"}))["ok"]
    finally:
        await socket.close()


async def test_sockets_per_user_are_capped_per_node(make_client):
    node = await _node(make_client, socket_max_per_user=2)
    user = await register_user(node)
    first = await SocketUser(node, user["access_token"], name="1").connect()
    second = await SocketUser(node, user["access_token"], name="2").connect()
    try:
        refusal = await _refusal(node, {"token": user["access_token"]})
        assert refusal["code"] == "rate_limited"
        other = await register_user(node)  # other users are not affected
        third = await SocketUser(node, other["access_token"], name="other").connect()
        await third.close()
        await first.close()
        # Once the server has seen the disconnect, a new socket fits again.
        for _ in range(40):
            again = SocketUser(node, user["access_token"], name="again")
            try:
                await again.connect()
                break
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(0.05)
        assert again.sio.connected
        await again.close()
    finally:
        await first.close()
        await second.close()


async def test_an_unexpected_socket_error_reaches_sentry_tagged_with_its_event(
        make_settings, aiohttp_client):
    """The socket edge translates errors as the REST middleware does
    (server/edge_errors.py): ``internal_error`` ack, and Sentry gets the
    exception tagged with the event. Sentry's transport is replaced by a list."""
    import sentry_sdk

    from server.app import create_app
    from server.keys import SOCKETS
    from server.sockets.events import SocketEvents

    events: list[dict] = []

    class ListTransport(sentry_sdk.transport.Transport):
        def capture_envelope(self, envelope):
            events.extend(item.payload.json for item in envelope.items if item.type == "event")

    failing = SocketEvents()

    @failing.on("test:boom")
    async def boom(ctx, payload):
        raise ValueError("socket kaboom")

    sentry_sdk.init(dsn="https://key@sentry.invalid/1", transport=ListTransport(),
                    default_integrations=False)
    try:
        app = create_app(make_settings())
        app[SOCKETS].add(failing)
        node = str((await aiohttp_client(app)).make_url("")).rstrip("/")
        user = await register_user(node)
        sock = await SocketUser(node, user["access_token"]).connect()
        try:
            ack = await sock.call("test:boom", {})
        finally:
            await sock.close()
        sentry_sdk.flush()
    finally:
        sentry_sdk.init(dsn=None)
    assert ack == {"ok": False, "error": {"code": "internal_error",
                                          "message": "Internal server error."}}
    tagged = [e for e in events
              if "exception" in e and e.get("tags", {}).get("event") == "test:boom"]
    assert tagged and tagged[0]["exception"]["values"][-1]["value"] == "socket kaboom"
    assert tagged[0]["tags"]["sid"]
