"""``skillshare rotate-data-key``: re-encrypt every encrypted field under the
newest ``SKILLSHARE_DATA_KEY`` (and recompute the blind indexes under it),
online.

Each collection is read with one cursor in batches; a document is rewritten
only when one of its values is under an older key or still plaintext (from
before encryption), with a compare-and-set on the values read, so a node
writing the same document meanwhile is never overwritten (the document is
picked up by the next pass). Documents already under the newest key are only
read: running it again, or after an interruption, is safe and finishes what
is left."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from .fields import BLIND_INDEXES, ENCRYPTED_FIELDS, FieldCrypto, FieldDecryptionError

ROTATION_BATCH = 500
# A pass that lost compare-and-sets to concurrent writes is followed by
# another one, at most this many in all.
MAX_PASSES = 3


@dataclass
class RotationReport:
    scanned: int = 0
    rewritten: int = 0
    raced: int = 0  # changed by a node meanwhile: picked up by the next pass
    failed: list[str] = field(default_factory=list)  # "<collection>/<_id>: reason"
    passes: int = 0
    by_collection: dict[str, int] = field(default_factory=dict)


def _changes(fields: FieldCrypto, collection: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The ``$set`` that brings ``doc`` under the newest key (empty if it is)."""
    changes: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for name in ENCRYPTED_FIELDS[collection]:
        value = doc.get(name)
        if not isinstance(value, str) or value == "":
            continue
        plain[name] = fields.decrypt(collection, name, doc["_id"], value)
        if fields.key_id_of(value) != fields.current_key_id:
            changes[name] = fields.encrypt(collection, name, doc["_id"], plain[name])
    for index_field, source in BLIND_INDEXES.get(collection, {}).items():
        if source in plain:
            wanted = fields.blind_index(plain[source])
            if doc.get(index_field) != wanted:
                changes[index_field] = wanted
    return changes


async def _rotate_collection(
    db: AsyncDatabase, fields: FieldCrypto, collection: str, report: RotationReport, *,
    batch_size: int, progress: Callable[..., None],
) -> int:
    """One pass over ``collection``; returns the compare-and-sets lost."""
    watched = [*ENCRYPTED_FIELDS[collection], *BLIND_INDEXES.get(collection, {})]
    cursor = db[collection].find({}, {name: 1 for name in watched}).batch_size(batch_size)
    scanned = rewritten = raced = 0
    ops: list[UpdateOne] = []
    ids: list[Any] = []  # the _id of each op

    async def flush() -> None:
        nonlocal rewritten, raced
        if not ops:
            return
        errors: list[dict[str, Any]] = []
        try:
            result = await db[collection].bulk_write(ops, ordered=False)
            done = result.modified_count
        except BulkWriteError as exc:  # e.g. two legacy rows with the same email
            done = exc.details.get("nModified", 0)
            errors = exc.details.get("writeErrors", [])
            for error in errors:
                report.failed.append(f"{collection}/{ids[error['index']]}: "
                                     f"{error.get('errmsg', 'write failed')}")
        rewritten += done
        raced += len(ops) - done - len(errors)
        ops.clear()
        ids.clear()
        progress("rotate-data-key: {} — {} scanned, {} re-encrypted", collection, scanned,
                 rewritten)

    async for doc in cursor:
        scanned += 1
        try:
            changes = _changes(fields, collection, doc)
        except FieldDecryptionError as exc:
            report.failed.append(f"{collection}/{doc['_id']}: {exc}")
            continue
        if changes:
            expected = {name: doc.get(name) for name in watched if name in changes}
            ops.append(UpdateOne({"_id": doc["_id"], **expected}, {"$set": changes}))
            ids.append(doc["_id"])
        if len(ops) >= batch_size:
            await flush()
    await flush()
    report.scanned += scanned
    report.rewritten += rewritten
    report.by_collection[collection] = report.by_collection.get(collection, 0) + rewritten
    return raced


async def rotate_data_key(
    db: AsyncDatabase, fields: FieldCrypto, *, batch_size: int = ROTATION_BATCH,
    progress: Callable[..., None] = logger.info,
) -> RotationReport:
    if not fields.enabled:
        raise ValueError("field encryption is off: nothing to rotate")
    report = RotationReport()
    progress("rotate-data-key: re-encrypting under key {} (configured: {})",
             fields.current_key_id, ", ".join(fields.key_ids))
    for _ in range(MAX_PASSES):
        report.passes += 1
        report.failed.clear()  # each pass finds the unreadable documents again
        raced = 0
        for collection in ENCRYPTED_FIELDS:
            raced += await _rotate_collection(db, fields, collection, report,
                                              batch_size=batch_size, progress=progress)
        report.raced = raced
        if raced == 0:
            break
    return report
