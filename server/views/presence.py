"""Presence: the ``presence`` event and ``presence:query`` answers."""

from __future__ import annotations

from typing import Any

from ..storage.presence import Presence
from . import epoch_view


def presence_view(user_id: str, p: Presence) -> dict[str, Any]:
    return {"user_id": user_id, "status": p.status,
            "last_seen": epoch_view(p.last_seen) if p.last_seen else None}
