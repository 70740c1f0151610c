"""A bounded pool for argon2id work, so a burst of sign-ups or sign-ins can
never take the node's CPU away from everything else.

A fixed number of threads hash and verify (argon2-cffi releases the GIL, so
they run in parallel with the event loop and each other); they run at a
lower scheduling priority (nice +10) so a request that needs no hashing is
served first when the cores are busy. At most ``queue_limit`` more jobs
wait; a job beyond that is refused at once with ``HashingBusy`` (503
``unavailable`` with ``Retry-After``) instead of piling up behind the others
until the client times out. A slot is given back when the work itself ends,
so a client that hangs up does not let more work in than the pool holds."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..errors import HashingBusy

T = TypeVar("T")
HASHING_NICE = 10  # added to the worker threads' nice value (Linux: per thread)
MAX_RETRY_AFTER_S = 60
RECENT_WEIGHT = 0.2  # of the newest job in the running average of job seconds


def default_workers() -> int:
    """One less than the cores this process may use (at least one): a core
    stays for the event loop and the embedded database."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICE)
    except (AttributeError, OSError) as exc:  # pragma: no cover - platform
        logger.debug("password hashing threads keep the normal priority: {!r}", exc)


class HashingPool:
    def __init__(
        self, *, workers: int, queue_limit: int, seconds_per_job: float = 0.3,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self._seconds_per_job = seconds_per_job
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_lower_priority,
        )
        self._in_use = 0
        self._rejected = Counter(
            "skillshare_password_hashing_rejected_total",
            "Password hash/verify jobs refused with 503 because the hashing queue was full.",
            registry=registry,
        )
        self._busy = Gauge(
            "skillshare_password_hashing_jobs",
            "Password hash/verify jobs running or waiting in the hashing pool.",
            registry=registry,
        )

    @property
    def capacity(self) -> int:
        return self.workers + self.queue_limit

    def _retry_after(self) -> int:
        """Seconds until the queue has drained, from how long recent jobs
        took (a busy machine makes every hash slower)."""
        drain = self.capacity / self.workers * self._seconds_per_job
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(drain)))

    def _timed(self, work: Callable[..., T], *args: object) -> T:
        started = time.monotonic()
        try:
            return work(*args)
        finally:
            took = time.monotonic() - started
            self._seconds_per_job += RECENT_WEIGHT * (took - self._seconds_per_job)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        if self._in_use >= self.capacity:
            self._rejected.inc()
            raise HashingBusy(self._retry_after())
        loop = asyncio.get_running_loop()
        self._in_use += 1
        self._busy.set(self._in_use)
        job: Future[T] = self._executor.submit(self._timed, work, *args)
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(job)

    def _release(self) -> None:
        self._in_use -= 1
        self._busy.set(self._in_use)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
