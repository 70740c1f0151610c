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

from ..logs import mask_email, mask_url
from ..private_files import private_dir, secure_tree, write_private_file

SMTP_TIMEOUT_S = 20


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    """``smtp://user:pass@host:587`` (STARTTLS when offered) or ``smtps://``."""

    def __init__(self, url: str) -> None:
        logger.info("mail: SMTP via {}", mask_url(url))
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
    """Development: each mail becomes ``<outbox>/<mail id>.eml``, private to
    the node's user (mails carry live sign-in and password-reset links)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        private_dir(folder.parent)
        private_dir(folder)
        secure_tree(folder)

    async def send(self, message: EmailMessage) -> None:
        name = f"{message['X-Mail-Id'] or 'mail'}.eml"
        path = self.folder / name
        await asyncio.to_thread(write_private_file, path, bytes(message))
        logger.info("mail to {} written to {}", mask_email(str(message["To"])), path)
