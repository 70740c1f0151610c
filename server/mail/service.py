"""Durable mail sending: ``MailService.send`` stores the mail, a background
worker delivers it and retries with backoff; a failure is logged and never
reaches the request that caused the mail.

A node whose worker runs stores each mail it queues already claimed by
itself (a lease, as ``claim_due`` takes) and hands it to its worker in
memory: two database writes per mail (store, mark sent) instead of a claim
round of four more. Should the node die first, the lease runs out and any
node's worker finds the mail in its next poll of the queue (every
``IDLE_POLL_S``), which also picks up retries and mails queued elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from loguru import logger

from ..clock import Clock
from ..logs import mask_email
from ..metrics import Metrics
from ..storage.mail_queue import MailQueueStore
from ..tasks import cancel_and_wait
from .templates import RenderedMail
from .transports import USERS_HEADER, MailTransport

MAX_ATTEMPTS = 8
BASE_BACKOFF_S = 5
MAX_BACKOFF_S = 3600
SEND_LEASE = timedelta(minutes=2)
IDLE_POLL_S = 5.0
# Mails claimed at queueing and waiting for this node's worker; past this
# many a new mail is queued unclaimed, for the next poll.
MAX_CLAIMED_WAITING = 1000


def one_line(value: str) -> str:
    """A header value on one line: every line break Python knows (CR, LF,
    NEL, U+2028...) becomes a space, so user text in a subject can neither
    add a header nor make the header unbuildable."""
    return " ".join(value.splitlines())


def _build(mail: dict, *, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail["to"]
    message["Subject"] = one_line(mail["subject"])
    message["Message-ID"] = make_msgid(domain="skillshare.local")
    message["X-Mail-Id"] = mail["_id"]
    if mail.get("user_ids"):
        message[USERS_HEADER] = " ".join(mail["user_ids"])
    message.set_content(mail["text"])
    message.add_alternative(mail["html"], subtype="html")
    return message


class MailService:
    def __init__(
        self,
        *,
        store: MailQueueStore,
        transport: MailTransport,
        sender: str,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._transport = transport
        self._sender = sender
        self._clock = clock
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._claimed: deque[dict[str, Any]] = deque()  # queued here, leased to this worker

    async def send(self, *, to: str, mail: RenderedMail, kind: str,
                   user_ids: list[str] | None = None) -> str:
        """Queue a mail; ``user_ids`` are the accounts it is to or about
        (the purge of a deleted account removes such mails)."""
        claim = self._task is not None and len(self._claimed) < MAX_CLAIMED_WAITING
        stored = await self._store.enqueue(
            to=to, subject=mail.subject, text=mail.text, html=mail.html, kind=kind,
            now=self._clock.now(), user_ids=user_ids, lease=SEND_LEASE if claim else None,
        )
        if claim:
            self._claimed.append(stored)
        self._wake.set()
        return stored["_id"]

    async def forget(self, user_id: str, *, email: str | None, deleted_at: datetime) -> int:
        """Remove every queued or kept mail to or about a purged account,
        and the transport's copies (the outbox's files)."""
        self._claimed = deque(m for m in self._claimed
                              if user_id not in m["user_ids"] and m["to"] != email)
        mail_ids = await self._store.delete_concerning(
            user_id=user_id, email=email, created_before=deleted_at
        )
        files = await self._transport.forget(user_id=user_id, email=email, mail_ids=mail_ids)
        return len(mail_ids) + files

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mail-worker")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def _run(self) -> None:
        next_poll = 0.0
        while True:
            try:
                while await self._deliver_claimed():
                    pass
                if self._clock.monotonic() >= next_poll:
                    while await self._deliver_due():
                        pass
                    next_poll = self._clock.monotonic() + IDLE_POLL_S
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("mail worker: queue unavailable")
                next_poll = self._clock.monotonic() + IDLE_POLL_S
            self._wake.clear()
            if not self._claimed:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(),
                                           timeout=max(0.0, next_poll - self._clock.monotonic()))

    async def deliver_one(self) -> bool:
        """Send the next mail: one this node claimed when it queued it, else
        the next due in the queue; True when one was attempted."""
        return await self._deliver_claimed() or await self._deliver_due()

    async def _deliver_claimed(self) -> bool:
        while self._claimed:
            mail = self._claimed.popleft()
            now = self._clock.now()
            # (one left waiting for half its lease goes back to the poll,
            # after the lease, rather than race another node's worker)
            if now - mail["created_at"] < SEND_LEASE / 2:
                await self._attempt(mail, now)
                return True
        return False

    async def _deliver_due(self) -> bool:
        now = self._clock.now()
        mail = await self._store.claim_due(now=now, lease=SEND_LEASE)
        if mail is None:
            return False
        await self._attempt(mail, now)
        return True

    async def _attempt(self, mail: dict[str, Any], now: datetime) -> None:
        """One attempt at sending a claimed mail: sent, or a retry scheduled."""
        try:
            message = _build(mail, sender=self._sender)
        except (ValueError, TypeError) as exc:
            # Nothing a retry could fix; never let one bad mail wedge the queue.
            await self._store.schedule_retry(mail["_id"], error=repr(exc), give_up=True,
                                             next_attempt_at=now)
            self._metrics.mails.labels("failed").inc()
            logger.error("mail {} ({}) cannot be built: {}; dropped", mail["_id"], mail["kind"], exc)
            return
        try:
            await self._transport.send(message)
        except Exception as exc:
            attempts = mail["attempts"]
            give_up = attempts >= MAX_ATTEMPTS
            delay = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** (attempts - 1))
            await self._store.schedule_retry(
                mail["_id"], error=repr(exc), give_up=give_up,
                next_attempt_at=now + timedelta(seconds=delay),
            )
            self._metrics.mails.labels("failed" if give_up else "retry").inc()
            logger.warning(
                "mail {} ({}) to {} failed (attempt {}): {}; {}",
                mail["_id"], mail["kind"], mask_email(mail["to"]), attempts, exc,
                "giving up" if give_up else f"retrying in {delay}s",
            )
            return
        await self._store.mark_sent(mail["_id"], now=self._clock.now())
        self._metrics.mails.labels("sent").inc()
        logger.info("mail {} ({}) sent to {}", mail["_id"], mail["kind"], mask_email(mail["to"]))
