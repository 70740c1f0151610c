"""Listings, skill requests, reviews, matches and the moderation views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..marketplace.results import Match, Named, Page
from . import timestamp_view

T = TypeVar("T")

UNAVAILABLE_USER = "Unavailable user"
EXPORT_HIDDEN_FIELDS = ("_id", "tokens", "title_tokens", "tag_tokens", "open_key", "embedding",
                        "embed_pending")


def user_ref_view(user_id: str, users: dict[str, dict[str, Any]]) -> dict[str, str]:
    user = users.get(user_id)
    return {"id": user_id, "display_name": user["display_name"] if user else UNAVAILABLE_USER}


def rating_view(doc: dict[str, Any]) -> dict[str, Any]:
    count = int(doc.get("rating_count", 0))
    average = round(doc.get("rating_sum", 0) / count, 2) if count else None
    return {"average": average, "count": count}


def listing_view(listing: Named) -> dict[str, Any]:
    """Rendered once per document, owner's name and score (kept in
    ``rendered``, which a cached card shares between requests; read-only
    afterwards)."""
    doc = listing.doc
    owner = user_ref_view(doc["owner_id"], listing.people)
    key = (listing_view, owner["display_name"], listing.score)
    out = listing.rendered.get(key)
    if out is None:
        body = listing.rendered.get(listing_view)
        if body is None:
            body = listing.rendered[listing_view] = _listing(doc)
        out = listing.rendered[key] = {**body, "owner": owner, "score": listing.score}
    return out


def _listing(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "owner": None,  # (placeholders keep the reply's key order)
        "title": doc["title"],
        "description": doc["description"],
        "category": doc["category"],
        "tags": doc["tags"],
        "level": doc["level"],
        "mode": doc["mode"],
        "status": doc["status"],
        "rating": rating_view(doc),
        "score": None,
        "created_at": timestamp_view(doc["created_at"]),
        "updated_at": timestamp_view(doc["updated_at"]),
    }


def request_view(request: Named) -> dict[str, Any]:
    doc, people = request.doc, request.people
    return {
        "id": doc["_id"],
        "listing": {"id": doc["listing_id"], "title": doc["listing_title"]},
        "learner": user_ref_view(doc["learner_id"], people),
        "teacher": user_ref_view(doc["teacher_id"], people),
        "message": doc["message"],
        "status": doc["status"],
        "room_id": doc.get("room_id"),
        "reviewed": bool(doc.get("reviewed")),
        "created_at": timestamp_view(doc["created_at"]),
        "updated_at": timestamp_view(doc["updated_at"]),
    }


def review_view(review: Named) -> dict[str, Any]:
    doc = review.doc
    return {
        "id": doc["_id"],
        "listing_id": doc["listing_id"],
        "request_id": doc["request_id"],
        "reviewer": user_ref_view(doc["reviewer_id"], review.people),
        "rating": doc["rating"],
        "comment": doc["comment"],
        "created_at": timestamp_view(doc["created_at"]),
    }


def page_view(page: Page[T], item_view: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """Rendered once per page and item view (read-only afterwards: it may be cached)."""
    out = page.rendered.get(item_view)
    if out is None:
        out = page.rendered[item_view] = {
            "items": [item_view(item) for item in page.items], "next_cursor": page.next_cursor}
    return out


def export_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document in the owner's data export, without search
    internals. Timestamps stay datetimes here: the export is rendered whole
    by ``plain_view`` at its edge."""
    out = {k: v for k, v in doc.items() if k not in EXPORT_HIDDEN_FIELDS}
    return {"id": doc["_id"], **out}


def admin_user_view(user: dict[str, Any], *, with_email: bool = False) -> dict[str, Any]:
    out = {"id": user["_id"], "display_name": user["display_name"],
           "role": user.get("role", "user"), "status": user["status"]}
    if with_email:
        out["email"] = user.get("email")
    return out


def match_view(match: Match) -> dict[str, Any]:
    person, ranked = match.person, match.ranked
    out = {
        "user": {"id": person["_id"], "display_name": person["display_name"]},
        "score": ranked["score"], "mutual": ranked["mutual"],
        "they_teach": ranked["they_teach"], "you_teach": ranked["you_teach"],
        "reason": match.reason,
    }
    if match.explained:
        out["why"] = match.why
    return out


def audit_entry_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "action": doc["action"], "actor_id": doc.get("actor_id"),
        "target": doc.get("target"), "ip": doc.get("ip"), "request_id": doc.get("request_id"),
        "at": timestamp_view(doc["at"]), "details": doc.get("details") or {},
    }
