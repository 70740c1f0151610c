"""Multi-document transactions, for the few writes that must land together
(a review and the listing's rating). Services get a ``Transactions`` and pass
the opaque ``tx`` it yields to store methods; they never see pymongo.

Needs a replica set (the embedded database is one; so must a production
MongoDB be, as in config/compose.yml)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from ..errors import Conflict

Tx = AsyncClientSession | None


class Transactions:
    def __init__(self, db: AsyncDatabase) -> None:
        self._client = db.client

    @asynccontextmanager
    async def start(self) -> AsyncIterator[AsyncClientSession]:
        """Everything written with the yielded ``tx`` commits together or not
        at all. A concurrent transaction touching the same documents makes
        this one fail with ``conflict`` (the client may retry)."""
        async with self._client.start_session() as session:
            try:
                async with await session.start_transaction():
                    yield session
            except PyMongoError as exc:
                if exc.has_error_label("TransientTransactionError"):
                    raise Conflict("The data changed meanwhile; try again.") from None
                raise
