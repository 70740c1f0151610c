"""The email digest: people who went away and, meanwhile, got messages or
missed a call get one mail listing what is *still unread when it is sent*,
at most one per ``interval`` per person, if they have not turned digests off
(``email_digest`` in their profile) and their email address is verified.

Presence tells the service when someone's last socket went (``away``) and
when they are back (nothing to mail then). A sweep on every node looks at
people away for at least ``delay`` whose next check is due, claims each one
(compare-and-set in the store, so one node builds a person's digest), and
either mails or looks again later."""

from __future__ import annotations

import asyncio
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any

from loguru import logger
from prometheus_client import CollectorRegistry, Counter

from ..clock import Clock
from ..tasks import cancel_and_wait
from .mail import MissedCall, UnreadRoom, digest_mail
from .unsubscribe import UnsubscribeTokens

if TYPE_CHECKING:
    from ..mail.service import MailService
    from ..storage.digests import DigestStore
    from ..storage.users import UserStore

SWEEP_BATCH = 50
CLAIM_LEASE_S = 300.0  # a node that died mid-digest leaves the person to another after this
RECHECK_S = 600.0  # nothing to mail yet: look again this much later
MAX_ROOMS = 10  # conversations listed in one digest
LATEST_PER_ROOM = 3  # newest unread messages quoted per conversation
SINCE_SLACK_S = 1.0  # message times are stored to the millisecond


class DigestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "skillshare_digests_total",
            "Digest checks by outcome: sent, nothing (nothing unread), opted_out, unverified, "
            "too_soon, failed.",
            ["outcome"], registry=registry)
        self.unsubscribed = Counter(
            "skillshare_digest_unsubscribes_total", "Digests turned off through the mailed link.",
            registry=registry)
        for outcome in ("sent", "nothing", "opted_out", "unverified", "too_soon", "failed"):
            self.outcomes.labels(outcome)


