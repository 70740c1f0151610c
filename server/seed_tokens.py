"""``skillshare seed --tokens FILE``: signed-in demo people for load tests.

Signing 1,000 people in through the API costs 1,000 argon2id hashes (by
design seconds of CPU each burst), which would make a launch test measure
sign-in instead of the product. The seed instead opens one real session per
demo account, exactly as a sign-in would (a ``sessions`` document, an access
token signed with the node's key), and writes one JSON line per person:
``{"n", "email", "user_id", "access_token", "rooms"}`` (``rooms``: the ids of
the chat rooms the person is in, so a load test can put people who share a
room online together). The tokens live as long as
``SKILLSHARE_ACCESS_TOKEN_TTL`` (give the node and the seed the same, e.g.
86400 for a long test). The file is written 0600: it holds credentials."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from .auth.tokens import AccessTokens, hash_secret, new_secret
from .clock import Clock
from .config import Settings
from .storage.fields import FieldCrypto
from .private_files import write_private_file
from .storage.rooms import RoomStore
from .storage.sessions import SessionStore
from .storage.users import UserStore

LOAD_TEST_USER_AGENT = "skillshare-seed (load test session)"


async def write_demo_tokens(db: Any, *, users: UserStore, fields: FieldCrypto, settings: Settings, count: int,
                            email_format: str, path: Path, clock: Clock) -> int:
    """Sessions and access tokens for demo accounts 1..``count`` that exist;
    returns how many were written."""
    sessions = SessionStore(db, fields)
    rooms = RoomStore(db)
    tokens = AccessTokens(keys=settings.signing_keys(), issuer=settings.jwt_issuer,
                          audience=settings.jwt_audience, ttl=settings.access_token_ttl,
                          clock=clock)
    lines: list[str] = []
    now = clock.now()
    for n in range(1, count + 1):
        email = email_format.format(n=n)
        user = await users.find_by_email(email)
        if user is None or user.get("status") != "active":
            continue
        session = await sessions.create(
            user_id=user["_id"], refresh_hash=hash_secret(new_secret()), now=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl), ip=None,
            user_agent=LOAD_TEST_USER_AGENT)
        access, _ = tokens.issue(user_id=user["_id"], session_id=session["_id"],
                                 role=user.get("role", "user"))
        room_ids = [str(r) for r in await rooms.room_ids_of_member(user["_id"])]
        lines.append(json.dumps({"n": n, "email": email, "user_id": user["_id"],
                                 "access_token": access, "rooms": room_ids}))
    write_private_file(path, ("\n".join(lines) + "\n").encode())
    return len(lines)
