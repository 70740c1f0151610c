"""Login sessions: issuing token pairs, refresh rotation with reuse
detection, and revocation that every node sees at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from loguru import logger

from ..bus import Bus
from ..clock import Clock
from ..errors import NotFound, TokenRevoked, Unauthorized
from ..storage.audit import AuditStore
from ..storage.revocations import RevocationList
from ..storage.sessions import SessionStore
from ..storage.users import ACTIVE, UserStore
from .tokens import (
    LEEWAY_S,
    AccessClaims,
    AccessTokens,
    hash_secret,
    new_secret,
    split_refresh_token,
)

SESSIONS_REVOKED_TOPIC = "sessions_revoked"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is asking, for sessions and the audit log."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class TokenPair:
    user: dict[str, Any]
    session_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    expires_at: int


class SessionService:
    def __init__(
        self,
        *,
        users: UserStore,
        sessions: SessionStore,
        audit: AuditStore,
        access_tokens: AccessTokens,
        revocations: RevocationList,
        bus: Bus,
        clock: Clock,
        refresh_ttl: int,
    ) -> None:
        self._users = users
        self._sessions = sessions
        self._audit = audit
        self._access = access_tokens
        self._revocations = revocations
        self._bus = bus
        self._clock = clock
        self._refresh_ttl = timedelta(seconds=refresh_ttl)

    async def restore_revocations(self) -> int:
        """Re-announce to the revocation list every session revoked recently
        enough that its access tokens may still be unexpired: an in-process
        list starts empty after a restart, and so does a Redis without
        persistence. Returns how many were restored."""
        window = self._access.ttl + 2 * LEEWAY_S
        since = self._clock.now() - timedelta(seconds=window)
        session_ids = await self._sessions.revoked_since(since)
        if session_ids:
            await self._revocations.revoke(session_ids, ttl=window)
        return len(session_ids)

    async def authenticate(self, token: str) -> AccessClaims:
        """Decode an access token and refuse it if its session was revoked."""
        claims = self._access.decode(token)
        if await self._revocations.is_revoked(claims.session_id):
            raise TokenRevoked("This session has been signed out.")
        return claims

    async def start(self, user: dict[str, Any], client: ClientInfo) -> TokenPair:
        secret = new_secret()
        now = self._clock.now()
        session = await self._sessions.create(
            user_id=user["_id"], refresh_hash=hash_secret(secret), now=now,
            expires_at=now + self._refresh_ttl, ip=client.ip, user_agent=client.user_agent,
        )
        return self._pair(user, session["_id"], secret)

    def _pair(self, user: dict[str, Any], session_id: str, secret: str) -> TokenPair:
        access, exp = self._access.issue(
            user_id=user["_id"], session_id=session_id, role=user.get("role", "user")
        )
        return TokenPair(
            user=user, session_id=session_id, access_token=access,
            refresh_token=f"{session_id}.{secret}", expires_in=self._access.ttl, expires_at=exp,
        )

    async def refresh(self, refresh_token: str, client: ClientInfo) -> TokenPair:
        parts = split_refresh_token(refresh_token)
        if parts is None:
            raise Unauthorized("The refresh token is not valid.")
        session_id, secret = parts
        presented = hash_secret(secret)
        new = new_secret()
        now = self._clock.now()
        session = await self._sessions.rotate(
            session_id, old_hash=presented, new_hash=hash_secret(new), now=now,
            expires_at=now + self._refresh_ttl, ip=client.ip,
        )
        if session is None:
            current = await self._sessions.get(session_id)
            if current is not None and presented in current.get("used_hashes", []):
                # A used token came back: someone holds a copy. End the session.
                await self.revoke(
                    [session_id], user_id=current["user_id"], client=client,
                    reason="refresh_token_reuse",
                )
                logger.warning("refresh token reuse on session {}; session revoked", session_id)
                raise TokenRevoked("This refresh token was already used; the session is revoked.")
            if current is not None and current.get("revoked_at") is not None:
                raise TokenRevoked("This session has been signed out.")
            raise Unauthorized("The refresh token is not valid.")
        user = await self._users.get(session["user_id"])
        if user is None or user.get("status") != ACTIVE:
            await self.revoke([session_id], user_id=session["user_id"], client=client,
                              reason="account_inactive")
            raise TokenRevoked("This account is no longer active.")
        return self._pair(user, session_id, new)

    async def revoke(
        self,
        session_ids: list[str],
        *,
        user_id: str,
        client: ClientInfo,
        reason: str,
        actor_id: str | None = None,
    ) -> None:
        """Revoke sessions everywhere: stored, refused by every node's token
        check, and their sockets told to disconnect."""
        now = self._clock.now()
        for sid in session_ids:
            await self._sessions.revoke(sid, now=now)
        await self._announce(session_ids, user_id=user_id)
        await self._audit.record(
            action="session.revoke", actor_id=actor_id or user_id, target=user_id,
            ip=client.ip, request_id=client.request_id, at=now,
            details={"session_ids": session_ids, "reason": reason},
        )

    async def revoke_all(
        self, user_id: str, *, client: ClientInfo, reason: str, actor_id: str | None = None,
        except_session_id: str | None = None,
    ) -> list[str]:
        now = self._clock.now()
        session_ids = await self._sessions.revoke_all(user_id, now=now,
                                                      except_id=except_session_id)
        await self._announce(session_ids, user_id=user_id)
        await self._audit.record(
            action="session.revoke_all", actor_id=actor_id or user_id, target=user_id,
            ip=client.ip, request_id=client.request_id, at=now,
            details={"session_ids": session_ids, "reason": reason},
        )
        return session_ids

    async def _announce(self, session_ids: list[str], *, user_id: str) -> None:
        if not session_ids:
            return
        await self._revocations.revoke(session_ids, ttl=self._access.ttl + 2 * LEEWAY_S)
        try:
            await self._bus.publish(
                SESSIONS_REVOKED_TOPIC, {"user_id": user_id, "session_ids": session_ids}
            )
        except Exception:
            # Tokens are refused already; sockets still close at token expiry.
            logger.exception("could not announce revoked sessions of {}", user_id)

    async def list(
        self, user_id: str, *, limit: int, before_id: str | None = None
    ) -> list[dict[str, Any]]:
        """A page of live sessions, newest first."""
        return await self._sessions.list_live(
            user_id, now=self._clock.now(), limit=limit, before_id=before_id
        )

    async def revoke_one(self, user_id: str, session_id: str, client: ClientInfo) -> None:
        session = await self._sessions.get(session_id)
        if session is None or session["user_id"] != user_id or session.get("revoked_at"):
            raise NotFound("No such session.")
        await self.revoke([session_id], user_id=user_id, client=client, reason="user_request")
