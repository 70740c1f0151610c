"""Durable mail sending: ``MailService.send`` stores the mail, a background
worker delivers it and retries with backoff; a failure is logged and never
reaches the request that caused the mail."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

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

    async def send(self, *, to: str, mail: RenderedMail, kind: str,
                   user_ids: list[str] | None = None) -> str:
        """Queue a mail; ``user_ids`` are the accounts it is to or about
        (the purge of a deleted account removes such mails)."""
        mail_id = await self._store.enqueue(
            to=to, subject=mail.subject, text=mail.text, html=mail.html, kind=kind,
            now=self._clock.now(), user_ids=user_ids,
        )
        self._wake.set()
        return mail_id

    async def forget(self, user_id: str, *, email: str | None, deleted_at: datetime) -> int:
        """Remove every queued or kept mail to or about a purged account,
        and the transport's copies (the outbox's files)."""
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
        while True:
            try:
                while await self.deliver_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("mail worker: queue unavailable")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=IDLE_POLL_S)

    async def deliver_one(self) -> bool:
        """Send the next due mail, if any; True when one was attempted."""
        now = self._clock.now()
        mail = await self._store.claim_due(now=now, lease=SEND_LEASE)
        if mail is None:
            return False
        try:
            message = _build(mail, sender=self._sender)
        except (ValueError, TypeError) as exc:
            # Nothing a retry could fix; never let one bad mail wedge the queue.
            await self._store.schedule_retry(mail["_id"], error=repr(exc), give_up=True,
                                             next_attempt_at=now)
            self._metrics.mails.labels("failed").inc()
            logger.error("mail {} ({}) cannot be built: {}; dropped", mail["_id"], mail["kind"], exc)
            return True
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
            return True
        await self._store.mark_sent(mail["_id"], now=self._clock.now())
        self._metrics.mails.labels("sent").inc()
        logger.info("mail {} ({}) sent to {}", mail["_id"], mail["kind"], mask_email(mail["to"]))
        return True
