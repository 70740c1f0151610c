"""Each memory/Redis store pair implements the Protocol written above it,
method for method and signature for signature (until a type checker runs
over server/, this is what keeps the twins from drifting apart)."""

from __future__ import annotations

import inspect

import pytest

from server.storage.calls import CallStore, MemoryCallStore, RedisCallStore
from server.storage.presence import MemoryPresenceStore, PresenceStore, RedisPresenceStore
from server.storage.revocations import MemoryRevocationList, RedisRevocationList, RevocationList

PAIRS = [
    (CallStore, MemoryCallStore, RedisCallStore),
    (PresenceStore, MemoryPresenceStore, RedisPresenceStore),
    (RevocationList, MemoryRevocationList, RedisRevocationList),
]


@pytest.mark.parametrize(("protocol", "memory", "redis"), PAIRS,
                         ids=[protocol.__name__ for protocol, _, _ in PAIRS])
def test_both_stores_implement_their_protocol(protocol, memory, redis) -> None:
    methods = {name: member for name, member in vars(protocol).items()
               if inspect.isfunction(member) and not name.startswith("_")}
    assert methods
    for store in (memory, redis):
        for name, method in methods.items():
            implemented = getattr(store, name, None)
            assert implemented is not None, f"{store.__name__}.{name} is missing"
            assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(method)
            assert inspect.signature(implemented) == inspect.signature(method), \
                f"{store.__name__}.{name}{inspect.signature(implemented)} differs from the protocol"
