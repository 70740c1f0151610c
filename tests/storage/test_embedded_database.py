"""The embedded database (SecantusDB) started by a node without
``SKILLSHARE_MONGO_URL``: other local processes cannot use it, its URL is
never logged with the credentials, and what it writes is private."""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path

import pytest
from loguru import logger
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from server.storage.database import open_database

URL_WITH_SECRET = re.compile(r"[a-z+]+://[^/\s@]*:[^/\s@]+@")
OTHERS = 0o077


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _stranger_reads(url: str) -> object:
    """A second local client, like any other process on the machine."""
    with MongoClient(url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000) as stranger:
        return stranger["skillshare_t"]["users"].find_one({})


async def _node_address(db) -> tuple[str, int]:
    await db.command("ping")
    (address,) = db.client.nodes
    return address


async def test_a_local_client_without_the_credentials_cannot_read_users(tmp_path):
    async with open_database(mongo_url=None, db_name="skillshare_t",
                             data_dir=tmp_path / "data") as db:
        await db["users"].insert_one({"_id": "u1", "email": "a@example.com",
                                      "password_hash": "$argon2id$secret"})
        host, port = await _node_address(db)

        with pytest.raises(OperationFailure) as no_credentials:
            await asyncio.to_thread(_stranger_reads, f"mongodb://{host}:{port}/")
        assert no_credentials.value.code == 13  # Unauthorized

        guessed = f"mongodb://skillshare:guess@{host}:{port}/?authSource=admin"
        with pytest.raises(OperationFailure) as wrong_password:
            await asyncio.to_thread(_stranger_reads, guessed)
        assert wrong_password.value.code == 18  # AuthenticationFailed

        # The node itself still works normally.
        assert (await db["users"].find_one({"_id": "u1"}))["email"] == "a@example.com"


async def test_credentials_are_new_on_every_start_and_kept_private(tmp_path):
    data_dir = tmp_path / "data"
    url_file = data_dir / "embedded-db.url"
    async with open_database(mongo_url=None, db_name="skillshare_t", data_dir=data_dir) as db:
        await db["users"].insert_one({"_id": "u1"})
        first_url = url_file.read_text().strip()
        assert _mode(url_file) == 0o600
        # The file holds what an operator needs to connect (e.g. with mongosh).
        found = await asyncio.to_thread(_stranger_reads, first_url)
        assert found == {"_id": "u1"}
    assert not url_file.exists()
    async with open_database(mongo_url=None, db_name="skillshare_t", data_dir=data_dir):
        second_url = url_file.read_text().strip()
    password = re.compile(r"://[^:]+:([^@]+)@")
    assert password.search(first_url).group(1) != password.search(second_url).group(1)


async def test_no_url_with_credentials_is_logged(tmp_path, mongo_url):
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        async with open_database(mongo_url=None, db_name="skillshare_t",
                                 data_dir=tmp_path / "data") as db:
            await db.command("ping")
            secret = password_in((tmp_path / "data" / "embedded-db.url").read_text())
        async with open_database(mongo_url=mongo_url, db_name="skillshare_t",
                                 data_dir=tmp_path / "other"):
            pass
    finally:
        logger.remove(handler)
    log = "".join(lines)
    assert "embedded database started" in log
    assert secret not in log
    assert password_in(mongo_url) not in log
    assert not URL_WITH_SECRET.search(log), log


def password_in(url: str) -> str:
    match = re.search(r"://[^:/@]+:([^@]+)@", url)
    assert match, "the URL should carry credentials"
    return match.group(1)


async def test_data_dir_and_database_files_are_private(tmp_path):
    data_dir = tmp_path / "data"
    async with open_database(mongo_url=None, db_name="skillshare_t", data_dir=data_dir) as db:
        await db["users"].insert_one({"_id": "u1"})
        assert _mode(data_dir) == 0o700
        assert _mode(data_dir / "db") == 0o700
        assert _mode(data_dir / "embedded-db.url") == 0o600


async def test_too_open_modes_left_by_an_older_version_are_fixed_with_a_warning(tmp_path):
    data_dir = tmp_path / "data"
    async with open_database(mongo_url=None, db_name="skillshare_t", data_dir=data_dir) as db:
        await db["users"].insert_one({"_id": "u1"})
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "db", 0o755)
    for entry in (data_dir / "db").iterdir():
        if entry.is_file():
            os.chmod(entry, 0o644)
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        async with open_database(mongo_url=None, db_name="skillshare_t", data_dir=data_dir) as db:
            assert await db["users"].find_one({"_id": "u1"}) == {"_id": "u1"}
            assert _mode(data_dir) == 0o700
            for entry in [data_dir / "db", *(data_dir / "db").rglob("*")]:
                assert _mode(entry) & OTHERS == 0, entry
    finally:
        logger.remove(handler)
    assert any("permissions" in line and str(data_dir) in line for line in lines), lines
