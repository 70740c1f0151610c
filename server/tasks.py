"""Owning background tasks: every task is cancelled and awaited by its
owner on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from loguru import logger

# A cancellation can be lost inside a library: on Python 3.11,
# ``asyncio.wait_for`` (used by redis-py and pymongo around socket I/O) drops
# one that races with the awaited operation completing. The task then goes
# on to its next ``await`` as if nothing happened, and an owner waiting for
# it would wait forever. Cancelling again after this long ends it there.
RECANCEL_AFTER_S = 1.0


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None], *,
                          recancel_after: float = RECANCEL_AFTER_S) -> None:
    """Cancel the tasks and wait until each has finished, cancelling again
    any task that is still running ``recancel_after`` seconds later. Their
    own cancellation is expected; anything else they raised is logged. If
    the caller itself is cancelled meanwhile, that still propagates."""
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    running = [task for task in pending if not task.done()]
    while running:
        await asyncio.wait(running, timeout=recancel_after)
        running = [task for task in running if not task.done()]
        for task in running:
            logger.warning("task {} is still running after its cancellation; cancelling again",
                           task.get_name())
            task.cancel()
    for task in pending:
        if task.cancelled():
            continue
        error = task.exception()
        if isinstance(error, Exception):
            logger.opt(exception=error).warning("task {} failed while stopping", task.get_name())
