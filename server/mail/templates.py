"""The mails we send, in plain text and HTML."""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def _html(title: str, greeting: str, body: str, link: str, action: str, footer: str) -> str:
    e = html.escape
    return (
        "<!doctype html><html><body style=\"font-family:sans-serif\">"
        f"<h2>{e(title)}</h2><p>{e(greeting)}</p><p>{e(body)}</p>"
        f"<p><a href=\"{e(link)}\">{e(action)}</a></p>"
        f"<p style=\"color:#666\">{e(footer)}</p></body></html>"
    )


def verification_mail(*, display_name: str, link: str, ttl_hours: int) -> RenderedMail:
    greeting = f"Hi {display_name},"
    body = "Welcome to Skill Share! Please confirm your email address."
    footer = f"This link expires in {ttl_hours} hours. If you did not sign up, ignore this mail."
    return RenderedMail(
        subject="Confirm your Skill Share email address",
        text=f"{greeting}\n\n{body}\n\n{link}\n\n{footer}\n",
        html=_html("Confirm your email", greeting, body, link, "Confirm my email", footer),
    )


def password_reset_mail(*, display_name: str, link: str, ttl_minutes: int) -> RenderedMail:
    greeting = f"Hi {display_name},"
    body = "Someone asked to reset your Skill Share password. If it was you, choose a new one:"
    footer = (
        f"This link works once and expires in {ttl_minutes} minutes. "
        "If you did not ask for it, ignore this mail; your password stays as it is."
    )
    return RenderedMail(
        subject="Reset your Skill Share password",
        text=f"{greeting}\n\n{body}\n\n{link}\n\n{footer}\n",
        html=_html("Reset your password", greeting, body, link, "Choose a new password", footer),
    )


def notification_mail(*, display_name: str, subject: str, body: str, link: str) -> RenderedMail:
    greeting = f"Hi {display_name},"
    return RenderedMail(
        subject=subject,
        text=f"{greeting}\n\n{body}\n\n{link}\n",
        html=_html(subject, greeting, body, link, "Open Skill Share", ""),
    )
