"""A real SMTP server (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from .services import free_port


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self._inbox = _Inbox()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return self._inbox.messages

    def start(self) -> None:
        self._controller = Controller(self._inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, to: str, subject_part: str, timeout: float = 10.0) -> EmailMessage:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for message in self.messages:
                if message["To"] == to and subject_part in message["Subject"]:
                    return message
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail to {to} about {subject_part!r} within {timeout}s")


def link_in(message: EmailMessage) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"https?://\S+", text)
    assert match, text
    return match.group(0)
