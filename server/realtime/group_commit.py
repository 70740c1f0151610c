"""Group commit: work submitted under one key (a room) while a commit for
that key is running waits and goes into the next commit, as one batch.

The first submission for an idle key starts a commit at once (no timer:
alone, it is a batch of one); everything that arrives while that commit is
in flight forms the next batch, up to ``max_batch`` items. At most
``max_pending`` items wait per key; more are refused (``unavailable``)
rather than queued without bound. Keys commit in
parallel, each one batch at a time, in submission order. A submission
whose ``dedupe`` key equals one still pending under the same key waits for
that one's result instead of being committed twice."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import Unavailable
from ..tasks import cancel_and_wait

Item = TypeVar("Item")
Result = TypeVar("Result")

# commit(key, items) -> one result (or the exception for that item) per item,
# in order; raising fails the whole batch.
Commit = Callable[[str, list[Item]], Awaitable[list[Any]]]


@dataclass(slots=True)
class _Pending(Generic[Item]):
    item: Item
    dedupe: Hashable
    future: asyncio.Future


@dataclass(slots=True)
class _KeyState:
    queue: deque = field(default_factory=deque)
    by_dedupe: dict[Hashable, asyncio.Future] = field(default_factory=dict)
    task: asyncio.Task | None = None


class GroupCommit(Generic[Item, Result]):
    def __init__(self, commit: Commit, *, max_batch: int, max_pending: int,
                 on_batch: Callable[[int], None] | None = None,
                 on_batch_failed: Callable[[BaseException], None] | None = None) -> None:
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be at least 1")
        self._commit = commit
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._on_batch = on_batch
        self._on_batch_failed = on_batch_failed
        self._keys: dict[str, _KeyState] = {}
        self._closed = False

    async def submit(self, key: str, item: Item, *, dedupe: Hashable) -> tuple[Result, bool]:
        """The item's result once its batch is committed, and whether this
        submission joined an identical pending one (``True``) rather than
        being committed itself. ``unavailable`` when ``max_pending`` items
        already wait under the key (the database does not keep up)."""
        if self._closed:
            raise Unavailable("The server is shutting down; retry the send.")
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
        joined = state.by_dedupe.get(dedupe)
        if joined is not None:
            return await asyncio.shield(joined), True
        if len(state.queue) >= self._max_pending:
            raise Unavailable("Too many messages are waiting to be stored in this room; "
                              "retry the send with the same client_id.")
        future = asyncio.get_running_loop().create_future()
        state.by_dedupe[dedupe] = future
        state.queue.append(_Pending(item, dedupe, future))
        if state.task is None:
            state.task = asyncio.create_task(self._drain(key, state), name=f"group-commit:{key}")
        # shield: a waiter that goes away (its socket closed) must not cancel
        # the result the batch, or a joined retry, still sets.
        return await asyncio.shield(future), False

    async def _drain(self, key: str, state: _KeyState) -> None:
        try:
            while state.queue:
                count = min(self._max_batch, len(state.queue))
                batch = [state.queue.popleft() for _ in range(count)]
                try:
                    await self._commit_one(key, batch)
                finally:
                    for pending in batch:
                        state.by_dedupe.pop(pending.dedupe, None)
        finally:
            state.task = None
            if state.queue:  # only when cancelled: nobody will commit these
                _fail(list(state.queue), _shutting_down)
                state.queue.clear()
            if self._keys.get(key) is state:
                del self._keys[key]

    async def _commit_one(self, key: str, batch: list[_Pending]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            results = await self._commit(key, [p.item for p in batch])
        except asyncio.CancelledError:
            _fail(batch, _shutting_down)
            raise
        except Exception as exc:
            if self._on_batch_failed is not None:
                self._on_batch_failed(exc)
            _fail(batch, _not_stored)
            return
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, BaseException):
                _set_exception(pending.future, result)
            else:
                pending.future.set_result(result)

    async def close(self) -> None:
        """Refuse new submissions, stop every running commit and fail what
        was still waiting (``unavailable``: the client retries elsewhere)."""
        self._closed = True
        states = list(self._keys.values())
        await cancel_and_wait([s.task for s in states])
        for state in states:  # a task cancelled before it ran never reached its finally
            _fail(list(state.queue), _shutting_down)
            state.queue.clear()
        self._keys.clear()


def _shutting_down() -> Unavailable:
    return Unavailable("The server is shutting down; retry the send with the same client_id.")


def _not_stored() -> Unavailable:
    return Unavailable("The message was not stored; retry the send with the same client_id.")


def _fail(batch: list[_Pending], error: Callable[[], BaseException]) -> None:
    """Each waiter gets its own exception instance (one raised in many
    tasks would collect all their tracebacks)."""
    for pending in batch:
        if not pending.future.done():
            _set_exception(pending.future, error())


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    future.set_exception(exc)
    future.exception()  # retrieved: no "never retrieved" warning when the waiter has gone
