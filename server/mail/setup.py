"""``build_mail``: the durable mail queue and its transport (SMTP when
``smtp_url`` is set, else ``.eml`` files in the outbox folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from ..clock import Clock
from ..metrics import Metrics
from ..storage.fields import FieldCrypto
from ..storage.mail_queue import MailQueueStore
from .service import MailService
from .transports import MailTransport, OutboxTransport, SmtpTransport


@dataclass(frozen=True, slots=True)
class Mail:
    service: MailService

    async def start(self) -> None:
        self.service.start()

    async def stop(self) -> None:
        await self.service.stop()


def mail_transport(*, smtp_url: str | None, outbox: Path) -> MailTransport:
    if smtp_url:
        return SmtpTransport(smtp_url)
    return OutboxTransport(outbox)


def build_mail(*, db: AsyncDatabase, fields: FieldCrypto, smtp_url: str | None, outbox: Path,
               sender: str, clock: Clock, metrics: Metrics) -> Mail:
    return Mail(MailService(
        store=MailQueueStore(db, fields), transport=mail_transport(smtp_url=smtp_url, outbox=outbox),
        sender=sender, clock=clock, metrics=metrics,
    ))
