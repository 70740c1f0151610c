"""Dumping a whole database into an archive as of one moment, checking an
archive, and loading one back.

Generic on purpose: every collection the database holds (whatever areas
exist now or later) with its options and index specifications; documents
are copied as raw BSON, so every type survives unchanged.

Consistency: the documents are read inside one multi-document transaction
with read concern ``snapshot``, which MongoDB (replica sets, 4.0+) and
SecantusDB both serve from a single point in time while writers go on.
Collection and index listings are not allowed inside a transaction and are
taken just before it."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson import json_util
from bson.codec_options import CodecOptions
from bson.json_util import JSONOptions, JSONMode
from bson.raw_bson import RawBSONDocument
from loguru import logger
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference

from ..clock import Clock, isoformat
from .archive import (
    FORMAT_VERSION,
    KIND_COLLECTION,
    KIND_DOCUMENTS,
    KIND_MANIFEST,
    ArchiveError,
    ArchiveWriter,
    read_records,
)

MANIFEST_FORMAT = "skillshare-backup"
BATCH_BYTES = 1024 * 1024  # documents per frame, and per insert on restore
RAW = CodecOptions(document_class=RawBSONDocument)
JSON_OPTIONS = JSONOptions(json_mode=JSONMode.RELAXED, tz_aware=True)
BSON_LENGTH = struct.Struct("<i")
MIN_BSON_BYTES = 5
# Errors that say an index of that name or key exists with other options:
# the running code's own definition (created at open) is kept.
INDEX_CONFLICT_CODES = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict
SYSTEM_PREFIX = "system."


class RestoreRefused(ArchiveError):
    """The target database holds data and ``--force`` was not given."""


@dataclass
class _Part:
    name: str
    documents: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, body: bytes) -> None:
        self.digest.update(BSON_LENGTH.pack(len(body)))
        self.digest.update(body)


async def dump_database(db: AsyncDatabase, writer: ArchiveWriter, *, source: str,
                        clock: Clock, batch_bytes: int = BATCH_BYTES) -> dict[str, Any]:
    """Write every collection of ``db`` to ``writer`` as of one moment and
    return the manifest (also written, last). The caller commits."""
    listed = [info async for info in await db.list_collections()]
    collections: list[dict[str, Any]] = []
    for info in sorted(listed, key=lambda i: i["name"]):
        name = info["name"]
        if name.startswith(SYSTEM_PREFIX) or info.get("type", "collection") != "collection":
            continue
        indexes = [_index_spec(spec) async for spec in await db[name].list_indexes()]
        collections.append({"name": name, "options": dict(info.get("options") or {}),
                            "indexes": indexes})
    client = db.client
    async with client.start_session() as session:
        await session.start_transaction(read_concern=ReadConcern("snapshot"),
                                        read_preference=ReadPreference.PRIMARY)
        created_at = clock.now()
        try:
            for entry in collections:
                part = _Part(entry["name"])
                name_body = entry["name"].encode()
                part.add(name_body)
                writer.write(KIND_COLLECTION, name_body)
                batch: list[bytes] = []
                size = 0
                coll = db.get_collection(entry["name"], codec_options=RAW)
                async for doc in coll.find({}, session=session):
                    batch.append(doc.raw)
                    size += len(doc.raw)
                    part.documents += 1
                    if size >= batch_bytes:
                        _write_batch(writer, part, batch)
                        batch, size = [], 0
                if batch:
                    _write_batch(writer, part, batch)
                entry["documents"] = part.documents
                entry["sha256"] = part.digest.hexdigest()
        finally:
            await session.abort_transaction()
    manifest = {
        "format": MANIFEST_FORMAT, "format_version": FORMAT_VERSION,
        "created_at": isoformat(created_at), "source": source, "database": db.name, "collections": collections,
    }
    writer.write(KIND_MANIFEST, json_util.dumps(manifest, json_options=JSON_OPTIONS).encode(),
                 last=True)
    return manifest


def _write_batch(writer: ArchiveWriter, part: _Part, batch: list[bytes]) -> None:
    body = b"".join(batch)
    part.add(body)
    writer.write(KIND_DOCUMENTS, body)


def _index_spec(spec: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(spec).items() if k not in ("v", "ns")}


def _split_documents(body: bytes, path: Path) -> list[bytes]:
    docs, offset = [], 0
    while offset < len(body):
        if len(body) - offset < MIN_BSON_BYTES:
            raise ArchiveError(f"{path} is damaged (a document is cut short)")
        (length,) = BSON_LENGTH.unpack_from(body, offset)
        if length < MIN_BSON_BYTES or offset + length > len(body):
            raise ArchiveError(f"{path} is damaged (a document has an impossible length)")
        docs.append(body[offset:offset + length])
        offset += length
    return docs


def verify_archive(path: Path, *, key: str | None) -> dict[str, Any]:
    """Read the whole archive, check every frame, count and hash every
    collection against the manifest; return the manifest. Nothing is
    written anywhere."""
    scan = _Scan(path, key=key)
    for _ in scan.batches():
        pass
    return scan.manifest


class _Scan:
    """One pass over an archive: ``batches()`` yields ``(collection, raw
    documents)`` frame by frame and checks everything on the way; once it
    is exhausted, ``manifest`` is the checked manifest."""

    def __init__(self, path: Path, *, key: str | None) -> None:
        self._path = path
        self._key = key
        self.manifest: dict[str, Any] = {}

    def batches(self) -> Iterator[tuple[str, list[bytes]]]:
        path, parts = self._path, []
        for kind, body in read_records(path, key=self._key):
            if kind == KIND_COLLECTION:
                parts.append(_Part(body.decode("utf-8", errors="replace")))
                parts[-1].add(body)
            elif kind == KIND_DOCUMENTS:
                if not parts:
                    raise ArchiveError(f"{path} is damaged (documents before any collection)")
                docs = _split_documents(body, path)
                parts[-1].add(body)
                parts[-1].documents += len(docs)
                yield parts[-1].name, docs
            elif kind == KIND_MANIFEST:
                manifest = _parse_manifest(body, path)
                _check_parts(manifest, parts, path)
                self.manifest = manifest
            else:
                raise ArchiveError(f"{path} is damaged (unknown frame kind)")


def _parse_manifest(body: bytes, path: Path) -> dict[str, Any]:
    try:
        manifest = json_util.loads(body.decode(), json_options=JSON_OPTIONS)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError(f"{path} is damaged (its manifest is not readable)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ArchiveError(f"{path} is damaged (its manifest is not a Skill Share manifest)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(f"{path} has manifest version {manifest.get('format_version')}; "
                           f"this version of Skill Share reads version {FORMAT_VERSION}")
    return manifest


def _check_parts(manifest: dict[str, Any], parts: list[_Part], path: Path) -> None:
    listed = manifest.get("collections") or []
    if [c.get("name") for c in listed] != [p.name for p in parts]:
        raise ArchiveError(f"{path} is damaged (its collections do not match its manifest)")
    for entry, part in zip(listed, parts, strict=True):
        if entry.get("sha256") != part.digest.hexdigest():
            raise ArchiveError(f"{path} is damaged or tampered with (SHA-256 mismatch in "
                               f"collection {part.name!r})")
        if entry.get("documents") != part.documents:
            raise ArchiveError(f"{path} is damaged (collection {part.name!r} holds "
                               f"{part.documents} documents, its manifest says "
                               f"{entry.get('documents')})")


async def collections_with_data(db: AsyncDatabase) -> list[str]:
    names = await db.list_collection_names()
    return sorted([n for n in names if not n.startswith(SYSTEM_PREFIX)
                   and await db[n].find_one({}, {"_id": 1}) is not None])


async def restore_database(db: AsyncDatabase, path: Path, *, key: str | None,
                           force: bool) -> dict[str, Any]:
    """Check the whole archive, refuse a database that holds data (unless
    ``force``: then every collection is dropped first), create each
    collection and its indexes (so unique indexes guard the load), then
    insert the documents batch by batch."""
    manifest = verify_archive(path, key=key)
    holding = await collections_with_data(db)
    if holding and not force:
        shown = ", ".join(holding[:5]) + (", …" if len(holding) > 5 else "")
        raise RestoreRefused(f"database {db.name!r} is not empty ({shown}); restore into an "
                             "empty database, or pass --force to drop and replace its data")
    if force:
        for name in await db.list_collection_names():
            if not name.startswith(SYSTEM_PREFIX):
                await db.drop_collection(name)
    existing = set(await db.list_collection_names())
    for entry in manifest["collections"]:
        if entry["name"] not in existing:  # empty ones too, with their options
            await db.create_collection(entry["name"], **(entry.get("options") or {}))
        await _create_indexes(db, entry)
    # The second read is checked as it goes, like the first; memory holds
    # one batch at a time.
    for name, docs in _Scan(path, key=key).batches():
        await db.get_collection(name, codec_options=RAW).insert_many(
            [RawBSONDocument(doc) for doc in docs], ordered=True)
    return manifest


async def _create_indexes(db: AsyncDatabase, entry: dict[str, Any]) -> None:
    coll = db[entry["name"]]
    for spec in entry.get("indexes") or []:
        if spec.get("name") == "_id_":
            continue
        options = {k: v for k, v in spec.items() if k != "key"}
        try:
            await coll.create_indexes([IndexModel(list(spec["key"].items()), **options)])
        except OperationFailure as exc:
            if exc.code not in INDEX_CONFLICT_CODES:
                raise
            logger.warning("restore: kept this version's index {} on {} (the archive's "
                           "definition differs: {})", spec.get("name"), entry["name"],
                           exc.details.get("errmsg") if exc.details else exc)
