"""Rooms and chat messages (REST replies, socket acks and broadcasts)."""

from __future__ import annotations

from typing import Any

from ..realtime.rooms import RoomSummary
from . import timestamp_view


def message_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "room_id": doc["room_id"], "seq": doc["seq"],
        "sender_id": doc["sender_id"], "body": doc["body"], "client_id": doc["client_id"],
        "created_at": timestamp_view(doc["created_at"]), "deleted": bool(doc.get("deleted")),
    }


def room_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "type": doc["type"], "name": doc.get("name"),
        "member_ids": list(doc["member_ids"]), "created_by": doc.get("created_by"),
        "created_at": timestamp_view(doc["created_at"]),
    }


def room_summary_view(summary: RoomSummary) -> dict[str, Any]:
    """A room in ``GET /rooms``: the room, its end, my read marker and unread count."""
    last = summary.last_message
    return {
        **room_view(summary.room), "last_seq": summary.last_seq, "read_seq": summary.read_seq,
        "unread_count": summary.unread_count,
        "last_message": message_view(last) if last else None,
    }
