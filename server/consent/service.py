"""``ConsentService``: blocks and relations between people.

A *relation* of ``person`` towards ``viewer`` means the person chose to deal
with the viewer: a skill request between them (either direction; pending,
accepted or completed: a declined or cancelled one is a "no"), a group
room they share, or a direct room between them that the person opened or
wrote in. Merely being put into a direct room by a stranger is not consent.
A block (either direction) cancels every relation.

Presence of ``person`` is visible to ``viewer`` when the person has a
relation towards the viewer, or made their presence public
(``presence_visibility: "public"``), and neither blocked the other.

Each node keeps, per person, everyone they blocked or were blocked by (the
read cache's ``blocks`` namespace), so a check is a set lookup, not a
database read per message. A block or unblock drops both people's sets on
its node before the request answers, and on every other node when the
change announced on the bus topic ``consent_changed`` (``{"user_ids":
[...], "blocks": true}``, awaited before the answer) arrives there:
milliseconds. A bus reconnect forgets every set (a change may have been
missed), and a set lives at most two minutes. Every change that may alter
who sees whom is announced the same way (``"blocks": false`` unless blocks
changed); the real-time layer re-checks the presence subscriptions of those
people on every node."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from ..auth.sessions import ClientInfo
from ..bus import Bus
from ..clock import Clock
from ..errors import BlockLimitReached, Blocked, NotFound, ValidationFailed
from ..read_cache import BLOCKS, ReadCache
from ..storage.audit import AuditStore
from ..storage.blocks import BlockStore
from ..storage.rooms import DIRECT, RoomStore
from ..storage.skill_requests import ACCEPTED, COMPLETED, PENDING, SkillRequestStore
from ..storage.users import UserStore

CONSENT_CHANGED_TOPIC = "consent_changed"
PRESENCE_CONTACTS = "contacts"
PRESENCE_PUBLIC = "public"
PRESENCE_VISIBILITIES = (PRESENCE_CONTACTS, PRESENCE_PUBLIC)
# A declined or cancelled request is someone saying no: it is no relation.
RELATING_REQUEST_STATUSES = (PENDING, ACCEPTED, COMPLETED)


def presence_visibility(user: dict[str, Any]) -> str:
    return user.get("presence_visibility") or PRESENCE_CONTACTS


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """A stored block and the blocked person (None once they are gone)."""

    block: dict[str, Any]
    person: dict[str, Any] | None


class ConsentService:
    def __init__(
        self, *, blocks: BlockStore, rooms: RoomStore, requests: SkillRequestStore,
        users: UserStore, audit: AuditStore, bus: Bus, clock: Clock, max_blocks: int,
        cache: ReadCache | None = None,
    ) -> None:
        self._blocks = blocks
        self._cache = cache
        bus.subscribe(CONSENT_CHANGED_TOPIC, self._on_changed)
        self._rooms = rooms
        self._requests = requests
        self._users = users
        self._audit = audit
        self._bus = bus
        self._clock = clock
        self._max_blocks = max_blocks

    # --- blocks ----------------------------------------------------------

    async def block(self, blocker_id: str, target_id: str, client: ClientInfo
                    ) -> tuple[BlockEntry, bool]:
        """Block ``target_id``; ``(block, created)``. Idempotent."""
        if blocker_id == target_id:
            raise ValidationFailed.field("id", "You cannot block yourself.")
        target = await self._users.get_active(target_id)
        if target is None:
            raise NotFound("No such user.")
        existing = await self._blocks.get(blocker_id, target_id)
        if existing is not None:
            return BlockEntry(existing, target), False
        if not await self._blocks.reserve(blocker_id, limit=self._max_blocks):
            existing = await self._blocks.get(blocker_id, target_id)  # stored meanwhile
            if existing is not None:
                return BlockEntry(existing, target), False
            raise BlockLimitReached(
                f"You can block at most {self._max_blocks} people; unblock someone first.",
                details={"max_blocks": self._max_blocks},
            )
        doc, created = await self._blocks.add(blocker_id, target_id, now=self._clock.now())
        if not created:  # a concurrent request stored it first
            await self._blocks.release(blocker_id)
        else:
            await self._audit.record(
                action="user.block", actor_id=blocker_id, target=target_id, ip=client.ip,
                request_id=client.request_id, at=self._clock.now(),
            )
            logger.info("user {} blocked {}", blocker_id, target_id)
            await self.changed([blocker_id, target_id], blocks=True)
        return BlockEntry(doc, target), created

    async def unblock(self, blocker_id: str, target_id: str, client: ClientInfo) -> None:
        """Idempotent: unblocking someone not blocked is not an error."""
        if await self._blocks.remove(blocker_id, target_id):
            await self._blocks.release(blocker_id)
            await self._audit.record(
                action="user.unblock", actor_id=blocker_id, target=target_id, ip=client.ip,
                request_id=client.request_id, at=self._clock.now(),
            )
            logger.info("user {} unblocked {}", blocker_id, target_id)
            await self.changed([blocker_id, target_id], blocks=True)

    async def list_blocks(self, blocker_id: str, *, before: str | None, limit: int
                          ) -> tuple[list[BlockEntry], str | None]:
        """A page of the people ``blocker_id`` blocked, newest first, and the
        position to continue from (None at the end)."""
        docs = await self._blocks.page_by(blocker_id, before=before, limit=limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        people = {u["_id"]: u for u in await self._users.get_many_active(
            [d["blocked_id"] for d in docs])}
        items = [BlockEntry(d, people.get(d["blocked_id"])) for d in docs]
        return items, (docs[-1]["seq_id"] if more and docs else None)

    async def export(self, user_id: str) -> list[dict[str, Any]]:
        return [{"user_id": d["blocked_id"], "created_at": d["created_at"]}
                for d in await self._blocks.all_by(user_id)]

    async def _involving(self, user_id: str) -> frozenset[str]:
        """Everyone ``user_id`` blocked or was blocked by (cached: see the
        module docstring)."""
        async def load() -> frozenset[str]:
            return frozenset(await self._blocks.involving(user_id))

        if self._cache is None:
            return await load()
        return await self._cache.read(BLOCKS, user_id, load)

    async def is_blocked(self, user_a: str, user_b: str) -> bool:
        return user_b in await self._involving(user_a)

    async def ensure_not_blocked(self, user_id: str, other_id: str) -> None:
        """``blocked`` when either of the two blocked the other."""
        if user_id != other_id and await self.is_blocked(user_id, other_id):
            raise Blocked()

    def _forget_blocks(self, user_ids: Iterable[str]) -> None:
        if self._cache is not None:
            for user_id in user_ids:
                self._cache.drop(BLOCKS, user_id)

    async def _on_changed(self, payload: dict[str, Any]) -> None:
        ids = payload.get("user_ids")
        # (a change without the flag, from an older node, may be a block)
        if isinstance(ids, list) and payload.get("blocks", True):
            self._forget_blocks(str(u) for u in ids)

    async def blocked_among(self, user_id: str, others: Iterable[str]) -> list[str]:
        involved = await self._involving(user_id)
        return [o for o in others if o in involved]

    # --- relations -------------------------------------------------------

    async def related(self, viewer_id: str, person_ids: Iterable[str]) -> set[str]:
        """Those of ``person_ids`` with a relation towards ``viewer_id``
        (see the module docstring), blocks excluded."""
        wanted = set(person_ids) - {viewer_id}
        if not wanted:
            return set()
        found: set[str] = set()
        for room in await self._rooms.memberships(viewer_id):
            members = room.get("member_ids") or []
            if room.get("type") == DIRECT:
                members = room.get("active_ids", members)
            found.update(m for m in members if m in wanted)
        if found != wanted:
            found |= await self._requests.counterparts(
                viewer_id, statuses=RELATING_REQUEST_STATUSES) & wanted
        if found:
            found -= await self._involving(viewer_id)
        return found

    async def presence_visible(self, viewer_id: str, person_ids: Iterable[str]) -> set[str]:
        """Those of ``person_ids`` whose presence ``viewer_id`` may see."""
        wanted = set(person_ids)
        visible = await self.related(viewer_id, wanted)
        if viewer_id in wanted:
            visible.add(viewer_id)
        rest = list(wanted - visible)
        if rest:
            blocked = await self._involving(viewer_id)
            for user in await self._users.get_many_active(rest):
                if presence_visibility(user) == PRESENCE_PUBLIC and user["_id"] not in blocked:
                    visible.add(user["_id"])
        return visible

    async def changed(self, user_ids: Iterable[str], *, blocks: bool = False) -> None:
        """Tell every node that relations or settings of these people
        changed (``blocks``: who blocked whom among them). A failed publish
        is logged: the other nodes re-check every subscription, and forget
        every cached block, when their bus reconnects; cached blocks live
        at most two minutes."""
        ids = sorted(set(user_ids))
        if not ids:
            return
        if blocks:
            self._forget_blocks(ids)  # here before the caller answers; elsewhere by the bus
        try:
            await self._bus.publish(CONSENT_CHANGED_TOPIC, {"user_ids": ids, "blocks": blocks})
        except Exception:
            logger.warning("consent: could not announce a change for {} users", len(ids))


