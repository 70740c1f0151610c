"""Scheduled backups taken by a running node on the embedded database:
one archive every ``SKILLSHARE_BACKUP_INTERVAL`` seconds into
``SKILLSHARE_BACKUP_DIR``, keeping the newest ``SKILLSHARE_BACKUP_KEEP``."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from ..clock import Clock
from ..private_files import private_dir
from .archive import ArchiveError, ArchiveWriter
from .snapshot import dump_database

ARCHIVE_PREFIX = "skillshare-"
ARCHIVE_SUFFIX = ".ssbak"
# Sortable by name = by time; microseconds keep two quick backups apart.
STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def archive_name(at: datetime) -> str:
    return f"{ARCHIVE_PREFIX}{at.strftime(STAMP_FORMAT)}{ARCHIVE_SUFFIX}"


class BackupMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "skillshare_backups_total", "Scheduled backups by outcome (success, failure).",
            ["outcome"], registry=registry,
        )
        self.last_success = Gauge(
            "skillshare_backup_last_success_timestamp_seconds",
            "Unix time of the last scheduled backup that was written completely.",
            registry=registry,
        )
        self.last_size = Gauge(
            "skillshare_backup_last_size_bytes", "Size of the last scheduled backup.",
            registry=registry,
        )


class BackupScheduler:
    """Owns nothing but its folder; ``run()`` is the node's background task
    (the cleanup context in server/app.py cancels and awaits it)."""

    def __init__(self, *, db: AsyncDatabase, directory: Path, interval: float, keep: int,
                 key: str | None, source: str, clock: Clock, metrics: BackupMetrics) -> None:
        self._db = db
        self._directory = directory
        self._interval = interval
        self._keep = keep
        self._key = key
        self._source = source
        self._clock = clock
        self._metrics = metrics

    def first_delay(self) -> float:
        """Seconds until the first backup: a node restarted more often than
        the interval still backs up on time, because the schedule continues
        from the newest archive in the folder (none: back up now)."""
        archives = self._archives()
        if not archives:
            return 0.0
        age = self._clock.time() - archives[-1].stat().st_mtime
        return min(self._interval, max(0.0, self._interval - age))

    async def run(self) -> None:
        delay = self.first_delay()
        while True:
            await asyncio.sleep(delay)
            delay = self._interval
            try:
                await self.take()
            except asyncio.CancelledError:
                raise
            except (ArchiveError, OSError, PyMongoError) as exc:
                self._metrics.outcomes.labels("failure").inc()
                logger.error("scheduled backup into {} failed: {}", self._directory, exc)
            except Exception:
                self._metrics.outcomes.labels("failure").inc()
                logger.exception("scheduled backup into {} failed", self._directory)

    async def take(self) -> Path:
        """Write one archive, then prune; returns its path."""
        private_dir(self._directory)
        path = self._directory / archive_name(self._clock.now())
        # Key derivation (scrypt) takes ~0.1 s of CPU: not on the event loop.
        writer = await asyncio.to_thread(ArchiveWriter, path, key=self._key)
        with writer:
            manifest = await dump_database(self._db, writer, source=self._source,
                                           clock=self._clock)
            await asyncio.to_thread(writer.commit)
        size = path.stat().st_size
        self._metrics.outcomes.labels("success").inc()
        self._metrics.last_success.set(self._clock.time())
        self._metrics.last_size.set(size)
        documents = sum(c["documents"] for c in manifest["collections"])
        logger.info("scheduled backup written: {} ({} documents, {} bytes)", path.name,
                    documents, size)
        self.prune()
        return path

    def _archives(self) -> list[Path]:
        """This schedule's archives, oldest first (their names sort by time)."""
        return sorted(self._directory.glob(f"{ARCHIVE_PREFIX}*{ARCHIVE_SUFFIX}"))

    def prune(self) -> list[Path]:
        """Delete all but the newest ``keep`` archives of this schedule."""
        archives = self._archives()
        doomed = archives[:-self._keep] if len(archives) > self._keep else []
        for old in doomed:
            old.unlink(missing_ok=True)
        if doomed:
            logger.info("pruned {} old backup(s) in {} (keeping {})", len(doomed),
                        self._directory, self._keep)
        return doomed
