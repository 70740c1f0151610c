"""MessageStore against the real database: seq allocation by ``_id``,
idempotency by ``(sender_id, client_id)``, ranges and finding a room's end."""

from __future__ import annotations

from datetime import datetime, UTC

import pytest
from pymongo import AsyncMongoClient

from server.storage.fields import FieldCrypto
from server.storage.messages import ClientIdUsed, MessageStore, SeqTaken, message_id

ROOM = "r" * 24


def _doc(seq: int, *, sender: str = "s", client: str | None = None) -> dict:
    return {"_id": message_id(ROOM, seq), "room_id": ROOM, "seq": seq, "sender_id": sender,
            "client_id": client or f"c{seq}", "body": "b", "created_at": datetime.now(UTC)}


@pytest.fixture
async def store(mongo_url, db_name):
    client = AsyncMongoClient(mongo_url)
    s = MessageStore(client[db_name], FieldCrypto(["test-data-key-" + "x" * 32]))
    await s.create_indexes()
    yield s
    await client.close()


async def test_insert_outcomes(store):
    assert await store.insert(_doc(1)) is None
    assert isinstance(await store.insert(_doc(1, client="other")), SeqTaken)
    assert isinstance(await store.insert(_doc(2, client="c1")), ClientIdUsed)
    assert (await store.by_client_id("s", "c1"))["seq"] == 1


async def test_an_ordered_insert_stores_the_prefix_before_a_clash_and_nothing_after(store):
    assert await store.insert_in_order([_doc(1), _doc(2), _doc(3)]) == (3, None)
    stored, clash = await store.insert_in_order([_doc(4), _doc(5), _doc(6, client="c2"), _doc(7)])
    assert (stored, clash) == (2, ClientIdUsed())
    stored, clash = await store.insert_in_order([_doc(6), _doc(7), _doc(5, client="x"), _doc(8)])
    assert (stored, clash) == (2, SeqTaken())
    assert [d["seq"] for d in await store.range(ROOM, after_seq=0, upto_seq=100)] == \
        [1, 2, 3, 4, 5, 6, 7]
    assert await store.insert_in_order([_doc(8, client="c1")]) == (0, ClientIdUsed())


@pytest.mark.parametrize("count", [0, 1, 2, 3, 63, 64, 65, 1000, 4097])
async def test_last_seq_finds_the_end_from_any_known_point(store, count):
    if count:
        await store.insert_many_unchecked([_doc(i) for i in range(1, count + 1)])
    assert await store.last_seq(ROOM) == count
    for known in {0, count // 2, max(0, count - 1), count}:
        assert await store.last_seq(ROOM, known=known) == count


async def test_ranges_are_in_seq_order(store):
    await store.insert_many_unchecked([_doc(i) for i in range(1, 301)])
    got = await store.range(ROOM, after_seq=100, upto_seq=150)
    assert [d["seq"] for d in got] == list(range(101, 151))
    assert await store.count_from_others(ROOM, "me", after_seq=290, upto_seq=300) == 10
    assert await store.count_from_others(ROOM, "s", after_seq=290, upto_seq=300) == 0


async def test_ends_and_unread_confirms_only_rooms_whose_end_is_known(store):
    """One read for many rooms: a room is answered (its last message, or
    None when empty, and the reader's unread count) only when the given
    last seq is still its last; rooms whose end moved on (or is not known)
    are left for ``last_seq``. Unread messages are read along up to
    ``max_unread``; beyond that the count is left to ``count_from_others``."""
    rooms = {name: name * 24 for name in "abcdef"}
    counts = {"a": 0, "b": 3, "c": 3, "d": 5, "e": 1, "f": 9}
    for name, count in counts.items():
        if count:
            await store.insert_many_unchecked([
                {**_doc(i, sender="me" if i == 2 else "s", client=f"{name}{i}"),
                 "_id": message_id(rooms[name], i), "room_id": rooms[name]}
                for i in range(1, count + 1)])
    asked = {rooms["a"]: (0, 0), rooms["b"]: (3, 0), rooms["c"]: (2, 0), rooms["d"]: (0, 0),
             rooms["e"]: (1, 1), rooms["f"]: (9, 1)}
    got, moved = await store.ends_and_unread(asked, reader_id="me", max_unread=4)
    assert set(got) == {rooms["a"], rooms["b"], rooms["e"], rooms["f"]}
    assert moved == {rooms["c"], rooms["d"]}
    assert (got[rooms["a"]].last, got[rooms["a"]].message, got[rooms["a"]].unread) == (0, None, 0)
    end = got[rooms["b"]]
    assert (end.last, end.message["seq"], end.message["body"], end.unread) == (3, 3, "b", 2)
    assert (got[rooms["e"]].message["room_id"], got[rooms["e"]].unread) == (rooms["e"], 0)
    assert (got[rooms["f"]].last, got[rooms["f"]].unread) == (9, None)  # 8 unread: not read along
    assert await store.ends_and_unread({}, reader_id="me", max_unread=4) == ({}, set())
    # a seq the room never reached is neither an end nor moved on
    assert await store.ends_and_unread({rooms["e"]: (4, 0)}, reader_id="me",
                                       max_unread=4) == ({}, set())
