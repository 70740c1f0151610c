"""Blocks."""

from __future__ import annotations

from typing import Any

from ..consent.service import BlockEntry
from . import timestamp_view


def block_view(entry: BlockEntry) -> dict[str, Any]:
    return {
        "user_id": entry.block["blocked_id"],
        "display_name": entry.person.get("display_name") if entry.person else None,
        "created_at": timestamp_view(entry.block["created_at"]),
    }
