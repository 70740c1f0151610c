"""REST load: people signing up, browsing and searching the marketplace,
looking at matches and profiles, and now and then publishing a listing or
asking to learn. Chat and fan-out load is ``realtime_bench.py``; media relay
load is ``relay_bench.py``.

Run against a lab node with limits off and demo data:

    SKILLSHARE_RATE_LIMITS=off SKILLSHARE_DATA_DIR=/tmp/lab skillshare seed --users 300
    SKILLSHARE_RATE_LIMITS=off SKILLSHARE_DATA_DIR=/tmp/lab skillshare serve &
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 \\
        --headless -u 50 -r 10 -t 60s --only-summary

Only point it at a server of your own on this machine.
"""

from __future__ import annotations

import random
import uuid

from locust import HttpUser, between, task

SEARCH_WORDS = ["python", "guitar", "spanish", "cooking", "design", "yoga", "data",
                "writing", "piano", "marketing", "photography", "french"]
CATEGORIES = ["programming", "data", "design", "music", "languages", "business",
              "writing", "cooking", "fitness", "crafts", "science", "other"]


class Learner(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        email = f"load-{uuid.uuid4().hex[:12]}@example.com"
        with self.client.post("/api/v1/auth/register", name="/api/v1/auth/register", json={
            "email": email, "password": "load test password 1", "display_name": "Load Tester",
        }, catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"register: {resp.status_code} {resp.text[:200]}")
                self.stop()
                return
            body = resp.json()
        self.headers = {"Authorization": f"Bearer {body['access_token']}"}
        self.user_id = body["user"]["id"]
        self.client.patch("/api/v1/users/me", headers=self.headers, json={
            "skills_offered": [{"name": random.choice(SEARCH_WORDS), "level": "advanced"}],
            "skills_wanted": [{"name": random.choice(SEARCH_WORDS), "level": "beginner"}],
        })
        self.seen_listings: list[str] = []

    @task(6)
    def browse(self) -> None:
        resp = self.client.get("/api/v1/skills", params={"limit": 20}, headers=self.headers)
        if resp.ok:
            self.seen_listings = [item["id"] for item in resp.json()["items"]]
            cursor = resp.json()["next_cursor"]
            if cursor:
                self.client.get("/api/v1/skills", params={"limit": 20, "cursor": cursor},
                                headers=self.headers, name="/api/v1/skills?cursor")

    @task(5)
    def search(self) -> None:
        self.client.get("/api/v1/skills", headers=self.headers, name="/api/v1/skills?q",
                        params={"q": random.choice(SEARCH_WORDS), "limit": 20})

    @task(2)
    def filter_by_category(self) -> None:
        self.client.get("/api/v1/skills", headers=self.headers, name="/api/v1/skills?category",
                        params={"category": random.choice(CATEGORIES)})

    @task(3)
    def open_listing(self) -> None:
        if self.seen_listings:
            listing = random.choice(self.seen_listings)
            self.client.get(f"/api/v1/skills/{listing}", headers=self.headers,
                            name="/api/v1/skills/{id}")

    @task(2)
    def matches(self) -> None:
        self.client.get("/api/v1/matches", headers=self.headers)

    @task(2)
    def me(self) -> None:
        self.client.get("/api/v1/users/me", headers=self.headers)
        self.client.get("/api/v1/rooms", headers=self.headers)

    @task(1)
    def publish(self) -> None:
        word = random.choice(SEARCH_WORDS)
        self.client.post("/api/v1/skills", headers=self.headers, json={
            "title": f"Learn {word} with me", "description": f"Friendly {word} sessions.",
            "category": random.choice(CATEGORIES), "tags": [word], "level": "beginner",
            "mode": "online",
        })

    @task(1)
    def ask_to_learn(self) -> None:
        if not self.seen_listings:
            return
        listing = random.choice(self.seen_listings)
        with self.client.post(f"/api/v1/skills/{listing}/requests", headers=self.headers,
                              json={"message": "Hi! Could you teach me?"},
                              name="/api/v1/skills/{id}/requests",
                              catch_response=True) as resp:
            # Asking twice, or asking oneself, is a normal refusal here.
            if resp.status_code in (201, 403, 409):
                resp.success()
