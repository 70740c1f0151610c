"""The digest mail: unread conversations (with their newest messages) and
missed calls, in plain text and HTML, with an unsubscribe link."""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..mail.templates import RenderedMail

MAX_SNIPPET_CHARS = 200


@dataclass(frozen=True, slots=True)
class UnreadRoom:
    title: str  # "Alice" for a direct room, the group's name otherwise
    unread: int
    latest: list[tuple[str, str]]  # (sender name, body), oldest first


@dataclass(frozen=True, slots=True)
class MissedCall:
    caller: str
    at: str  # "2026-11-30 03:12 UTC"


def _snippet(body: str) -> str:
    line = " ".join(body.split())
    return line if len(line) <= MAX_SNIPPET_CHARS else line[: MAX_SNIPPET_CHARS - 1] + "…"


def digest_mail(*, display_name: str, rooms: list[UnreadRoom], calls: list[MissedCall], every: str,
                open_link: str, unsubscribe_link: str) -> RenderedMail:
    unread = sum(r.unread for r in rooms)
    parts = []
    if unread:
        parts.append(f"{unread} unread message{'s' if unread != 1 else ''}")
    if calls:
        parts.append(f"{len(calls)} missed call{'s' if len(calls) != 1 else ''}")
    subject = "While you were away: " + " and ".join(parts)
    text = [f"Hi {display_name},", "", "Here is what happened on Skill Share while you were away.", ""]
    e = html.escape
    body = [f"<h2>{e(subject)}</h2><p>Hi {e(display_name)},</p>"]
    if calls:
        text.append("Missed calls:")
        body.append("<h3>Missed calls</h3><ul>")
        for call in calls:
            text.append(f"  - {call.caller}, {call.at}")
            body.append(f"<li>{e(call.caller)}, {e(call.at)}</li>")
        text.append("")
        body.append("</ul>")
    for room in rooms:
        text.append(f"{room.title}: {room.unread} unread")
        body.append(f"<h3>{e(room.title)}: {room.unread} unread</h3><ul>")
        for sender, message in room.latest:
            text.append(f"  {sender}: {_snippet(message)}")
            body.append(f"<li><b>{e(sender)}</b>: {e(_snippet(message))}</li>")
        text.append("")
        body.append("</ul>")
    footer = (f"You get at most one of these mails every {every} while you are away. "
              "To get no more, unsubscribe (no sign-in needed):")
    text += [f"Open Skill Share: {open_link}", "", footer, unsubscribe_link, ""]
    body.append(f"<p><a href=\"{e(open_link)}\">Open Skill Share</a></p>"
                f"<p style=\"color:#666\">{e(footer)} <a href=\"{e(unsubscribe_link)}\">Unsubscribe</a></p>")
    return RenderedMail(
        subject=subject,
        text="\n".join(text),
        html="<!doctype html><html><body style=\"font-family:sans-serif\">" + "".join(body)
             + "</body></html>",
    )
