"""Stored marketplace documents -> response bodies."""

from __future__ import annotations

from typing import Any

UNAVAILABLE_USER = "Unavailable user"


def user_ref(user_id: str, users: dict[str, dict[str, Any]]) -> dict[str, str]:
    user = users.get(user_id)
    return {"id": user_id, "display_name": user["display_name"] if user else UNAVAILABLE_USER}


def rating(doc: dict[str, Any]) -> dict[str, Any]:
    count = int(doc.get("rating_count", 0))
    average = round(doc.get("rating_sum", 0) / count, 2) if count else None
    return {"average": average, "count": count}


def listing_view(
    doc: dict[str, Any], users: dict[str, dict[str, Any]], score: int | None = None
) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "owner": user_ref(doc["owner_id"], users),
        "title": doc["title"],
        "description": doc["description"],
        "category": doc["category"],
        "tags": doc["tags"],
        "level": doc["level"],
        "mode": doc["mode"],
        "status": doc["status"],
        "rating": rating(doc),
        "score": score,
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }


def request_view(doc: dict[str, Any], users: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "listing": {"id": doc["listing_id"], "title": doc["listing_title"]},
        "learner": user_ref(doc["learner_id"], users),
        "teacher": user_ref(doc["teacher_id"], users),
        "message": doc["message"],
        "status": doc["status"],
        "room_id": doc.get("room_id"),
        "reviewed": bool(doc.get("reviewed")),
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }


def review_view(doc: dict[str, Any], users: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "listing_id": doc["listing_id"],
        "request_id": doc["request_id"],
        "reviewer": user_ref(doc["reviewer_id"], users),
        "rating": doc["rating"],
        "comment": doc["comment"],
        "created_at": doc["created_at"],
    }


def export_doc(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in ("_id", "tokens", "title_tokens",
                                                     "tag_tokens", "open_key", "embedding",
                                                     "embed_pending")}
    return {"id": doc["_id"], **out}
