"""Chat history in a seeded database, for ``read_bench.py``'s ``rooms`` case:
every room gets 0–40 messages from its members, and each member a read
marker at the end (half of them) or part way (the rest), so ``/rooms`` has
last messages and unread counts to find, as in the launch test.

    SKILLSHARE_DATA_DIR=/tmp/lab python loadtests/seed_chat.py [--seed 7]

Run it on a stopped node's data (after ``skillshare seed``)."""

from __future__ import annotations

import argparse
import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

from server.config import Settings
from server.storage.database import open_database
from server.storage.fields import FieldCrypto
from server.storage.messages import MessageStore, message_id
from server.storage.read_markers import ReadMarkerStore

MAX_MESSAGES = 40


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    settings = Settings()
    now = datetime.now(UTC)
    async with open_database(mongo_url=settings.mongo_url, db_name=settings.mongo_db,
                             data_dir=settings.data_dir) as db:
        messages = MessageStore(db, FieldCrypto(settings.data_keys()))
        markers = ReadMarkerStore(db)
        rooms = await db["rooms"].find({}, {"member_ids": 1}).to_list(length=None)
        total = 0
        for room in rooms:
            room_id, members = room["_id"], room["member_ids"]
            count = rng.randint(0, MAX_MESSAGES)
            docs = [{"_id": message_id(room_id, seq), "room_id": room_id, "seq": seq,
                     "sender_id": rng.choice(members), "client_id": str(uuid.uuid4()),
                     "body": f"Message {seq}", "created_at": now - timedelta(minutes=count - seq)}
                    for seq in range(1, count + 1)]
            if docs:
                await messages.insert_many_unchecked(docs)
                for member in members:
                    read = count if rng.random() < 0.5 else rng.randint(0, count)
                    if read:
                        await markers.advance(room_id, member, read, now=now)
            total += count
        print(f"{total} messages in {len(rooms)} rooms")


if __name__ == "__main__":
    asyncio.run(main())
