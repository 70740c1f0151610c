"""Where mails go: an SMTP server (aiosmtplib) or, with no SMTP configured,
``.eml`` files in the outbox folder."""

from __future__ import annotations

import asyncio
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
from loguru import logger

from ..logs import mask_email, mask_url
from ..private_files import private_dir, secure_tree, write_private_file

SMTP_TIMEOUT_S = 20
# Internal header: the accounts a mail is to or about (space-separated ids),
# so the purge of a deleted account finds its mails in the outbox. Never
# leaves the server: the SMTP transport removes it.
USERS_HEADER = "X-Skillshare-Users"


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...

    async def forget(self, *, user_id: str, email: str | None, mail_ids: list[str]) -> int:
        """Remove what this transport still holds of mails to or about the
        account; returns how many were removed."""
        ...


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
        del message[USERS_HEADER]
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

    async def forget(self, *, user_id: str, email: str | None, mail_ids: list[str]) -> int:
        return 0  # sent mail is in the recipients' mailboxes, not ours


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

    async def forget(self, *, user_id: str, email: str | None, mail_ids: list[str]) -> int:
        return await asyncio.to_thread(self._forget, user_id, email, set(mail_ids))

    def _forget(self, user_id: str, email: str | None, mail_ids: set[str]) -> int:
        if not self.folder.is_dir():
            return 0
        parser = BytesHeaderParser(policy=policy.default)
        removed = 0
        for path in self.folder.glob("*.eml"):
            with path.open("rb") as handle:
                headers = parser.parse(handle)
            concerned = (
                path.stem in mail_ids
                or user_id in str(headers.get(USERS_HEADER, "")).split()
                or (email is not None and str(headers.get("To", "")).lower() == email.lower())
            )
            if concerned:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
