"""Every Redis key and channel name of the server starts with one prefix,
``SKILLSHARE_REDIS_KEY_PREFIX`` (default ``skillshare:``), so several
deployments (or a deployment and anything else) can share one Redis.

A keyspace touched by multi-key Lua scripts carries a Redis Cluster hash tag
right after the prefix (``<prefix>{presence}:…``, ``<prefix>{calls}:…``): a
key's slot is the hash of its first ``{…}``, so every key of that keyspace
shares one slot whatever the prefix is; the prefix may therefore hold no
braces (nor pub/sub pattern characters: the bus subscribes to ``<prefix>bus:*``).
The key maps are in docs/scaling.md."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "skillshare:"
PREFIX_PATTERN = r"^[A-Za-z0-9_.:-]*$"  # no {} (hash tags), no *?[] (pub/sub patterns)


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not re.fullmatch(PREFIX_PATTERN, self.prefix):
            raise ValueError("a Redis key prefix holds only letters, digits and _ . : -")

    @property
    def presence(self) -> str:
        """Presence keys (``server/storage/presence.py``), one hash slot."""
        return f"{self.prefix}{{presence}}:"

    @property
    def calls(self) -> str:
        """Call state (``server/storage/calls.py``), one hash slot."""
        return f"{self.prefix}{{calls}}:"

    @property
    def revoked_sessions(self) -> str:
        """One key per revoked session id (``server/storage/revocations.py``)."""
        return f"{self.prefix}revoked:sid:"

    @property
    def rate_limits(self) -> str:
        """``limits``' key prefix (``server/ratelimit.py``; it adds ``:<limit>/…``)."""
        return f"{self.prefix}limits"

    @property
    def bus(self) -> str:
        """Control bus channels, ``<prefix>bus:<topic>`` (``server/bus.py``)."""
        return f"{self.prefix}bus:"

    @property
    def socketio(self) -> str:
        """The Socket.IO fan-out channel (``server/realtime/server.py``)."""
        return f"{self.prefix}socketio"
