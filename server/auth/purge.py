"""The purge of deleted accounts: once the grace period after a deletion
has passed, everything the person wrote or was is erased or anonymised
(docs/privacy.md lists what is kept and why).

One pass takes the accounts due, a few at a time, and for each runs small
store steps, each idempotent; the account document is marked purged last,
so a pass that fails half-way is finished by the next one. Large sets (a
person's messages) are rewritten in batches, so a purge never holds the
node for long."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry, Counter

from ..clock import Clock
from ..mail.service import MailService
from ..storage.audit import AuditStore
from ..storage.blocks import BlockStore
from ..storage.identities import IdentityStore
from ..storage.listings import ListingStore
from ..storage.messages import MessageStore
from ..storage.ranking_snapshots import RankingSnapshotStore
from ..storage.digests import DigestStore
from ..storage.read_markers import ReadMarkerStore
from ..storage.reviews import ReviewStore
from ..storage.rooms import RoomStore
from ..storage.sessions import SessionStore
from ..storage.skill_index import SkillIndexStore
from ..storage.skill_requests import SkillRequestStore
from ..storage.user_tokens import UserTokenStore
from ..storage.users import UserStore

BATCH_SIZE = 500  # documents rewritten per write (messages, listings)
ACCOUNTS_PER_PASS = 50  # accounts taken per query for due accounts


def purge_counter(registry: CollectorRegistry) -> Counter:
    return Counter("skillshare_account_purges_total",
                   "Purges of deleted accounts by outcome (purged, failed).", ["outcome"],
                   registry=registry)


@dataclass(frozen=True, slots=True)
class PurgeStores:
    users: UserStore
    sessions: SessionStore
    user_tokens: UserTokenStore
    audit: AuditStore
    rooms: RoomStore
    messages: MessageStore
    read_markers: ReadMarkerStore
    listings: ListingStore
    skill_requests: SkillRequestStore
    reviews: ReviewStore
    skill_index: SkillIndexStore
    snapshots: RankingSnapshotStore
    blocks: BlockStore
    identities: IdentityStore
    digests: DigestStore | None = None  # email digest state (away since, missed calls)


class AccountPurge:
    """Erases the personal data of accounts deleted more than ``grace``
    ago. ``forget_presence`` drops a user's presence state (status and
    last_seen), which lives outside the database."""

    def __init__(
        self, *, stores: PurgeStores, mail: MailService,
        forget_presence: Callable[[str], Awaitable[None]], grace: timedelta, clock: Clock,
        outcomes: Counter | None = None,
    ) -> None:
        self._s = stores
        self._outcomes = outcomes
        self._mail = mail
        self._forget_presence = forget_presence
        self._grace = grace
        self._clock = clock

    async def purge_due(self) -> int:
        """Purge every account whose grace period is over; returns how many
        were purged. An account that fails is logged and left for the next
        pass; the others go ahead."""
        purged = 0
        failed: set[str] = set()
        while True:
            due = await self._s.users.due_for_purge(
                deleted_before=self._clock.now() - self._grace,
                limit=ACCOUNTS_PER_PASS + len(failed),
            )
            due = [u for u in due if u["_id"] not in failed]
            if not due:
                return purged
            for user in due:
                try:
                    await self.purge(user)
                    purged += 1
                    self._count("purged")
                except asyncio.CancelledError:
                    raise
                except Exception:
                    failed.add(user["_id"])
                    self._count("failed")
                    logger.exception("purging deleted account {} failed; retried next pass",
                                     user["_id"])

    def _count(self, outcome: str) -> None:
        if self._outcomes is not None:
            self._outcomes.labels(outcome).inc()

    async def purge(self, user: dict[str, Any]) -> dict[str, int]:
        """Every step for one deleted account; returns what each changed."""
        s, user_id, now = self._s, user["_id"], self._clock.now()
        done: dict[str, int] = {}
        await self._forget_presence(user_id)
        room_ids = await s.rooms.room_ids_of_member(user_id)
        done["read_markers"] = await s.read_markers.delete_for_user(room_ids, user_id)
        done["messages"] = await _in_batches(
            lambda: s.messages.tombstone_sent(user_id, limit=BATCH_SIZE)
        )
        done["rooms"] = await s.rooms.forget_member(user_id)
        done["listings"] = await _in_batches(
            lambda: s.listings.purge_owned(user_id, now=now, limit=BATCH_SIZE)
        )
        await s.skill_index.remove(user_id)
        done["skill_requests"] = await s.skill_requests.anonymise_party(user_id, now=now)
        done["reviews"] = await s.reviews.anonymise_reviewer(user_id)
        done["ranking_snapshots"] = await s.snapshots.delete_for_viewer(user_id)
        done["sessions"] = await s.sessions.scrub_user(user_id)
        done["user_tokens"] = await s.user_tokens.delete_for_user(user_id)
        done["blocks"] = await s.blocks.forget_user(user_id)
        done["identities"] = await s.identities.delete_for_user(user_id)
        if s.digests is not None:
            done["digests"] = await s.digests.forget(user_id)
        done["audit_ips"] = await s.audit.scrub_ips(user_id)
        done["mails"] = await self._mail.forget(
            user_id, email=user.get("deleted_email") or user.get("email"),
            deleted_at=user.get("deleted_at") or now,
        )
        await s.users.mark_purged(user_id, now=now)
        await s.audit.record(action="account.purge", actor_id=None, target=user_id, ip=None,
                             request_id=None, at=now, details=dict(done))
        logger.info("purged deleted account {}: {}", user_id, done)
        return done


async def _in_batches(step: Callable[[], Awaitable[int]]) -> int:
    """Run ``step`` until it reports 0, yielding to the loop in between."""
    total = 0
    while True:
        count = await step()
        if not count:
            return total
        total += count
        await asyncio.sleep(0)
