"""Matching people by skills: who offers what I want, and wants what I
offer. A mutual swap scores highest.

Skill names compare by ``skill_key`` (docs/marketplace.md). What a user
offers is their profile's ``skills_offered`` plus the tags of their visible
listings; what they want is ``skills_wanted``. The ``skill_index`` store
keeps those keys per user so candidates are found by index; the scores and
reasons are always computed from the live profiles."""

from __future__ import annotations

from typing import Any

from ..clock import Clock
from ..errors import Unauthorized, ValidationFailed
from ..storage.ids import decode_cursor, encode_cursor
from ..storage.listings import ListingStore
from ..storage.skill_index import SkillIndexStore
from ..storage.users import ACTIVE, UserStore
from .people import active_users
from .text import skill_key

MUTUAL_BONUS = 10
THEY_TEACH_WEIGHT = 3
YOU_TEACH_WEIGHT = 2


def _skills(entries: list[dict[str, Any]] | None) -> dict[str, str]:
    """key -> display name, first spelling wins."""
    out: dict[str, str] = {}
    for entry in entries or []:
        name = str(entry.get("name", "")).strip()
        key = skill_key(name)
        if key:
            out.setdefault(key, name)
    return out


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def reason_for(name: str, they_teach: list[str], you_teach: list[str]) -> str:
    if they_teach and you_teach:
        return (f"Skill swap: {name} can teach you {_join(they_teach)} and wants to learn "
                f"{_join(you_teach)} from you.")
    if they_teach:
        return f"{name} can teach you {_join(they_teach)}."
    return f"{name} wants to learn {_join(you_teach)}, which you offer."


class MatchService:
    def __init__(
        self, *, users: UserStore, listings: ListingStore, index: SkillIndexStore, clock: Clock
    ) -> None:
        self._users = users
        self._listings = listings
        self._index = index
        self._clock = clock

    async def _offered(self, user: dict[str, Any], tags: list[str] | None = None
                       ) -> dict[str, str]:
        if tags is None:
            tags = (await self._listings.tags_by_owner([user["_id"]])).get(user["_id"], [])
        offered = _skills(user.get("skills_offered"))
        for tag in tags:
            key = skill_key(tag)
            if key:
                offered.setdefault(key, tag)
        return offered

    async def refresh(self, user_id: str) -> None:
        user = await self._users.get(user_id)
        if user is None or user.get("status") != ACTIVE:
            await self._index.remove(user_id)
            return
        await self.refresh_user(user)

    async def refresh_user(self, user: dict[str, Any]) -> None:
        """Re-index one user from their profile document (profile update hook)."""
        if user.get("status") != ACTIVE:
            await self._index.remove(user["_id"])
            return
        await self._index.put(
            user["_id"], offered=list(await self._offered(user)),
            wanted=list(_skills(user.get("skills_wanted"))), now=self._clock.now(),
        )

    async def remove(self, user_id: str) -> None:
        await self._index.remove(user_id)

    async def matches(self, user_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        me = await self._users.get_active(user_id)
        if me is None:
            raise Unauthorized("This account is no longer active.")
        my_offered = await self._offered(me)
        my_wanted = _skills(me.get("skills_wanted"))
        await self._index.put(user_id, offered=list(my_offered), wanted=list(my_wanted),
                              now=self._clock.now())
        found = await self._index.candidates(
            user_id, offered=list(my_offered), wanted=list(my_wanted)
        )
        people = list((await active_users(self._users, (c["_id"] for c in found))).values())
        listing_tags = await self._listings.tags_by_owner([p["_id"] for p in people])
        ranked = []
        for person in people:
            offered = await self._offered(person, listing_tags.get(person["_id"], []))
            wanted = _skills(person.get("skills_wanted"))
            they_teach = [offered[k] for k in my_wanted if k in offered]
            you_teach = [my_offered[k] for k in wanted if k in my_offered]
            if not they_teach and not you_teach:
                continue  # stale index entry
            mutual = bool(they_teach and you_teach)
            score = (THEY_TEACH_WEIGHT * len(they_teach) + YOU_TEACH_WEIGHT * len(you_teach)
                     + (MUTUAL_BONUS if mutual else 0))
            ranked.append((score, person["_id"], {
                "user": {"id": person["_id"], "display_name": person["display_name"]},
                "score": score, "mutual": mutual, "they_teach": they_teach,
                "you_teach": you_teach,
                "reason": reason_for(person["display_name"], they_teach, you_teach),
            }))
        ranked.sort(key=lambda r: (-r[0], r[1]))
        position = decode_cursor(cursor)
        if position is not None:
            if not isinstance(position.get("s"), int) or not isinstance(position.get("id"), str):
                raise ValidationFailed.field("cursor", "Invalid cursor.")
            after = (-position["s"], position["id"])
            ranked = [r for r in ranked if (-r[0], r[1]) > after]
        page = ranked[:limit]
        next_cursor = None
        if len(ranked) > limit:
            next_cursor = encode_cursor({"s": page[-1][0], "id": page[-1][1]})
        return {"items": [r[2] for r in page], "next_cursor": next_cursor}
