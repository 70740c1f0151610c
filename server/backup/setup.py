"""``build_backup``: scheduled backups of the embedded database
(SKILLSHARE_BACKUP_DIR). A shared SKILLSHARE_MONGO_URL is backed up by
`skillshare backup` or the database's own tooling, not by every node."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from loguru import logger
from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from ..clock import Clock
from ..config import Settings
from ..tasks import cancel_and_wait
from .commands import backup_source
from .schedule import BackupMetrics, BackupScheduler


@dataclass(slots=True)
class Backup:
    scheduler: BackupScheduler | None  # None: no SKILLSHARE_BACKUP_DIR, or a shared database
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        if self.scheduler is not None:
            self._tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduled-backups"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)


def build_backup(settings: Settings, *, db: AsyncDatabase, clock: Clock,
                 registry: CollectorRegistry) -> Backup:
    if settings.backup_dir is None:
        return Backup(None)
    if settings.mongo_url is not None:
        logger.warning("SKILLSHARE_BACKUP_DIR is ignored with SKILLSHARE_MONGO_URL: back up the "
                       "shared database with `skillshare backup` (docs/operations.md)")
        return Backup(None)
    scheduler = BackupScheduler(
        db=db, directory=settings.backup_dir, interval=settings.backup_interval,
        keep=settings.backup_keep, key=settings.backup_key,
        source=backup_source(settings), clock=clock, metrics=BackupMetrics(registry),
    )
    logger.info("scheduled backups every {} s into {} (keeping {}, {})",
                settings.backup_interval, settings.backup_dir, settings.backup_keep,
                "encrypted" if settings.backup_key else "not encrypted")
    return Backup(scheduler)
