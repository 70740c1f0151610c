"""``skillshare seed --users N``: realistic demo data — people with skills,
listings across every category, requests in every state, reviews — so a new
user sees a living product and load tests have data.

Every demo account is ``demo<i>@skillshare.test`` with the password
``DEMO_PASSWORD``. The password is hashed once and the hash reused. Running
the seed again adds only the accounts that do not exist yet."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timedelta, UTC
from typing import Any

from bson import ObjectId
from loguru import logger

from .auth.passwords import Passwords
from .clock import Clock
from .config import Settings
from .errors import EmailTaken
from .marketplace.listings import searchable
from .marketplace.text import normalise_tags, skill_key
from .seed_tokens import write_demo_tokens
from .storage.database import open_database
from .storage.fields import FieldCrypto
from .storage.listings import ListingStore
from .storage.reviews import ReviewStore
from .storage.rooms import RoomStore, direct_key
from .storage.skill_index import SkillIndexStore
from .storage.skill_requests import OPEN_STATES, SkillRequestStore, open_key
from .storage.users import UserStore

DEMO_PASSWORD = "skillshare-demo"
DEMO_EMAIL = "demo{n}@skillshare.test"
HISTORY_DAYS = 90
REQUESTS_PER_USER = 2
STATUS_WEIGHTS = {"pending": 30, "accepted": 20, "declined": 15, "cancelled": 10,
                  "completed": 25}
REVIEW_SHARE = 0.7
RATING_WEIGHTS = {5: 45, 4: 35, 3: 12, 2: 5, 1: 3}

SKILLS: dict[str, list[str]] = {
    "programming": ["Python", "JavaScript", "Rust", "Go", "SQL", "Git"],
    "data": ["Machine Learning", "Excel", "Statistics", "Pandas"],
    "design": ["Figma", "Illustration", "Photography", "UX Design"],
    "music": ["Guitar", "Piano", "Singing", "Music Theory", "Drums"],
    "languages": ["Spanish", "French", "Japanese", "German", "English"],
    "business": ["Public Speaking", "Marketing", "Accounting", "Negotiation"],
    "writing": ["Copywriting", "Creative Writing", "Technical Writing"],
    "cooking": ["Baking", "Italian Cooking", "Knife Skills", "Coffee"],
    "fitness": ["Yoga", "Running", "Strength Training", "Climbing"],
    "crafts": ["Knitting", "Woodworking", "Pottery", "Sewing"],
    "science": ["Calculus", "Physics", "Chemistry", "Astronomy"],
}
TITLES = [
    "{skill} for complete beginners", "Intermediate {skill}: level up", "{skill} one-to-one",
    "Learn {skill} by doing", "Weekend {skill} crash course", "{skill} office hours",
]
DESCRIPTIONS = [
    "Friendly, patient sessions tailored to your goals. We start from what you know.",
    "Hands-on practice every session, with small exercises between meetings.",
    "I have taught {skill} for years and love seeing people get unstuck.",
    "Bring your questions and projects; we work through them together.",
]
FIRST = ["Ada", "Grace", "Alan", "Linus", "Maya", "Omar", "Lena", "Kenji", "Sofia", "Ravi",
         "Amara", "Noah", "Ines", "Tariq", "Yuki", "Elena", "Kofi", "Zoe", "Mateo", "Priya"]
LAST = ["Lovelace", "Hopper", "Turing", "Okafor", "Silva", "Nakamura", "Haddad", "Novak",
        "Fischer", "Kowalski", "Mensah", "Rossi", "Garcia", "Khan", "Dubois", "Larsen"]
BIOS = ["Always learning something new.", "Happy to swap skills over coffee.",
        "Teacher by day, tinkerer by night.", "Curious about everything."]
REVIEWS = ["Clear explanations and great exercises.", "Very patient, highly recommended.",
           "Good session, learned a lot.", "Helpful, though a bit fast for me.", ""]
LEVELS = ["beginner", "intermediate", "advanced", "expert"]
MODES = ["online", "online", "in_person", "hybrid"]


def _id_at(moment: datetime) -> str:
    """An ObjectId for a past moment, so `_id` order matches `created_at`."""
    return str(ObjectId(int(moment.timestamp()).to_bytes(4, "big") + os.urandom(8)))


@dataclass
class SeedReport:
    users: int = 0
    listings: int = 0
    requests: int = 0
    reviews: int = 0
    skipped_users: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


async def seed_database(db: Any, *, fields: FieldCrypto, users: int, random_seed: int,
                        password_hash: str, now: datetime | None = None) -> SeedReport:
    """Write the demo data into ``db``, whose indexes ``open_database`` has
    created; the data satisfies every unique index (one direct room per pair,
    one open request per learner and listing, one review per request)."""
    rng = random.Random(random_seed)
    now = now or datetime.now(UTC)
    report = SeedReport()
    started = time.perf_counter()
    user_store, listing_store = UserStore(db, fields), ListingStore(db)
    request_store, review_store = SkillRequestStore(db, fields), ReviewStore(db, fields)
    skill_index = SkillIndexStore(db)
    all_skills = [(cat, s) for cat, names in SKILLS.items() for s in names]

    people: list[dict[str, Any]] = []
    for n in range(1, users + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        try:
            user = await user_store.create(
                email=DEMO_EMAIL.format(n=n), password_hash=password_hash,
                display_name=f"{first} {last}", now=now,
            )
        except EmailTaken:
            report.skipped_users += 1
            continue
        picks = rng.sample(all_skills, 5)
        offered, wanted = picks[:rng.randint(1, 3)], picks[3:3 + rng.randint(1, 2)]
        profile = {
            "bio": rng.choice(BIOS), "languages": rng.sample(["en", "es", "fr", "de", "ja"], 2),
            "skills_offered": [{"name": s, "level": rng.choice(LEVELS[1:])} for _, s in offered],
            "skills_wanted": [{"name": s, "level": rng.choice(LEVELS[:2])} for _, s in wanted],
            "email_verified": True,
        }
        await user_store.update_profile(user["_id"], profile, now=now)
        people.append({"_id": user["_id"], "offered": offered, "wanted": wanted})
    report.users = len(people)

    listings: list[dict[str, Any]] = []
    for person in people:
        for category, skill in person["offered"][:rng.randint(1, 3)]:
            created = now - timedelta(days=rng.uniform(1, HISTORY_DAYS))
            text = {
                "title": rng.choice(TITLES).format(skill=skill),
                "description": " ".join(rng.sample(DESCRIPTIONS, 2)).format(skill=skill),
                "tags": normalise_tags([skill, category, rng.choice(LEVELS)]),
            }
            listings.append({
                "_id": _id_at(created), "owner_id": person["_id"], **text,
                "category": category, "level": rng.choice(["all", *LEVELS[:3]]),
                "mode": rng.choice(MODES), **searchable(text), "status": "active",
                "owner_active": True, "visible": True, "rating_sum": 0, "rating_count": 0,
                "created_at": created, "updated_at": created,
            })
    requests: list[dict[str, Any]] = []
    reviews: list[dict[str, Any]] = []
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    by_id = {doc["_id"]: doc for doc in listings}
    names = {p["_id"]: p for p in people}
    direct_rooms: dict[str, str] = {}  # one room per pair, as the unique index wants
    for person in people:
        choices = [d for d in listings if d["owner_id"] != person["_id"]]
        for listing in rng.sample(choices, min(REQUESTS_PER_USER, len(choices))):
            status = rng.choices(statuses, weights)[0]
            created = max(listing["created_at"], now - timedelta(days=rng.uniform(0, 30)))
            doc = {
                "_id": _id_at(created), "listing_id": listing["_id"],
                "listing_title": listing["title"], "learner_id": person["_id"],
                "teacher_id": listing["owner_id"],
                "message": f"Hi! I'd love to learn {listing['tags'][0]} with you.",
                "status": status, "room_id": None, "reviewed": False,
                "created_at": created, "updated_at": created,
            }
            if status in OPEN_STATES:
                doc["open_key"] = open_key(person["_id"], listing["_id"])
            if status in ("accepted", "completed"):
                pair = direct_key(listing["owner_id"], person["_id"])
                if pair not in direct_rooms:
                    direct_rooms[pair] = await _direct_room(
                        db, listing["owner_id"], person["_id"], now)
                doc["room_id"] = direct_rooms[pair]
            requests.append(doc)
            report.statuses[status] = report.statuses.get(status, 0) + 1
            if status == "completed" and rng.random() < REVIEW_SHARE:
                rating = rng.choices(list(RATING_WEIGHTS), list(RATING_WEIGHTS.values()))[0]
                doc["reviewed"] = True
                reviews.append({
                    "_id": _id_at(created + timedelta(days=1)), "request_id": doc["_id"],
                    "listing_id": listing["_id"], "reviewer_id": person["_id"],
                    "teacher_id": listing["owner_id"], "rating": rating,
                    "comment": rng.choice(REVIEWS), "created_at": created + timedelta(days=1),
                })
                by_id[listing["_id"]]["rating_sum"] += rating
                by_id[listing["_id"]]["rating_count"] += 1
    await listing_store.insert_many(listings)
    await request_store.insert_many(requests)
    await review_store.insert_many(reviews)
    await skill_index.put_many([{
        "_id": p["_id"],
        "offered": list(dict.fromkeys(
            [skill_key(s) for _, s in p["offered"]]
            + [skill_key(t) for d in listings if d["owner_id"] == p["_id"] for t in d["tags"]])),
        "wanted": [skill_key(s) for _, s in p["wanted"]],
        "updated_at": now,
    } for p in names.values()])
    report.listings, report.requests, report.reviews = len(listings), len(requests), len(reviews)
    report.seconds = round(time.perf_counter() - started, 2)
    return report


async def _direct_room(db: Any, user_a: str, user_b: str, now: datetime) -> str:
    """The pair's direct chat room (an existing one from an earlier run too)."""
    room, _ = await RoomStore(db).create_direct(user_a, user_b, now=now)
    return str(room["_id"])


