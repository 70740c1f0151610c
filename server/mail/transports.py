"""Where mails go: an SMTP server (aiosmtplib) or, with no SMTP configured,
``.eml`` files in the outbox folder."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
from loguru import logger

from ..logs import mask_email

SMTP_TIMEOUT_S = 20


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    """``smtp://user:pass@host:587`` (STARTTLS when offered) or ``smtps://``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._implicit_tls = parts.scheme == "smtps"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._implicit_tls else 587)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._implicit_tls,
            start_tls=None if not self._implicit_tls else False,
            timeout=SMTP_TIMEOUT_S,
        )


class OutboxTransport:
    """Development: each mail becomes ``<outbox>/<time>-<id>.eml``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{message['X-Mail-Id'] or 'mail'}.eml"
        path = self.folder / name
        await asyncio.to_thread(path.write_bytes, bytes(message))
        logger.info("mail to {} written to {}", mask_email(str(message["To"])), path)
