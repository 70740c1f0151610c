"""The MongoDB connection: an external server from ``SKILLSHARE_MONGO_URL``,
or the embedded SecantusDB (MongoDB wire protocol, in-process) under the data
dir. Both go through the same ``AsyncMongoClient`` code path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from loguru import logger
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

SERVER_SELECTION_TIMEOUT_MS = 5000


class EmbeddedDatabaseBusy(RuntimeError):
    """Another process has the embedded database's directory open."""


class EmbeddedDatabase:
    """SecantusDB running in this process on a loopback port."""

    def __init__(self, path: Path) -> None:
        try:
            from secantus import SecantusDBServer
        except ImportError as exc:  # pragma: no cover - depends on install
            raise RuntimeError(
                "SKILLSHARE_MONGO_URL is unset and the embedded database is not "
                "installed: pip install 'skillshare[embedded]' or set SKILLSHARE_MONGO_URL"
            ) from exc
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=str(path))
        except Exception as exc:  # WiredTigerError; its module is SecantusDB's own
            if "busy" not in str(exc).lower():
                raise
            raise EmbeddedDatabaseBusy(
                f"the embedded database in {path} is in use by another process "
                "(a running `skillshare serve`?); stop it first, or set "
                "SKILLSHARE_MONGO_URL to a database both can share"
            ) from None

    def start(self) -> str:
        self._server.start()
        logger.info("embedded database started at {} (data in {})", self._server.uri, self.path)
        return self._server.uri

    def stop(self) -> None:
        # Blocks until its connection threads drain; WiredTiger must close
        # cleanly before anyone touches the directory.
        self._server.stop()


@asynccontextmanager
async def open_database(
    *, mongo_url: str | None, db_name: str, data_dir: Path
) -> AsyncIterator[AsyncDatabase]:
    embedded: EmbeddedDatabase | None = None
    if mongo_url is None:
        embedded = EmbeddedDatabase(data_dir / "db")
        mongo_url = await asyncio.to_thread(embedded.start)
    client: AsyncMongoClient = AsyncMongoClient(
        mongo_url,
        tz_aware=True,
        serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        uuidRepresentation="standard",
    )
    try:
        yield client[db_name]
    finally:
        await client.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
