"""The MongoDB connection: an external server from ``SKILLSHARE_MONGO_URL``,
or the embedded SecantusDB under the data dir, in a child process the node
supervises (``embedded_db``, ``embedded_supervisor``). Both go through the
same ``AsyncMongoClient`` code path, and the database is handed out only once
every store's indexes exist."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ..logs import mask_url
from .embedded_db import (
    EMBEDDED_URL_FILE,
    EmbeddedDatabase,
    EmbeddedDatabaseBusy,
    EmbeddedDatabaseUnavailable,
)
from .command_metrics import CommandMetrics
from .embedded_expiry import EmbeddedExpiry
from .embedded_supervisor import EmbeddedSupervisor
from .schema import create_all_indexes

__all__ = ["EMBEDDED_URL_FILE", "EmbeddedDatabase", "EmbeddedDatabaseBusy",
           "EmbeddedDatabaseUnavailable", "open_database"]

SERVER_SELECTION_TIMEOUT_MS = 5000
# The embedded database serves each connection on a thread of its own, all
# under one interpreter lock and one storage lock: at 100 connections (the
# driver's default) the launch test's load cost it ~1.5x the CPU it costs at 4
# for the same requests served (docs/benchmarks.md). Beyond the pool, requests
# wait in the node's driver, which costs nothing while they wait.
EMBEDDED_POOL_SIZE = 4


def _client(url: str, **options: Any) -> AsyncMongoClient:
    return AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        uuidRepresentation="standard", **options,
    )


@asynccontextmanager
async def open_database(
    *, mongo_url: str | None, db_name: str, data_dir: Path, create_indexes: bool = True,
    registry: CollectorRegistry | None = None, embedded_port: int = 0,
    embedded_pool_size: int = EMBEDDED_POOL_SIZE,
) -> AsyncIterator[AsyncDatabase]:
    """The database, with every store's indexes created (idempotently)
    before the caller can write anything, and on the embedded database
    documents expired by their TTL indexes (``EmbeddedExpiry``).
    ``create_indexes=False`` is for readers that must leave the database
    exactly as it is (backups): neither happens.
    ``registry`` takes the embedded database's supervisor metrics and the
    driver's command counts and times (``CommandMetrics``)."""
    embedded: EmbeddedDatabase | None = None
    supervisor: EmbeddedSupervisor | None = None
    health: AsyncMongoClient | None = None
    if mongo_url is None:
        embedded = EmbeddedDatabase(data_dir, port=embedded_port)
        # Forked from the event loop's thread (see EmbeddedDatabase.launch).
        embedded.launch()
        try:
            await asyncio.to_thread(embedded.wait_ready)
        except EmbeddedDatabaseUnavailable:
            raise  # the child is gone already; the message says it all
        except BaseException:
            await asyncio.to_thread(embedded.stop)
            raise
        mongo_url = embedded.start_url()
        # Pings on a connection of their own, never queued behind requests.
        health = _client(mongo_url, maxPoolSize=1)
        supervisor = EmbeddedSupervisor(embedded, ping=lambda: health.admin.command("ping"),
                                        registry=registry)
        supervisor.start()
    else:
        logger.info("database: {}", mask_url(mongo_url))
    # The embedded database keeps a reply per retryable write and scans that
    # table on every write: per-insert CPU grows ~10x over 10,000 writes
    # (loadtests/retryable_writes_probe.py). Over loopback to our own child a
    # driver retry buys little; clients retry sends with their client_id.
    listeners = [CommandMetrics(registry)] if registry is not None else []
    client = (_client(mongo_url, retryWrites=False, event_listeners=listeners,
                      maxPoolSize=embedded_pool_size)
              if embedded is not None else _client(mongo_url, event_listeners=listeners))
    expiry: EmbeddedExpiry | None = None
    try:
        db = client[db_name]
        if create_indexes:
            await create_all_indexes(db)
            if embedded is not None:
                expiry = EmbeddedExpiry(db)
                expiry.start()
        yield db
    finally:
        if expiry is not None:
            await expiry.stop()
        if supervisor is not None:
            await supervisor.stop()
        if health is not None:
            await health.close()
        await client.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
