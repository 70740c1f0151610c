"""Moderation by admins (hide listings, ban users, change roles) and the
audit log reader. Every action here is written to the audit log.

Bans and role changes revoke the user's sessions: a ban must stop the user
at once (tokens refused, sockets dropped), and a role lives in the access
token, so a changed role takes effect at the next sign-in."""

from __future__ import annotations

from typing import Any

from ..auth.sessions import ClientInfo, SessionService
from ..clock import Clock
from ..errors import Conflict, NotFound, ValidationFailed
from ..storage.audit import AuditStore
from ..storage.ids import decode_cursor, encode_cursor, is_id
from ..storage.listings import ListingStore
from ..storage.users import ACTIVE, BANNED, DELETED, UserStore
from .listings import ListingService
from .matches import MatchService
from .results import Named, Page


class ModerationService:
    def __init__(
        self, *, users: UserStore, listings: ListingService, listing_store: ListingStore,
        matches: MatchService, sessions: SessionService, audit: AuditStore, clock: Clock,
    ) -> None:
        self._users = users
        self._listings = listings
        self._listing_store = listing_store
        self._matches = matches
        self._sessions = sessions
        self._audit = audit
        self._clock = clock

    async def _record(self, action: str, *, actor_id: str, target: str, client: ClientInfo,
                      **details: Any) -> None:
        await self._audit.record(
            action=action, actor_id=actor_id, target=target, ip=client.ip,
            request_id=client.request_id, at=self._clock.now(), details=details,
        )

    async def set_listing_hidden(self, listing_id: str, hidden: bool, *, actor_id: str,
                                 reason: str, client: ClientInfo) -> Named:
        doc = await self._listings.set_hidden(listing_id, hidden, reason=reason)
        await self._record("listing.hide" if hidden else "listing.unhide", actor_id=actor_id,
                           target=listing_id, client=client, reason=reason,
                           owner_id=doc["owner_id"])
        return await self._listings.get(listing_id, viewer_id=actor_id, role="admin")

    async def find_by_email(self, email: str) -> dict[str, Any] | None:
        """The account with this address (exact, case-insensitive: emails
        are encrypted at rest and found through their blind index, so no
        substring search), deleted ones included while they keep it."""
        return await self._users.find_by_email(email)

    async def _target(self, user_id: str, actor_id: str) -> dict[str, Any]:
        user = await self._users.get(user_id) if is_id(user_id) else None
        if user is None or user.get("status") == DELETED:
            raise NotFound("No such user.")
        if user_id == actor_id:
            raise Conflict("Administrators cannot do this to their own account.")
        return user

    async def ban(self, user_id: str, *, actor_id: str, reason: str, client: ClientInfo
                  ) -> dict[str, Any]:
        user = await self._target(user_id, actor_id)
        now = self._clock.now()
        await self._users.set_status(user_id, BANNED, now=now)
        await self._listing_store.set_owner_active(user_id, False, now=now)
        await self._matches.remove(user_id)
        await self._sessions.revoke_all(user_id, client=client, reason="banned",
                                        actor_id=actor_id)
        await self._record("user.ban", actor_id=actor_id, target=user_id, client=client,
                           reason=reason, previous_status=user["status"])
        return {**user, "status": BANNED}

    async def unban(self, user_id: str, *, actor_id: str, reason: str, client: ClientInfo
                    ) -> dict[str, Any]:
        user = await self._target(user_id, actor_id)
        if user["status"] != BANNED:
            raise Conflict("This user is not banned.")
        now = self._clock.now()
        await self._users.set_status(user_id, ACTIVE, now=now)
        await self._listing_store.set_owner_active(user_id, True, now=now)
        await self._matches.refresh(user_id)
        await self._record("user.unban", actor_id=actor_id, target=user_id, client=client,
                           reason=reason)
        return {**user, "status": ACTIVE}

    async def set_role(self, user_id: str, role: str, *, actor_id: str, client: ClientInfo
                       ) -> dict[str, Any]:
        user = await self._target(user_id, actor_id)
        previous = user.get("role", "user")
        if previous != role:
            await self._users.set_role(user_id, role, now=self._clock.now())
            await self._sessions.revoke_all(user_id, client=client, reason="role_change",
                                            actor_id=actor_id)
        await self._record("user.role_change", actor_id=actor_id, target=user_id,
                           client=client, previous=previous, role=role)
        return {**user, "role": role}

    async def sync_owner(self, payload: dict[str, Any]) -> None:
        """Bus hook on ``sessions_revoked``: an account deleted (or banned on
        another node) takes its listings and match entry down with it."""
        user_id = payload.get("user_id")
        if not isinstance(user_id, str):
            return
        user = await self._users.get(user_id)
        if user is not None and user.get("status") != ACTIVE:
            await self._listing_store.set_owner_active(user_id, False, now=self._clock.now())
            await self._matches.remove(user_id)

    async def audit_page(self, *, action: str | None, actor_id: str | None, limit: int,
                         cursor: str | None) -> Page[dict[str, Any]]:
        position = decode_cursor(cursor)
        if position is not None and not is_id(position.get("id")):
            raise ValidationFailed.field("cursor", "Invalid cursor.")
        docs = await self._audit.page(
            limit=limit + 1, before_id=position["id"] if position else None,
            action=action, actor_id=actor_id,
        )
        more = len(docs) > limit
        docs = docs[:limit]
        return Page(docs, encode_cursor({"id": docs[-1]["_id"]}) if more else None)
