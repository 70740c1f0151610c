"""Looking up the active users a page of marketplace items refers to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..storage.users import UserStore


async def active_users(users: UserStore, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    return {u["_id"]: u for u in await users.get_many_active(wanted)}
