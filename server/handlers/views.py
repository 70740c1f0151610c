"""Stored documents -> response bodies. The one place that decides which
fields of a user a reader may see."""

from __future__ import annotations

from typing import Any

from ..auth.sessions import TokenPair

PUBLIC_USER_FIELDS = (
    "display_name", "bio", "timezone", "languages", "skills_offered", "skills_wanted",
    "created_at",
)


def public_user(doc: dict[str, Any]) -> dict[str, Any]:
    out = {"id": doc["_id"]}
    for name in PUBLIC_USER_FIELDS:
        out[name] = doc.get(name)
    return out


def private_user(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        **public_user(doc),
        "email": doc.get("email"),
        "email_verified": bool(doc.get("email_verified")),
        "has_password": bool(doc.get("password_hash")),
        "role": doc.get("role", "user"),
        "updated_at": doc.get("updated_at"),
        "presence_visibility": doc.get("presence_visibility") or "contacts",
        "email_digest": doc.get("email_digest") is not False,
    }


def token_pair(pair: TokenPair) -> dict[str, Any]:
    return {
        "user": private_user(pair.user),
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    }


def session_view(doc: dict[str, Any], *, current_session_id: str | None) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "created_at": doc["created_at"],
        "last_used_at": doc.get("last_used_at"),
        "expires_at": doc["expires_at"],
        "ip": doc.get("ip"),
        "user_agent": doc.get("user_agent"),
        "current": doc["_id"] == current_session_id,
    }
