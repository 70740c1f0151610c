"""Users, sessions, sign-in identities. The one place that decides which
fields of a user a reader may see."""

from __future__ import annotations

from typing import Any

from ..auth.sessions import TokenPair
from . import timestamp_view

PUBLIC_USER_FIELDS = (
    "display_name", "bio", "timezone", "languages", "skills_offered", "skills_wanted",
)


def public_user_view(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": doc["_id"]}
    for name in PUBLIC_USER_FIELDS:
        out[name] = doc.get(name)
    out["created_at"] = timestamp_view(doc.get("created_at"))
    return out


def private_user_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        **public_user_view(doc),
        "email": doc.get("email"),
        "email_verified": bool(doc.get("email_verified")),
        "has_password": bool(doc.get("password_hash")),
        "role": doc.get("role", "user"),
        "updated_at": timestamp_view(doc.get("updated_at")),
        "presence_visibility": doc.get("presence_visibility") or "contacts",
        "email_digest": doc.get("email_digest") is not False,
    }


def token_pair_view(pair: TokenPair) -> dict[str, Any]:
    return {
        "user": private_user_view(pair.user),
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    }


def session_view(doc: dict[str, Any], *, current_session_id: str | None) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "created_at": timestamp_view(doc["created_at"]),
        "last_used_at": timestamp_view(doc.get("last_used_at")),
        "expires_at": timestamp_view(doc["expires_at"]),
        "ip": doc.get("ip"),
        "user_agent": doc.get("user_agent"),
        "current": doc["_id"] == current_session_id,
    }


def identity_view(doc: dict[str, Any], *, provider_name: str) -> dict[str, Any]:
    """A linked sign-in provider, as ``GET /users/me`` lists it."""
    return {
        "provider": doc["provider"], "display_name": provider_name, "email": doc.get("email"),
        "linked_at": timestamp_view(doc["linked_at"]),
        "last_used_at": timestamp_view(doc.get("last_used_at")),
    }
