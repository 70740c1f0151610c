"""Keeps the embedded database's process alive for as long as the node runs:
checks every second that the child is there and answers a ``ping`` over the
wire, and starts it again (same port, same credentials, so the node's client
reconnects by itself) when it died or stopped answering, with a growing
pause between failed attempts. Restarts are logged and counted in
``skillshare_embedded_db_restarts_total``; ``skillshare_embedded_db_up``
says whether it answers right now. While it is down, requests that need the
database answer 503 ``unavailable`` and ``/readyz`` names the database; the
rest of the node keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge

from .embedded_db import EmbeddedDatabase, EmbeddedDatabaseUnavailable

CHECK_INTERVAL_S = 1.0
PING_TIMEOUT_S = 5.0
MAX_FAILED_PINGS = 3  # in a row, while the process runs: it hangs; kill and restart
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class EmbeddedSupervisor:
    def __init__(
        self, database: EmbeddedDatabase, *, ping: Callable[[], Awaitable[object]],
        registry: CollectorRegistry | None = None, check_interval: float = CHECK_INTERVAL_S,
        ping_timeout: float = PING_TIMEOUT_S,
    ) -> None:
        self._database = database
        self._ping = ping
        self._check_interval = check_interval
        self._ping_timeout = ping_timeout
        self._task: asyncio.Task[None] | None = None
        self.up = True
        self._restarts = Counter(
            "skillshare_embedded_db_restarts_total",
            "Times the node started its embedded database's process again, by reason "
            "(exited, unresponsive).", ["reason"], registry=registry,
        )
        self._up_gauge = Gauge(
            "skillshare_embedded_db_up", "1 while the embedded database's process answers.",
            registry=registry,
        )
        self._up_gauge.set(1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="embedded-db-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _set_up(self, up: bool) -> None:
        self.up = up
        self._up_gauge.set(1 if up else 0)

    async def _watch(self) -> None:
        failed_pings = 0
        while True:
            await asyncio.sleep(self._check_interval)
            code = self._database.exit_code()
            if code is not None:
                reason, why = "exited", f"its process (pid {self._database.pid}) exited with code {code}"
            else:
                try:
                    await asyncio.wait_for(self._ping(), self._ping_timeout)
                except Exception as exc:
                    failed_pings += 1
                    logger.warning("embedded database did not answer a ping ({}/{}): {!r}",
                                   failed_pings, MAX_FAILED_PINGS, exc)
                    if failed_pings < MAX_FAILED_PINGS:
                        continue
                    reason = "unresponsive"
                    why = f"it did not answer {failed_pings} pings in a row"
                else:
                    failed_pings = 0
                    continue
            failed_pings = 0
            await self._restart(reason, why)

    async def _restart(self, reason: str, why: str) -> None:
        self._set_up(False)
        backoff = FIRST_BACKOFF_S
        logger.error("embedded database is down: {}; restarting it", why)
        while True:
            try:
                # launch() forks from this (the event loop's) thread on purpose,
                # see EmbeddedDatabase.launch; only the wait runs in a worker.
                await asyncio.to_thread(self._database.kill)
                self._database.launch()
                await asyncio.to_thread(self._database.wait_ready)
            except EmbeddedDatabaseUnavailable as exc:
                logger.error("embedded database restart failed: {}; next try in {:g} s",
                             exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            break
        self._restarts.labels(reason).inc()
        self._set_up(True)
        logger.info("embedded database restarted (pid {})",
                    self._database.pid)
