"""GroupCommit on its own: what arrives while a key's commit is in flight
forms its next batch, keys commit independently, the pending queue is
bounded, and a waiter that goes away does not cancel its batch. The commit
function is a plain coroutine that records its batches and, where a test
needs it, waits for the test to let it finish."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import Unavailable
from server.realtime.group_commit import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def commit(self, key: str, items: list[str]) -> list[object]:
        self.batches.append((key, list(items)))
        self.started.set()
        await self.release.wait()
        return [ValueError(i) if i.startswith("bad") else i.upper() for i in items]


async def test_sends_arriving_during_a_commit_form_the_next_batch_per_key():
    rec = Recorder()
    commits = GroupCommit(rec.commit, max_batch=3, max_pending=100)
    first = asyncio.create_task(commits.submit("a", "x0", dedupe="x0"))
    await rec.started.wait()  # x0 alone: its commit started without waiting for more
    later = [asyncio.create_task(commits.submit("a", f"x{i}", dedupe=f"x{i}")) for i in range(1, 6)]
    other = asyncio.create_task(commits.submit("b", "y0", dedupe="y0"))
    await asyncio.sleep(0)
    rec.release.set()
    assert await first == ("X0", False)
    assert [await t for t in later] == [(f"X{i}", False) for i in range(1, 6)]
    assert await other == ("Y0", False)
    assert [b for b in rec.batches if b[0] == "a"] == [
        ("a", ["x0"]), ("a", ["x1", "x2", "x3"]), ("a", ["x4", "x5"])]
    assert ("b", ["y0"]) in rec.batches


async def test_a_duplicate_joins_the_pending_one_and_a_failed_item_fails_alone():
    rec = Recorder()
    commits = GroupCommit(rec.commit, max_batch=10, max_pending=100)
    hold = asyncio.create_task(commits.submit("a", "hold", dedupe="hold"))
    await rec.started.wait()
    same = [asyncio.create_task(commits.submit("a", "x", dedupe="k")) for _ in range(3)]
    bad = asyncio.create_task(commits.submit("a", "bad", dedupe="bad"))
    good = asyncio.create_task(commits.submit("a", "y", dedupe="y"))
    await asyncio.sleep(0)
    rec.release.set()
    assert sorted([await t for t in same]) == [("X", False), ("X", True), ("X", True)]
    with pytest.raises(ValueError):
        await bad
    assert await good == ("Y", False) and await hold == ("HOLD", False)
    assert rec.batches[1] == ("a", ["x", "bad", "y"])


async def test_the_pending_queue_of_a_key_is_bounded():
    rec = Recorder()
    commits = GroupCommit(rec.commit, max_batch=2, max_pending=3)
    hold = asyncio.create_task(commits.submit("a", "hold", dedupe="hold"))
    await rec.started.wait()
    queued = [asyncio.create_task(commits.submit("a", f"x{i}", dedupe=i)) for i in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(Unavailable):
        await commits.submit("a", "one too many", dedupe="late")
    rec.release.set()
    assert await commits.submit("b", "elsewhere", dedupe="e") == ("ELSEWHERE", False)
    assert [await t for t in queued] == [("X0", False), ("X1", False), ("X2", False)]
    await hold


async def test_a_waiter_that_goes_away_does_not_cancel_its_batch_and_close_fails_the_rest():
    rec = Recorder()
    commits = GroupCommit(rec.commit, max_batch=10, max_pending=100)
    gone = asyncio.create_task(commits.submit("a", "gone", dedupe="gone"))
    await rec.started.wait()
    gone.cancel()
    stays = asyncio.create_task(commits.submit("a", "gone", dedupe="gone"))  # a retry joins it
    await asyncio.sleep(0)
    rec.release.set()
    assert await stays == ("GONE", True)

    rec.release.clear()
    waiting = asyncio.create_task(commits.submit("a", "w", dedupe="w"))
    await asyncio.sleep(0)
    await commits.close()
    with pytest.raises(Unavailable):
        await waiting
    with pytest.raises(Unavailable):
        await commits.submit("a", "after close", dedupe="z")
