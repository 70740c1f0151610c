"""Profiles: reading and editing one's own, public profiles, and the data
export, which gathers every area's data through registered exporters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .clock import Clock
from .errors import NotFound, Unauthorized
from .storage.sessions import SessionStore
from .storage.users import UserStore

# (user_id) -> JSON-able data; registered by each area under a name.
Exporter = Callable[[str], Awaitable[Any]]
# (updated user document) -> None; e.g. the marketplace re-indexes skills.
UpdateListener = Callable[[dict[str, Any]], Awaitable[None]]


class ProfileService:
    def __init__(self, *, users: UserStore, sessions: SessionStore, clock: Clock) -> None:
        self._users = users
        self._sessions = sessions
        self._clock = clock
        self._exporters: dict[str, Exporter] = {}
        self._update_listeners: list[UpdateListener] = []

    def add_exporter(self, name: str, exporter: Exporter) -> None:
        self._exporters[name] = exporter

    def add_update_listener(self, listener: UpdateListener) -> None:
        self._update_listeners.append(listener)

    async def me(self, user_id: str) -> dict[str, Any]:
        """The caller's own document (the read cache's copy: every write
        to a user drops it, on every node). Shared: do not modify it."""
        user = await self._users.get_public(user_id)
        if user is None:
            raise Unauthorized("This account is no longer active.")
        return user

    async def update(self, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        if not changes:
            return await self.me(user_id)
        user = await self._users.update_profile(user_id, changes, now=self._clock.now())
        if user is None:
            raise Unauthorized("This account is no longer active.")
        for listener in self._update_listeners:
            await listener(user)
        return user

    async def public(self, user_id: str) -> dict[str, Any]:
        user = await self._users.get_public(user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def export(self, user_id: str) -> dict[str, Any]:
        user = await self.me(user_id)
        account = {k: v for k, v in user.items() if k != "password_hash"}
        account["id"] = account.pop("_id")
        account.setdefault("presence_visibility", "contacts")  # the default was never stored
        sessions = await self._sessions.list_all(user_id)
        data: dict[str, Any] = {
            "account": account,
            "sessions": [{"id": s.pop("_id"), **s} for s in sessions],
        }
        for name, exporter in self._exporters.items():
            data[name] = await exporter(user_id)
        return data
