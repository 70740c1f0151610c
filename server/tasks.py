"""Owning background tasks: every task is cancelled and awaited by its
owner on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from loguru import logger


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None]) -> None:
    """Cancel the tasks and wait until each has finished. Their own
    cancellation is expected; anything else they raised is logged. If the
    caller itself is cancelled meanwhile, that still propagates."""
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*pending, return_exceptions=True)
    for task, result in zip(pending, results):
        if isinstance(result, Exception):
            logger.opt(exception=result).warning("task {} failed while stopping", task.get_name())
