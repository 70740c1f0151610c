"""``skillshare rotate-data-key``: re-encrypt the fields encrypted at rest
under the newest ``SKILLSHARE_DATA_KEY`` (server/storage/rotation.py), while
nodes run. Against ``SKILLSHARE_MONGO_URL``; on the embedded default it uses
the running node's database (through the node's 0600 URL file in the data
dir), or opens the embedded database itself when no node runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from loguru import logger
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from .config import Settings
from .storage.database import EMBEDDED_URL_FILE, open_database
from .storage.fields import FieldCrypto
from .storage.rotation import RotationReport, rotate_data_key

RUNNING_NODE_TIMEOUT_MS = 2000


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[AsyncDatabase]:
    url_file = settings.data_dir / EMBEDDED_URL_FILE
    if settings.mongo_url is None and url_file.exists():
        client: AsyncMongoClient = AsyncMongoClient(
            url_file.read_text().strip(), tz_aware=True,
            serverSelectionTimeoutMS=RUNNING_NODE_TIMEOUT_MS)
        try:
            await client.admin.command("ping")
        except PyMongoError:
            await client.close()  # a file left by a node that died: open it ourselves
        else:
            logger.info("rotate-data-key: using the running node's embedded database")
            try:
                yield client[settings.mongo_db]
            finally:
                await client.close()
            return
    async with open_database(mongo_url=settings.mongo_url, db_name=settings.mongo_db,
                             data_dir=settings.data_dir) as db:
        yield db


async def run_rotate_data_key(settings: Settings, *, batch_size: int) -> RotationReport:
    fields = FieldCrypto(settings.data_keys())
    async with _database(settings) as db:
        report = await rotate_data_key(db, fields, batch_size=batch_size)
    for failure in report.failed:
        logger.error("rotate-data-key: cannot re-encrypt {}", failure)
    logger.info(
        "rotate-data-key: done in {} pass(es): {} documents scanned, {} re-encrypted ({}), "
        "{} unreadable", report.passes, report.scanned, report.rewritten,
        ", ".join(f"{k} {v}" for k, v in report.by_collection.items()), len(report.failed),
    )
    if report.raced:
        logger.warning("rotate-data-key: {} documents changed while being re-encrypted; "
                       "run it again", report.raced)
    return report
