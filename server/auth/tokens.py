"""Access tokens (JWT, HS256 pinned) and opaque secrets (refresh, mailed
tokens) stored only as hashes.

Keys rotate: the first configured key signs, every configured key verifies;
each token names its key in the ``kid`` header."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import jwt
from cachetools import LRUCache

from ..clock import Clock
from ..errors import TokenExpired, Unauthorized

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid", "jti"]
LEEWAY_S = 5
MAX_REFRESH_TOKEN_CHARS = 200  # ours are ~70; longer ones are refused before any lookup
# Tokens whose signature and claims were verified, kept so a client's next
# requests skip the HMAC and JSON work (~7% of a busy node's CPU); expiry is
# still checked on every use. About 0.5 KiB each.
VERIFIED_TOKENS_KEPT = 4096


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    role: str
    expires_at: int
    token_id: str


class AccessTokens:
    def __init__(
        self, *, keys: list[str], issuer: str, audience: str, ttl: int, clock: Clock
    ) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self._keys = {key_id(k): k for k in keys}
        self._signing_kid = key_id(keys[0])
        self._issuer = issuer
        self._audience = audience
        self.ttl = ttl
        self._clock = clock
        self._verified: LRUCache[str, tuple[AccessClaims, int]] = LRUCache(VERIFIED_TOKENS_KEPT)

    def issue(self, *, user_id: str, session_id: str, role: str) -> tuple[str, int]:
        now = int(self._clock.time())
        exp = now + self.ttl
        payload = {
            "sub": user_id, "sid": session_id, "role": role, "iat": now, "exp": exp,
            "iss": self._issuer, "aud": self._audience, "jti": secrets.token_hex(8),
        }
        token = jwt.encode(
            payload, self._keys[self._signing_kid], algorithm=ALGORITHM,
            headers={"kid": self._signing_kid},
        )
        return token, exp

    def decode(self, token: str) -> AccessClaims:
        """The token's claims: signature, algorithm, issuer, audience and
        required claims verified once per token (then remembered), its
        time window checked on every call."""
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verify(token)
            self._verified[token] = verified
        claims, issued_at = verified
        # Expiry checked against our clock, so tests control time.
        if claims.expires_at + LEEWAY_S <= self._clock.time():
            raise TokenExpired("The access token has expired.")
        if issued_at - LEEWAY_S > self._clock.time():
            raise Unauthorized("The access token is not valid yet.")
        return claims

    def _verify(self, token: str) -> tuple[AccessClaims, int]:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid", ""))
            if key is None or header.get("alg") != ALGORITHM:
                raise Unauthorized("The access token is not valid.")
            payload = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self._audience,
                issuer=self._issuer, leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise Unauthorized("The access token is not valid.") from None
        try:
            return AccessClaims(
                user_id=str(payload["sub"]), session_id=str(payload["sid"]),
                role=str(payload.get("role", "user")), expires_at=int(payload["exp"]),
                token_id=str(payload["jti"]),
            ), int(payload["iat"])
        except (TypeError, ValueError):
            raise Unauthorized("The access token is not valid.") from None


def split_refresh_token(token: str) -> tuple[str, str] | None:
    """Refresh tokens are ``<session id>.<secret>``."""
    session_id, sep, secret = token.partition(".")
    if not sep or not session_id or not secret or len(token) > MAX_REFRESH_TOKEN_CHARS:
        return None
    return session_id, secret

