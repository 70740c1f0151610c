"""Who the caller is: the bearer token's claims (checked once per request)."""

from __future__ import annotations

from aiohttp import web

from ..auth.tokens import AccessClaims
from ..errors import Forbidden, Unauthorized
from ..keys import ACCOUNTS, SESSIONS

CLAIMS = web.RequestKey("claims", AccessClaims)


async def authenticate(
    request: web.Request, *, verified_email_for: str | None = None
) -> AccessClaims:
    """The caller's claims. ``verified_email_for`` names an action the
    operator may require a verified email for (403 ``email_not_verified``)."""
    claims = request.get(CLAIMS)
    if claims is None:
        claims = await _authenticate(request)
    if verified_email_for is not None:
        await request.app[ACCOUNTS].require_verified(claims.user_id, verified_email_for)
    return claims


async def _authenticate(request: web.Request) -> AccessClaims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an access token: Authorization: Bearer <token>.")
    claims = await request.app[SESSIONS].authenticate(token.strip())
    request[CLAIMS] = claims
    return claims


async def require_admin(request: web.Request) -> AccessClaims:
    claims = await authenticate(request)
    if claims.role != "admin":
        raise Forbidden("Administrators only.")
    return claims
