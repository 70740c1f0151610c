"""``skillshare backup --out FILE`` and ``skillshare restore FILE [--force]``:
against ``SKILLSHARE_MONGO_URL`` (nodes may run), or the embedded database
under the data dir (the node must be stopped: one process owns it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..config import Settings
from ..logs import mask_url
from ..storage.database import open_database
from ..storage.schema import create_all_indexes
from .archive import ArchiveWriter
from .snapshot import dump_database, restore_database


def backup_source(settings: Settings) -> str:
    if settings.mongo_url:
        return mask_url(settings.mongo_url)
    return f"embedded:{settings.data_dir.resolve()}"


def _summary(manifest: dict[str, Any]) -> str:
    collections = manifest["collections"]
    documents = sum(c["documents"] for c in collections)
    return f"{len(collections)} collections, {documents} documents, as of {manifest['created_at']}"


async def run_backup(settings: Settings, *, out: Path, clock: Clock | None = None) -> str:
    """Write the archive; returns the one-line summary."""
    clock = clock or Clock()
    async with open_database(mongo_url=settings.mongo_url, db_name=settings.mongo_db,
                             data_dir=settings.data_dir, create_indexes=False) as db:
        writer = await asyncio.to_thread(ArchiveWriter, out, key=settings.backup_key)
        with writer:
            manifest = await dump_database(db, writer, source=backup_source(settings),
                                           clock=clock)
            writer.commit()
    sealed = "encrypted" if settings.backup_key else "not encrypted"
    return f"backup written to {out} ({_summary(manifest)}; {sealed})"


async def run_restore(settings: Settings, *, archive: Path, force: bool) -> str:
    async with open_database(mongo_url=settings.mongo_url, db_name=settings.mongo_db,
                             data_dir=settings.data_dir) as db:
        manifest = await restore_database(db, archive, key=settings.backup_key, force=force)
        # Indexes this version defines that the archive's version did not.
        await create_all_indexes(db)
    return f"restored {archive} into {settings.mongo_db!r} ({_summary(manifest)})"
