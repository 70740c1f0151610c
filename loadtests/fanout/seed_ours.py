"""Users, sessions, rooms and access tokens for the fan-out benchmark, written
straight into a running node's database through our own store classes (the
fastest honest way: a REST sign-up per user would time password hashing,
not fan-out). Run by run.py with the checked-out server's Python and the
node's environment (``SKILLSHARE_*``), so the tokens verify on that node:

    SKILLSHARE_...=... python loadtests/fanout/seed_ours.py < spec.json > clients.json

spec: {"rooms": N, "size": K, "type": "group" | "direct"} (direct: K = 2).
Out: [{"user_id", "token", "room_id"}], every member of every room.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import timedelta

from pymongo import AsyncMongoClient

from server.auth.tokens import AccessTokens, hash_secret, new_secret
from server.clock import Clock
from server.config import load_settings
from server.storage.fields import FieldCrypto
from server.storage.rooms import RoomStore
from server.storage.sessions import SessionStore
from server.storage.users import UserStore


async def seed(spec: dict) -> list[dict]:
    settings = load_settings()
    clock = Clock()
    tokens = AccessTokens(keys=settings.signing_keys(), issuer=settings.jwt_issuer,
                          audience=settings.jwt_audience, ttl=settings.access_token_ttl, clock=clock)
    client = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    db = client[settings.mongo_db]
    fields = FieldCrypto(settings.data_keys())
    users, sessions, rooms = UserStore(db, fields), SessionStore(db, fields), RoomStore(db)
    now = clock.now()
    run = uuid.uuid4().hex[:8]

    async def member(i: int) -> dict:
        user = await users.create(email=f"fanout-{run}-{i}@bench.test", password_hash=None,
                                  display_name=f"bench {i}", now=now, email_verified=True)
        session = await sessions.create(user_id=user["_id"], refresh_hash=hash_secret(new_secret()),
                                        now=now, expires_at=now + timedelta(days=1), ip=None,
                                        user_agent="fanout bench")
        token, _ = tokens.issue(user_id=user["_id"], session_id=session["_id"], role="user")
        return {"user_id": user["_id"], "token": token}

    out: list[dict] = []
    try:
        for r in range(spec["rooms"]):
            people = await asyncio.gather(*(member(r * spec["size"] + m) for m in range(spec["size"])))
            ids = [p["user_id"] for p in people]
            if spec["type"] == "direct":
                room, _ = await rooms.create_direct(ids[0], ids[1], now=now)
            else:
                room = await rooms.create_group(name=f"bench {r}", member_ids=ids,
                                                created_by=ids[0], now=now)
            out.extend({**p, "room_id": room["_id"]} for p in people)
    finally:
        await client.close()
    return out


if __name__ == "__main__":
    json.dump(asyncio.run(seed(json.load(sys.stdin))), sys.stdout)
