"""The ``oidc_flows`` collection: sign-ins in progress at a provider, keyed
by their ``state``, bound to the browser that started them (the hash of a
secret kept in that browser's cookie), used once, expiring."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase


class OidcFlowStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._flows = db["oidc_flows"]

    async def create_indexes(self) -> None:
        await self._flows.create_index("expires_at", expireAfterSeconds=0)

    async def create(self, flow: dict[str, Any]) -> None:
        """``flow`` holds ``_id`` (the state) and ``expires_at``."""
        await self._flows.insert_one(flow)

    async def consume(self, state: str, *, now: datetime) -> dict[str, Any] | None:
        """Remove and return the flow; None when unknown, used or expired."""
        flow = await self._flows.find_one_and_delete({"_id": state})
        if flow is None or flow["expires_at"].replace(tzinfo=now.tzinfo) <= now:
            return None
        return flow
