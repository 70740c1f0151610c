"""This node's sockets: the state of each (``SocketState``) and the registry
that finds them by sid, by session and by user."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .token_bucket import TokenBucket


@dataclass(slots=True)
class SocketState:
    """What this node knows about one connected socket."""

    sid: str
    user_id: str
    session_id: str
    expires_at: int
    bucket: TokenBucket | None
    rooms: set[str] = field(default_factory=set)
    presence: set[str] = field(default_factory=set)  # presence:subscribe wishes
    presence_visible: set[str] = field(default_factory=set)  # of those, the ones allowed
    refused: int = 0
    refused_since: float = 0.0
    refusal_logged_at: float = float("-inf")
    expiry_task: asyncio.Task[None] | asyncio.TimerHandle | None = None  # see connections.py
    closing: bool = False


class SocketRegistry:
    """Local sockets, by sid, by session and by user."""

    def __init__(self) -> None:
        self._by_sid: dict[str, SocketState] = {}
        self._by_session: dict[str, set[str]] = {}
        self._per_user: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_sid)

    def add(self, state: SocketState) -> None:
        self._by_sid[state.sid] = state
        self._by_session.setdefault(state.session_id, set()).add(state.sid)
        self._per_user[state.user_id] = self._per_user.get(state.user_id, 0) + 1

    def count_for_user(self, user_id: str) -> int:
        return self._per_user.get(user_id, 0)

    def get(self, sid: str) -> SocketState | None:
        return self._by_sid.get(sid)

    def pop(self, sid: str) -> SocketState | None:
        state = self._by_sid.pop(sid, None)
        if state is not None:
            self._unindex(state)
            left = self._per_user[state.user_id] - 1
            if left:
                self._per_user[state.user_id] = left
            else:
                del self._per_user[state.user_id]
        return state

    def rebind(self, state: SocketState, session_id: str) -> None:
        self._unindex(state)
        state.session_id = session_id
        self._by_session.setdefault(session_id, set()).add(state.sid)

    def _unindex(self, state: SocketState) -> None:
        sids = self._by_session.get(state.session_id)
        if sids is not None:
            sids.discard(state.sid)
            if not sids:
                del self._by_session[state.session_id]

    def by_sessions(self, session_ids: list[str]) -> list[SocketState]:
        out: list[SocketState] = []
        for sid_ in session_ids:
            out.extend(self._by_sid[s] for s in self._by_session.get(sid_, ()) if s in self._by_sid)
        return out

    def all(self) -> list[SocketState]:
        return list(self._by_sid.values())
