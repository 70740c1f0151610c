"""Every database read behind the endpoints and socket events people use
all day is planned on an index by the embedded database (a collection
scan costs it milliseconds per query and grows with the data; under the
launch test's load the scans alone held a core). Each read the app sends
while a person browses, asks, reviews, chats and watches presence is
captured with pymongo's command monitoring and explained on the same
database; none may be a ``COLLSCAN``.

Background sweeps (purge, digests, mail queue) are not on this path and
are not driven here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import monitoring

from server.keys import DB
from tests.support.market import create_listing, new_user, talk
from tests.support.realtime import SocketUser, new_client_id
from tests.support.metrics import sample

READ_COMMANDS = ("find", "count", "aggregate", "distinct")


class _Reads(monitoring.CommandListener):
    """The read commands sent to one database while ``capturing``."""

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.capturing = False
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if (self.capturing and event.database_name == self.db_name
                and event.command_name in READ_COMMANDS):
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_LISTENERS: dict[str, _Reads] = {}


@pytest.fixture
def reads(db_name: str) -> Iterator[_Reads]:
    # pymongo listeners are process-wide and cannot be removed: one is
    # registered per test database and records only while capturing.
    listener = _Reads(db_name)
    monitoring.register(listener)
    _LISTENERS[db_name] = listener
    try:
        yield listener
    finally:
        listener.capturing = False
        listener.commands.clear()


def _stages(plan: Any) -> Iterator[str]:
    if isinstance(plan, dict):
        if isinstance(plan.get("stage"), str):
            yield plan["stage"]
        for value in plan.values():
            yield from _stages(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _stages(value)


async def _plan(db: Any, command: dict[str, Any]) -> dict[str, Any]:
    explained = {k: v for k, v in command.items()
                 if k not in ("lsid", "$db", "$clusterTime", "$readPreference", "txnNumber",
                              "startTransaction", "autocommit")}
    reply = await db.command({"explain": explained, "verbosity": "queryPlanner"})
    return reply["queryPlanner"]["winningPlan"]


async def _browse(client: Any, ada: dict[str, Any], bob: dict[str, Any]) -> None:
    """What the launch test's people do, through the public API."""
    listing = await create_listing(client, ada, title="Python for beginners",
                                   tags=["python", "coding"])
    await create_listing(client, ada, title="Guitar chords", category="music",
                         tags=["guitar"])
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests",
                             json={"message": "Teach me"}, headers=bob["headers"])
    assert resp.status == 201, await resp.text()
    request_id = (await resp.json())["id"]
    resp = await client.post(f"/api/v1/requests/{request_id}/accept", headers=ada["headers"])
    assert resp.status == 200, await resp.text()
    await talk(client, bob, request_id)
    resp = await client.post(f"/api/v1/requests/{request_id}/complete", headers=bob["headers"])
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/api/v1/requests/{request_id}/review",
                             json={"rating": 5, "comment": "Great"}, headers=bob["headers"])
    assert resp.status == 201, await resp.text()

    gets = [
        ("/api/v1/skills", {"limit": "1"}), ("/api/v1/skills", {"category": "music"}),
        ("/api/v1/skills", {"q": "python"}), ("/api/v1/skills", {"tag": "guitar"}),
        (f"/api/v1/skills/{listing['id']}", {}), (f"/api/v1/skills/{listing['id']}/reviews", {}),
        ("/api/v1/matches", {}), ("/api/v1/users/me", {}), (f"/api/v1/users/{ada['id']}", {}),
        ("/api/v1/rooms", {}), ("/api/v1/requests", {}),
        ("/api/v1/requests", {"role": "outgoing", "status": "completed"}),
        ("/api/v1/requests", {"role": "incoming"}),
    ]
    for who in (ada, bob):
        for path, params in gets:
            resp = await client.get(path, params=params, headers=who["headers"])
            assert resp.status == 200, (path, await resp.text())
        first = await client.get("/api/v1/skills", params={"limit": "1"}, headers=who["headers"])
        cursor = (await first.json())["next_cursor"]
        assert cursor
        resp = await client.get("/api/v1/skills", params={"limit": "1", "cursor": cursor},
                                headers=who["headers"])
        assert resp.status == 200, await resp.text()

    resp = await client.get(f"/api/v1/requests/{request_id}", headers=bob["headers"])
    room_id = (await resp.json())["room_id"]
    sock = await SocketUser(str(client.make_url("")).rstrip("/"), bob["token"]).connect()
    try:
        for event, data in (
            ("room:join", {"room_id": room_id}),
            ("presence:subscribe", {"user_ids": [ada["id"]]}),
            ("presence:set", {"status": "away"}),
            ("message:send", {"room_id": room_id, "client_id": new_client_id(), "body": "Hi"}),
            ("room:sync", {"room_id": room_id, "after_seq": 0, "limit": 50}),
        ):
            ack = await sock.call(event, data)
            assert not (isinstance(ack, dict) and "error" in ack), (event, ack)
    finally:
        await sock.close()


async def test_every_read_people_cause_is_planned_on_an_index(make_client, reads):
    # no read cache: every read reaches the database
    client = await make_client(rate_limits="off", read_cache_size=0)
    ada, bob = await new_user(client, "Ada"), await new_user(client, "Bob")
    for n in range(3):  # others in the collections, so that a scan has something to scan
        await new_user(client, f"Extra {n}")
    reads.capturing = True
    await _browse(client, ada, bob)
    reads.capturing = False

    db = client.app[DB]
    collections = {c["find"] for c in reads.commands if "find" in c}
    # the path under test reaches the collections people's reads live in
    assert {"listings", "users", "skill_requests", "reviews", "rooms", "blocks",
            "skill_index", "messages"} <= collections, collections
    scans = []
    for command in reads.commands:
        plan = await _plan(db, command)
        if "COLLSCAN" in set(_stages(plan)):
            scans.append({k: command.get(k) for k in ("find", "filter", "sort", "limit")
                          if command.get(k) is not None})
    assert scans == [], scans


async def test_the_database_commands_a_node_sends_are_counted_in_metrics(make_client):
    client = await make_client(rate_limits="off", read_cache_size=0)
    ada = await new_user(client, "Ada")
    listing = await create_listing(client, ada)
    before = await (await client.get("/metrics")).text()
    for _ in range(3):
        resp = await client.get(f"/api/v1/skills/{listing['id']}")
        assert resp.status == 200
    after = await (await client.get("/metrics")).text()
    labels = {"command": "find", "collection": "listings", "outcome": "ok"}
    assert (sample(after, "skillshare_db_commands_total", **labels)
            - sample(before, "skillshare_db_commands_total", **labels)) >= 3
    assert sample(after, "skillshare_db_command_seconds_count", command="find") > 0
    assert sample(after, "skillshare_db_commands_total", command="insert",
                   collection="listings", outcome="ok") >= 1
