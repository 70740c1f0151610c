"""Redis replies as text. redis-py types a reply ``bytes | str`` (``str``
when a client decodes responses); ours do not, and both come out as ``str``."""

from __future__ import annotations


def text(reply: object) -> str:
    if isinstance(reply, bytes):
        return reply.decode()
    if isinstance(reply, str):
        return reply
    raise TypeError(f"expected a Redis string reply, got {type(reply).__name__}")
