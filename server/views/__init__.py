"""Domain data -> the wire shape: the one home of every reply body.

Services return documents and dataclasses; the edges (HTTP handlers and
Socket.IO events, and the few service-side broadcasts) render them with the
``<thing>_view`` functions here, one module per area. Every timestamp leaves
the server through :func:`timestamp_view`: ISO 8601 UTC with milliseconds and
a ``Z`` (``2026-01-02T03:04:05.123Z``), the precision the database keeps.

Nothing here does I/O or imports an edge (``server.handlers``, ``server.http``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

TIMESTAMP_FORMAT = "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"  # 2026-01-02T03:04:05.123Z


def timestamp_view(value: datetime | None) -> str | None:
    """ISO 8601 UTC, milliseconds, ``Z`` suffix; naive datetimes are UTC.
    Formatted by hand: about twice as quick as ``isoformat()`` plus the
    ``Z`` rewrite (a page of 20 listings carries 40 of these; see
    loadtests/views_render_bench.py)."""
    if value is None:
        return None
    offset = value.utcoffset()
    if offset:
        value = value - offset
    return TIMESTAMP_FORMAT % (value.year, value.month, value.day, value.hour, value.minute,
                               value.second, value.microsecond // 1000)


def epoch_view(seconds: float | None) -> str | None:
    """A Unix time (seconds) as :func:`timestamp_view` renders it."""
    if seconds is None:
        return None
    return timestamp_view(datetime.fromtimestamp(seconds, tz=UTC))


def plain_view(value: Any) -> Any:
    """``value`` with every datetime inside it (dicts, lists) rendered by
    :func:`timestamp_view`: for exports, whose documents are shown whole."""
    if isinstance(value, datetime):
        return timestamp_view(value)
    if isinstance(value, dict):
        return {k: plain_view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_view(v) for v in value]
    return value
