"""The seed's launch test: 1,000 signed-in people on one node.

Two kinds of people, at once:

- ``Browser`` (``FastHttpUser``, 1-3 s think time): the marketplace —
  newest listings and the next page, a category, a search, a listing and
  its reviews, its teacher's profile, matches, ``/users/me``, ``/rooms``,
  ``/requests``; now and then asks to learn, and reviews a completed
  request it has not reviewed yet.
- ``Chatter`` (a python-socketio client per person, plus HTTP for its
  rooms): online over Socket.IO — joins its rooms, subscribes to the
  other members' presence, sends messages, types, changes presence.
  Every event's ack time is reported to locust as request type ``socket``
  (name = the event), a ``{ok: false}`` ack or a timeout as a failure; every
  message *delivered* to another member is reported as ``socket`` /
  ``deliver message`` with the latency from send to receipt (both ends are
  in this process, so one clock). Chatters are given people who share a
  room with another chatter, so deliveries happen.

People are the seed's demo accounts, signed in by the seed (argon2 sign-ins
would make the test measure sign-in, by design slow):

    SKILLSHARE_ACCESS_TOKEN_TTL=86400 skillshare seed --users 1000 --tokens /tmp/lab-tokens.jsonl
    SKILLSHARE_ACCESS_TOKEN_TTL=86400 SKILLSHARE_RATE_LIMITS=off skillshare serve &
    LAUNCH_TOKENS=/tmp/lab-tokens.jsonl locust -f loadtests/locustfile.py \\
        --host http://127.0.0.1:8080 --headless -u 1000 -r 100 -t 120s --csv out/launch

``loadtests/launch_test.sh`` does all of it (pinned cores, node CPU and
memory from /proc). Only point it at a node of your own on this machine.
Chatters are ``LAUNCH_CHAT_SHARE`` of the people (default 0.2).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import socketio
from locust import FastHttpUser, between, events, task

SEARCH_WORDS = ["python", "guitar", "spanish", "cooking", "design", "yoga", "data",
                "writing", "piano", "marketing", "photography", "french"]
CATEGORIES = ["programming", "data", "design", "music", "languages", "business",
              "writing", "cooking", "fitness", "crafts", "science"]
ACK_TIMEOUT = 10.0
CHAT_SHARE = float(os.environ.get("LAUNCH_CHAT_SHARE", "0.2"))


class People:
    """The seed's signed-in people: chatters in pairs that share a room,
    browsers from the rest; handed out in turn (reused past the end)."""

    def __init__(self, path: Path) -> None:
        people = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not people:
            raise RuntimeError(f"no people in {path}: run skillshare seed --tokens {path}")
        by_room: dict[str, list[dict[str, Any]]] = {}
        for person in people:
            for room in person.get("rooms", []):
                by_room.setdefault(room, []).append(person)
        chatters: dict[str, dict[str, Any]] = {}
        for members in by_room.values():
            if len(members) == 2 and not any(m["user_id"] in chatters for m in members):
                for member in members:
                    chatters[member["user_id"]] = member
        browsers = [p for p in people if p["user_id"] not in chatters]
        self._chatters = itertools.cycle(list(chatters.values()) or people)
        self._browsers = itertools.cycle(browsers or people)
        self._lock = threading.Lock()

    def chatter(self) -> dict[str, Any]:
        with self._lock:
            return next(self._chatters)

    def browser(self) -> dict[str, Any]:
        with self._lock:
            return next(self._browsers)


PEOPLE: People | None = None


def people() -> People:
    global PEOPLE
    if PEOPLE is None:
        PEOPLE = People(Path(os.environ.get("LAUNCH_TOKENS", "/tmp/lab-tokens.jsonl")))
    return PEOPLE


def report(name: str, started: float, *, error: Exception | str | None = None,
           length: int = 0) -> None:
    """One socket event into locust's statistics, beside the HTTP requests."""
    events.request.fire(
        request_type="socket", name=name, response_time=(time.perf_counter() - started) * 1000,
        response_length=length, exception=Exception(error) if isinstance(error, str) else error,
        context={})


