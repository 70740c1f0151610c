"""Unsubscribe tokens for digest mails: ``<user id>.<HMAC-SHA256>`` under a
key derived from the server's secret key, so a link works without signing
in and cannot be made for someone else. Older secret keys still verify
(rotation, as for access tokens). They do not expire: an unsubscribe link
in an old mail must keep working."""

from __future__ import annotations

import base64
import hashlib
import hmac

PURPOSE = b"skillshare digest unsubscribe\x00"
MAX_TOKEN_CHARS = 200


def _mac(key: str, user_id: str) -> str:
    digest = hmac.new(key.encode("utf-8"), PURPOSE + user_id.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class UnsubscribeTokens:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("unsubscribe tokens need a secret key")
        self._keys = keys

    def make(self, user_id: str) -> str:
        return f"{user_id}.{_mac(self._keys[0], user_id)}"

    def user_of(self, token: str) -> str | None:
        """The user the token was made for, or None if it is not genuine."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or "." not in token:
            return None
        user_id, _, mac = token.rpartition(".")
        if not user_id:
            return None
        for key in self._keys:
            if hmac.compare_digest(mac, _mac(key, user_id)):
                return user_id
        return None
