"""ICE server lists with short-lived TURN credentials.

The credentials follow coturn's ``use-auth-secret`` scheme (the "TURN REST
API" draft, draft-uberti-behave-turn-rest-00): the username is
``"<expiry unix time>:<user id>"`` and the password is
``base64(HMAC-SHA1(shared secret, username))``. coturn recomputes the HMAC
with the same secret and refuses the username once its expiry has passed, so
the server never stores per-user TURN passwords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any


def turn_credentials(*, user_id: str, secret: str, ttl_s: int, now: float) -> tuple[str, str]:
    """Return ``(username, credential)`` valid until ``now + ttl_s``."""
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    if ":" in user_id:
        # coturn splits the username on the first ':'; a colon in the user
        # id would make the expiry unparsable.
        raise ValueError("user_id must not contain ':'")
    username = f"{int(now) + ttl_s}:{user_id}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    *,
    user_id: str,
    stun_urls: list[str],
    turn_urls: list[str],
    turn_secret: str | None,
    ttl_s: int,
    now: float,
) -> dict[str, Any]:
    """The body of ``GET /api/v1/calls/ice-servers`` (and the ``ice_servers``
    of a ``call:invite`` ack): ``{"ice_servers": [...], "ttl": ttl_s}``.

    STUN servers need no credentials. TURN servers are listed only when there
    are URLs *and* a secret: a TURN entry without valid credentials would only
    make browsers waste an allocation attempt.
    """
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and turn_secret:
        username, credential = turn_credentials(
            user_id=user_id, secret=turn_secret, ttl_s=ttl_s, now=now
        )
        servers.append({"urls": list(turn_urls), "username": username, "credential": credential})
    return {"ice_servers": servers, "ttl": ttl_s}


def to_rtc_ice_servers(entries: list[dict[str, Any]]) -> list[Any]:
    """Turn ``ice_servers()["ice_servers"]`` into aiortc ``RTCIceServer``s,
    for the relay's own peer connections."""
    from aiortc import RTCIceServer

    return [
        RTCIceServer(
            urls=entry["urls"],
            username=entry.get("username"),
            credential=entry.get("credential"),
        )
        for entry in entries
    ]
