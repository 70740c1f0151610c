"""The MongoDB connection: an external server from ``SKILLSHARE_MONGO_URL``,
or the embedded SecantusDB (MongoDB wire protocol, in-process) under the data
dir. Both go through the same ``AsyncMongoClient`` code path, and the
database is handed out only once every store's indexes exist."""

from __future__ import annotations

import asyncio
import fcntl
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from loguru import logger
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ..logs import mask_url
from ..private_files import private_dir, secure_tree, write_private_file
from .schema import create_all_indexes

SERVER_SELECTION_TIMEOUT_MS = 5000
EMBEDDED_HOST = "127.0.0.1"  # loopback only; SecantusDB 0.7 cannot listen on a Unix socket
EMBEDDED_DB_FOLDER = "db"
EMBEDDED_URL_FILE = "embedded-db.url"  # this start's URL with credentials, 0600
NODE_USER = "skillshare"
AUTH_DB = "admin"
PASSWORD_BYTES = 32
# What the node needs (CRUD, indexes, transactions) and nothing more: no user
# administration, no shutdown, no fail points.
NODE_ROLES = ("readWriteAnyDatabase", "dbAdminAnyDatabase")


class EmbeddedDatabaseBusy(RuntimeError):
    """Another process has the embedded database's directory open."""


WIREDTIGER_LOCK_FILE = "WiredTiger.lock"


def _busy(path: Path) -> EmbeddedDatabaseBusy:
    return EmbeddedDatabaseBusy(
        f"the embedded database in {path} is in use by another process "
        "(a running `skillshare serve`?); stop it first, or set "
        "SKILLSHARE_MONGO_URL to a database both can share"
    )


def _refuse_if_locked(path: Path) -> None:
    """WiredTiger holds an fcntl lock on its lock file while a process has the
    directory open. Asking first (and letting go at once) turns that into one
    line, instead of the library's own error lines on stderr."""
    lock_file = path / WIREDTIGER_LOCK_FILE
    if not lock_file.exists():
        return
    with open(lock_file, "rb+") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise _busy(path) from None
        fcntl.lockf(fh, fcntl.LOCK_UN)


class EmbeddedDatabase:
    """SecantusDB running in this process on a loopback port, with
    authentication required. Every start creates a new random password for
    the node's database user; the URL carrying it is kept only in memory and
    in ``<data_dir>/embedded-db.url`` (0600, removed on stop), so other local
    processes can neither read nor write the data.

    ``roles`` and ``enable_test_commands`` exist for the test suite's shared
    server (fail points need ``root``); a node keeps the defaults."""

    def __init__(
        self, data_dir: Path, *, roles: Sequence[str] = NODE_ROLES,
        enable_test_commands: bool = False,
    ) -> None:
        try:
            from secantus import SecantusDBServer
        except ImportError as exc:  # pragma: no cover - depends on install
            raise RuntimeError(
                "SKILLSHARE_MONGO_URL is unset and the embedded database is not "
                "installed: pip install 'skillshare[embedded]' or set SKILLSHARE_MONGO_URL"
            ) from exc
        private_dir(data_dir)
        self.path = private_dir(data_dir / EMBEDDED_DB_FOLDER)
        secure_tree(self.path)
        self.url_file = data_dir / EMBEDDED_URL_FILE
        self._roles = tuple(roles)
        _refuse_if_locked(self.path)
        self._password = secrets.token_urlsafe(PASSWORD_BYTES)
        try:
            self._server = SecantusDBServer(
                host=EMBEDDED_HOST, port=0, storage_path=str(self.path), require_auth=True,
                enable_test_commands=enable_test_commands,
            )
        except Exception as exc:  # WiredTigerError; its module is SecantusDB's own
            if "busy" not in str(exc).lower():
                raise
            raise _busy(self.path) from None
        self._provision_node_user()

    def _provision_node_user(self) -> None:
        """(Re)create the node's user with this start's password, straight
        into storage before the server listens: with authentication on from
        the first connection there is no window in which anyone gets in
        without it. The record has the shape SecantusDB's ``createUser``
        writes."""
        from secantus.auth import SCRAM_SHA_256, derive_credentials

        record = {
            "_id": f"{AUTH_DB}.{NODE_USER}", "user": NODE_USER, "db": AUTH_DB,
            "credentials": derive_credentials(self._password, mechanism=SCRAM_SHA_256).to_doc(),
            "roles": [{"role": role, "db": AUTH_DB} for role in self._roles],
            "mechanisms": [SCRAM_SHA_256],
        }
        self._server.storage.add_user(AUTH_DB, NODE_USER, record, replace=True)

    @property
    def url(self) -> str:
        host, port = self._server.address
        return (f"mongodb://{NODE_USER}:{quote(self._password, safe='')}@{host}:{port}/"
                f"?authSource={AUTH_DB}")

    def start(self) -> str:
        self._server.start()
        url = self.url
        write_private_file(self.url_file, f"{url}\n".encode())
        # Files WiredTiger just created follow the process umask, which the
        # CLI sets to 077; anyone embedding us with a looser one still gets
        # a private tree (the folder itself is 0700 in any case).
        secure_tree(self.path, warn=False)
        host, port = self._server.address
        logger.info("embedded database started on {}:{} (data in {}; URL with this start's "
                    "credentials in {})", host, port, self.path, self.url_file)
        return url

    def stop(self) -> None:
        self.url_file.unlink(missing_ok=True)
        # SecantusDB 0.7's Storage.close() marks the store closed, then writes
        # its oplog counters through the *calling* thread's WiredTiger session,
        # which it refuses to open once closed ("failed to persist oplog meta
        # during close ... Storage is closed"). A read opens this thread's
        # session first, so that last write succeeds.
        self._server.storage.get_user(AUTH_DB, NODE_USER)
        # Blocks until its connection threads drain; WiredTiger must close
        # cleanly before anyone touches the directory.
        self._server.stop()


@asynccontextmanager
async def open_database(
    *, mongo_url: str | None, db_name: str, data_dir: Path, create_indexes: bool = True,
) -> AsyncIterator[AsyncDatabase]:
    """The database, with every store's indexes created (idempotently)
    before the caller can write anything. ``create_indexes=False`` is for
    readers that must leave the database exactly as it is (backups)."""
    embedded: EmbeddedDatabase | None = None
    if mongo_url is None:
        embedded = EmbeddedDatabase(data_dir)
        mongo_url = await asyncio.to_thread(embedded.start)
    else:
        logger.info("database: {}", mask_url(mongo_url))
    client: AsyncMongoClient = AsyncMongoClient(
        mongo_url,
        tz_aware=True,
        serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        uuidRepresentation="standard",
    )
    try:
        db = client[db_name]
        if create_indexes:
            await create_all_indexes(db)
        yield db
    finally:
        await client.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
