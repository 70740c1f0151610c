"""Every index exists before anything is written: ``open_database`` creates
the indexes of every store, and the demo seed writes only what they accept."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

import server.storage
from server.seed import seed_database
from server.storage.database import open_database
from server.storage.fields import FieldCrypto
from server.storage.rooms import RoomStore
from server.storage.schema import FIELD_STORES, INDEXED_STORES, PLAIN_STORES, create_all_indexes

TEST_DATA_KEY = "test-data-key-" + "x" * 32

# With these, the old seed wrote two direct rooms for the same pair of people.
SEED_USERS, RANDOM_SEED = 60, 9


@pytest.fixture
async def mongo_db(mongo_url, db_name):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        yield client[db_name]
    finally:
        await client.drop_database(db_name)
        await client.close()


def test_every_store_with_indexes_is_in_the_schema():
    found = set()
    for info in pkgutil.iter_modules(server.storage.__path__):
        module = importlib.import_module(f"server.storage.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and hasattr(cls, "create_indexes"):
                found.add(cls)
    assert found == set(INDEXED_STORES)
    # each is opened with or without a FieldCrypto, exactly once
    assert sorted(INDEXED_STORES, key=id) == sorted(FIELD_STORES + PLAIN_STORES, key=id)


async def test_seed_data_satisfies_every_unique_index(mongo_db):
    report = await seed_database(mongo_db, fields=FieldCrypto([TEST_DATA_KEY]), users=SEED_USERS, random_seed=RANDOM_SEED,
                                 password_hash="$argon2id$demo")
    assert report.users == SEED_USERS
    await create_all_indexes(mongo_db)
    rooms = await mongo_db["rooms"].find({}, {"direct_key": 1}).to_list(length=None)
    keys = [room["direct_key"] for room in rooms]
    assert keys and len(keys) == len(set(keys))
    assert await RoomStore(mongo_db).get(rooms[0]["_id"]) is not None


async def test_open_database_creates_every_index_first(mongo_url, db_name, tmp_path):
    async with open_database(mongo_url=mongo_url, db_name=db_name, data_dir=tmp_path) as db:
        unique = {name for collection in ("users", "rooms", "skill_requests", "messages")
                  for name, spec in (await db[collection].index_information()).items()
                  if spec.get("unique")}
        await db.client.drop_database(db_name)
    assert {"email_unique", "direct_key_sparse_unique", "one_open_request"} <= unique


async def test_the_partial_direct_key_index_of_earlier_versions_is_replaced(mongo_db):
    rooms = mongo_db["rooms"]
    await rooms.create_index([("direct_key", 1)], unique=True, name="direct_key_unique",
                             partialFilterExpression={"direct_key": {"$type": "string"}})
    await rooms.insert_one({"_id": "g1", "type": "group", "member_ids": ["a", "b"]})
    await RoomStore(mongo_db).create_indexes()
    indexes = await rooms.index_information()
    assert "direct_key_unique" not in indexes
    assert indexes["direct_key_sparse_unique"].get("unique")
    assert indexes["direct_key_sparse_unique"].get("sparse")
    # group rooms (no direct_key) stay many; a pair's direct room stays one
    await rooms.insert_one({"_id": "g2", "type": "group", "member_ids": ["a", "c"]})
    await rooms.insert_one({"_id": "d1", "type": "direct", "direct_key": "a:b"})
    with pytest.raises(DuplicateKeyError):
        await rooms.insert_one({"_id": "d2", "type": "direct", "direct_key": "a:b"})
    plan = (await rooms.find({"direct_key": "a:b"}).explain())["queryPlanner"]["winningPlan"]
    assert "COLLSCAN" not in str(plan)
