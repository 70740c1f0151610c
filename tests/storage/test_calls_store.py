"""The single-node call store keeps only live and recently ended calls."""

from __future__ import annotations

from server.storage.calls import ENDED, LIVE_STATES, RINGING, CallRecord, MemoryCallStore


class Now:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def _call(n: int, at: float) -> CallRecord:
    return CallRecord(id=f"c{n}", caller=f"a{n}", callee=f"b{n}", state=RINGING,
                      audio=True, video=False, created_at=at)


async def test_ended_calls_nobody_asks_about_are_forgotten():
    now = Now()
    store = MemoryCallStore(now)
    for n in range(200):
        assert await store.create(_call(n, now.t), ring_deadline=now.t + 30, ttl=90) is None
        changed, _ = await store.transition(f"c{n}", expect=LIVE_STATES, to=ENDED, ttl=60,
                                            ended_at=now.t, reason="hangup", ended_by=f"a{n}")
        assert changed
        now.t += 5
    # only the calls ended within the last 60 s are remembered
    assert len(store) <= 60 / 5 + 1
    assert await store.get("c0") is None and (await store.get("c199")).state == ENDED