def _every(seconds: float) -> str:
    if seconds % 86400 == 0:
        days = int(seconds // 86400)
        return "day" if days == 1 else f"{days} days"
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{int(seconds // 60)} minutes"


def _epoch(at: datetime) -> float:
    """A stored time (naive datetimes are UTC) as a Unix time."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class DigestService:
    def __init__(self, *, store: DigestStore, users: UserStore, rooms: Any, chat: Any,
                 mail: MailService, tokens: UnsubscribeTokens, metrics: DigestMetrics,
                 clock: Clock, public_url: str, interval: float, delay: float,
                 sweep_interval: float) -> None:
        self._store = store
        self._users = users
        self._rooms = rooms
        self._chat = chat
        self._mail = mail
        self._tokens = tokens
        self.metrics = metrics
        self._clock = clock
        self._public_url = public_url.rstrip("/")
        self.interval = interval
        self.delay = delay
        self._sweep_interval = sweep_interval
        self._task: asyncio.Task[None] | None = None

    # --- what happens to people ---------------------------------------------

    async def on_presence(self, user_id: str, status: str) -> None:
        try:
            if status == "offline":
                now = self._clock.time()
                await self._store.mark_away(user_id, now=now, check_at=now + self.delay)
            else:
                await self._store.mark_back(user_id)
        except Exception:
            logger.exception("digest: could not record that {} is {}", user_id, status)

    async def note_missed_call(self, callee_id: str, caller_id: str) -> None:
        try:
            await self._store.add_missed_call(callee_id, caller_id=caller_id, at=self._clock.time())
        except Exception:
            logger.exception("digest: could not record a missed call for {}", callee_id)

    def token_user(self, token: str) -> str | None:
        return self._tokens.user_of(token)

    async def unsubscribe(self, token: str) -> bool:
        """Turn digests off for the token's person; False for a token that is not genuine."""
        user_id = self._tokens.user_of(token)
        if user_id is None:
            return False
        await self._users.update_profile(user_id, {"email_digest": False}, now=self._clock.now())
        self.metrics.unsubscribed.inc()
        logger.info("digest: {} unsubscribed through the mailed link", user_id)
        return True

    # --- the sweep ----------------------------------------------------------

    async def sweep(self) -> int:
        """Look at everyone due; returns the number of digests queued."""
        now = self._clock.time()
        sent = 0
        for doc in await self._store.due(now=now, limit=SWEEP_BATCH):
            if not await self._store.claim(doc, until=now + CLAIM_LEASE_S):
                continue
            try:
                outcome = await self._check(doc, now)
            except Exception:
                logger.exception("digest: building the digest of {} failed", doc["_id"])
                outcome = "failed"
                await self._store.checked(doc["_id"], next_check_at=now + RECHECK_S)
            self.metrics.outcomes.labels(outcome).inc()
            sent += outcome == "sent"
        return sent

    async def _check(self, doc: dict[str, Any], now: float) -> str:
        user_id = doc["_id"]
        user = await self._users.get_active(user_id)
        if user is None or user.get("email_digest") is False:
            await self._store.checked(user_id, next_check_at=None)
            return "opted_out"
        if not user.get("email_verified"):
            await self._store.checked(user_id, next_check_at=None)
            return "unverified"
        last_sent = doc.get("last_sent_at") or 0.0
        if last_sent and now - last_sent < self.interval:
            await self._store.checked(user_id, next_check_at=last_sent + self.interval)
            return "too_soon"
        since = max(doc.get("away_since") or 0.0, last_sent)
        rooms = await self._unread_rooms(user_id, since)
        calls = [c for c in doc.get("missed_calls") or [] if c.get("at", 0) >= since - SINCE_SLACK_S]
        if not rooms and not calls:
            await self._store.checked(user_id, next_check_at=now + RECHECK_S)
            return "nothing"
        names = await self._names({c["from"] for c in calls})
        mail = digest_mail(
            display_name=user.get("display_name") or "there", rooms=rooms, every=_every(self.interval),
            calls=[MissedCall(caller=names.get(c["from"], "Someone"),
                              at=datetime.fromtimestamp(c["at"], tz=UTC).strftime("%Y-%m-%d %H:%M UTC"))
                   for c in calls[-MAX_ROOMS:]],
            open_link=f"{self._public_url}/",
            unsubscribe_link=f"{self._public_url}/api/v1/digest/unsubscribe?token={self._tokens.make(user_id)}",
        )
        await self._mail.send(to=user["email"], mail=mail, kind="digest", user_ids=[user_id])
        await self._store.checked(user_id, next_check_at=now + self.interval, sent_at=now)
        logger.info("digest: queued for {} ({} conversations, {} missed calls)", user_id,
                    len(rooms), len(calls))
        return "sent"

    async def _unread_rooms(self, user_id: str, since: float) -> list[UnreadRoom]:
        """Conversations with messages from others still unread now, whose
        newest message came after ``since`` (not mailed about before)."""
        summaries, _ = await self._rooms.list_for_user(user_id, before_id=None, limit=100)
        fresh = [(s, _epoch(s.last_message["created_at"])) for s in summaries
                 if s.unread_count > 0 and s.last_message]
        fresh = [(s, at) for s, at in fresh if at >= since - SINCE_SLACK_S]
        fresh.sort(key=lambda item: item[1], reverse=True)
        rooms = []
        for summary, _ in fresh[:MAX_ROOMS]:
            room = summary.room
            after = max(summary.read_seq, summary.last_seq - LATEST_PER_ROOM)
            messages, _ = await self._chat.sync(user_id, room["_id"], after_seq=after,
                                                limit=LATEST_PER_ROOM)
            others = [m for m in messages if m["sender_id"] != user_id and not m.get("deleted")]
            names = await self._names({m["sender_id"] for m in others}
                                      | set(room["member_ids"]) - {user_id})
            title = room.get("name") or ", ".join(
                names.get(uid, "Someone") for uid in room["member_ids"] if uid != user_id)
            rooms.append(UnreadRoom(title=title or "A conversation", unread=summary.unread_count,
                                    latest=[(names.get(m["sender_id"], "Someone"), m["body"]) for m in others]))
        return rooms

    async def _names(self, user_ids: set[str]) -> dict[str, str]:
        users = await self._users.get_many_active(sorted(user_ids))
        return {u["_id"]: u.get("display_name") or "Someone" for u in users}

    async def _loop(self) -> None:
        failing = False
        while True:
            try:
                await self.sweep()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    logger.warning("digest: sweep failed ({!r}); retrying", exc)
                failing = True
            await asyncio.sleep(self._sweep_interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="email-digests")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