async def run_seed(settings: Settings, *, users: int, random_seed: int,
                   tokens_file: Path | None = None) -> SeedReport:
    passwords = Passwords(
        min_length=settings.password_min_length, max_length=settings.password_max_length,
        time_cost=settings.password_hash_time_cost,
        memory_cost_kib=settings.password_hash_memory_kib,
    )
    password_hash = await passwords.hash(DEMO_PASSWORD)
    async with open_database(mongo_url=settings.mongo_url, db_name=settings.mongo_db,
                             data_dir=settings.data_dir) as db:
        fields = FieldCrypto(settings.data_keys())
        report = await seed_database(db, fields=fields, users=users,
                                     random_seed=random_seed, password_hash=password_hash)
        if tokens_file is not None:
            written = await write_demo_tokens(
                db, users=UserStore(db, fields), fields=fields, settings=settings, count=users,
                email_format=DEMO_EMAIL, path=tokens_file, clock=Clock())
            logger.info("wrote {} signed-in demo sessions to {}", written, tokens_file)
    logger.info(
        "seeded {} users ({} already there), {} listings, {} requests {}, {} reviews in {}s; "
        "sign in as {} with password {!r}",
        report.users, report.skipped_users, report.listings, report.requests,
        report.statuses, report.reviews, report.seconds, DEMO_EMAIL.format(n=1), DEMO_PASSWORD,
    )
    return report