class Browser(FastHttpUser):
    weight = max(1, round(100 * (1 - CHAT_SHARE)))
    wait_time = between(1, 3)

    def on_start(self) -> None:
        person = people().browser()
        self.user_id = person["user_id"]
        self.headers = {"Authorization": f"Bearer {person['access_token']}"}
        self.seen: list[dict[str, Any]] = []

    def _get(self, path: str, name: str, **params: Any) -> Any:
        with self.client.get(path, params=params or None, headers=self.headers, name=name,
                             catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"{resp.status_code} {resp.text[:200] if resp.text else ''}")
                return None
            return resp.json()

    def _remember(self, page: Any) -> None:
        if page and page.get("items"):
            self.seen = page["items"]

    @task(6)
    def browse(self) -> None:
        page = self._get("/api/v1/skills", "/skills newest", limit=20)
        self._remember(page)
        if page and page.get("next_cursor") and random.random() < 0.5:
            self._get("/api/v1/skills", "/skills page 2", limit=20, cursor=page["next_cursor"])

    @task(3)
    def category(self) -> None:
        self._remember(self._get("/api/v1/skills", "/skills?category", limit=20,
                                 category=random.choice(CATEGORIES)))

    @task(4)
    def search(self) -> None:
        self._remember(self._get("/api/v1/skills", "/skills?q", limit=20,
                                 q=random.choice(SEARCH_WORDS)))

    @task(5)
    def open_listing(self) -> None:
        if not self.seen:
            return
        listing = random.choice(self.seen)
        self._get(f"/api/v1/skills/{listing['id']}", "/skills/{id}")
        self._get(f"/api/v1/skills/{listing['id']}/reviews", "/skills/{id}/reviews")
        if random.random() < 0.5:
            self._get(f"/api/v1/users/{listing['owner']['id']}", "/users/{id}")

    @task(2)
    def matches(self) -> None:
        self._get("/api/v1/matches", "/matches")

    @task(2)
    def me(self) -> None:
        self._get("/api/v1/users/me", "/users/me")

    @task(2)
    def rooms(self) -> None:
        self._get("/api/v1/rooms", "/rooms")

    @task(2)
    def my_requests(self) -> None:
        self._get("/api/v1/requests", "/requests")

    @task(1)
    def ask_to_learn(self) -> None:
        if not self.seen:
            return
        listing = random.choice(self.seen)
        with self.client.post(f"/api/v1/skills/{listing['id']}/requests", headers=self.headers,
                              json={"message": "Hi! Could you teach me?"},
                              name="/skills/{id}/requests (ask)", catch_response=True) as resp:
            # asking twice (409) or one's own listing (403) are normal refusals
            if resp.status_code in (201, 403, 409):
                resp.success()
            else:
                resp.failure(f"{resp.status_code} {resp.text[:200] if resp.text else ''}")

    @task(1)
    def review(self) -> None:
        page = self._get("/api/v1/requests", "/requests?role=outgoing&status=completed",
                         role="outgoing", status="completed")
        todo = [r for r in (page or {}).get("items", []) if not r["reviewed"]]
        if not todo:
            return
        with self.client.post(f"/api/v1/requests/{todo[0]['id']}/review", headers=self.headers,
                              json={"rating": random.randint(3, 5), "comment": "Great session."},
                              name="/requests/{id}/review", catch_response=True) as resp:
            if resp.status_code in (201, 409):  # 409: reviewed meanwhile by another of us
                resp.success()
            else:
                resp.failure(f"{resp.status_code} {resp.text[:200] if resp.text else ''}")


class Chatter(FastHttpUser):
    """A person online over Socket.IO (python-socketio's sync client, which
    runs on locust's gevent-patched sockets and threads)."""

    weight = max(1, round(100 * CHAT_SHARE))
    wait_time = between(1, 3)

    def on_start(self) -> None:
        person = people().chatter()
        self.user_id = person["user_id"]
        self.token = person["access_token"]
        self.rooms: list[str] = []
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("message", self._on_message)
        started = time.perf_counter()
        try:
            self.sio.connect(self.host, auth={"token": self.token}, transports=["websocket"],
                             wait_timeout=ACK_TIMEOUT)
        except Exception as exc:
            report("connect", started, error=exc)
            self.stop()
            return
        report("connect", started)
        for room_id in person.get("rooms", [])[:3]:
            ack = self._call("room:join", {"room_id": room_id})
            if ack and ack.get("ok"):
                self.rooms.append(room_id)
                members = [m for m in ack["room"].get("member_ids", []) if m != self.user_id]
                if members:
                    self._call("presence:subscribe", {"user_ids": members})

    def on_stop(self) -> None:
        if getattr(self, "sio", None) is not None and self.sio.connected:
            self.sio.disconnect()

    def _call(self, event: str, data: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            ack = self.sio.call(event, data, timeout=ACK_TIMEOUT)
        except Exception as exc:  # socketio.exceptions.TimeoutError, disconnected
            report(event, started, error=f"{type(exc).__name__}: {exc}")
            return None
        if not isinstance(ack, dict) or not ack.get("ok"):
            report(event, started, error=f"ack {json.dumps(ack)[:200]}")
            return ack if isinstance(ack, dict) else None
        report(event, started, length=len(json.dumps(ack)))
        return ack

    def _on_message(self, message: dict[str, Any]) -> None:
        body = message.get("body", "")
        if message.get("sender_id") == self.user_id or not body.startswith("lt:"):
            return
        try:
            sent = float(body.split(":", 2)[1])
        except ValueError:
            return
        events.request.fire(request_type="socket", name="deliver message",
                            response_time=(time.time() - sent) * 1000,
                            response_length=len(body), exception=None, context={})

    @task(5)
    def chat(self) -> None:
        if not self.rooms:
            return
        room_id = random.choice(self.rooms)
        self._call("typing", {"room_id": room_id, "typing": True})
        self._call("message:send", {"room_id": room_id, "client_id": str(uuid.uuid4()),
                                    "body": f"lt:{time.time():.6f}:hello from the launch test"})
        self._call("typing", {"room_id": room_id, "typing": False})

    @task(1)
    def presence(self) -> None:
        self._call("presence:set", {"status": random.choice(["online", "away", "online"])})

    @task(1)
    def catch_up(self) -> None:
        if self.rooms:
            self._call("room:sync", {"room_id": random.choice(self.rooms), "after_seq": 0,
                                     "limit": 20})

    @task(1)
    def room_list(self) -> None:
        with self.client.get("/api/v1/rooms", headers={"Authorization": f"Bearer {self.token}"},
                             name="/rooms", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(str(resp.status_code))
