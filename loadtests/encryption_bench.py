"""Cost of encryption at rest on the chat hot paths: ``message:send`` (the
service call the event handler makes: one encrypt + one insert) and the
history page (latest 50: one range read + 50 decrypts), with the fields
encrypted (AES-256-GCM, server/storage/fields.py) and without, in the same
run against the same embedded database. Not a test; results go to
docs/benchmarks.md ("Encryption at rest").

    python loadtests/encryption_bench.py                       # defaults
    python loadtests/encryption_bench.py --messages 5000 --sends 500 --pages 300

Each mode has its own room (seeded with ``--messages`` messages through its
own ``MessageStore``); the modes alternate call by call (so drift hits both
alike), ``--runs`` rounds, and the report gives per mode the median over the
rounds of each round's median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_KEY = "bench-data-key-" + "z" * 32
BODY = "benchmark message with a realistic length, about eighty characters " + "x" * 12
HISTORY_LIMIT = 50
SEED_BATCH = 2000


async def bench(messages: int, sends: int, pages: int, runs: int) -> dict:
    from pymongo import AsyncMongoClient
    from secantus import SecantusDBServer

    from server.bus import Bus
    from server.clock import Clock
    from server.realtime.chat import ChatService
    from server.realtime.notifier import Notifier
    from server.realtime.rooms import RoomService
    from server.realtime.sequences import SequenceCache
    from server.storage.fields import FieldCrypto
    from server.storage.messages import MessageStore, message_id
    from server.storage.read_markers import ReadMarkerStore
    from server.storage.rooms import RoomStore
    from server.storage.users import UserStore

    class NoEmit:
        async def emit(self, *a, **k):  # noqa: ANN002, ANN003
            return None

    path = tempfile.mkdtemp(prefix="enc-bench-db-")
    server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=path)
    server.start()
    client = AsyncMongoClient(server.uri, tz_aware=True)
    db = client["bench"]
    try:
        rooms_store, markers = RoomStore(db), ReadMarkerStore(db)
        await MessageStore(db, FieldCrypto.plaintext()).create_indexes()
        await rooms_store.create_indexes()
        now = datetime.now(UTC)
        modes = {}
        for mode, fields in (("plaintext", FieldCrypto.plaintext()),
                             ("encrypted", FieldCrypto([DATA_KEY]))):
            store = MessageStore(db, fields)
            room = await rooms_store.create_group(name=mode, member_ids=["alice", "bob"],
                                                  created_by="alice", now=now)
            rid = room["_id"]
            for lo in range(1, messages + 1, SEED_BATCH):
                await store.insert_many_unchecked([
                    {"_id": message_id(rid, s), "room_id": rid, "seq": s,
                     "sender_id": "alice" if s % 2 else "bob", "client_id": str(uuid.uuid4()),
                     "body": f"{s} {BODY}", "created_at": now}
                    for s in range(lo, min(messages, lo + SEED_BATCH - 1) + 1)
                ])
            seqs = SequenceCache(store)
            rooms = RoomService(rooms=rooms_store, messages=store, markers=markers,
                                users=UserStore(db, fields), sequences=seqs, clock=Clock(),
                                consent=None, notifier=Notifier(NoEmit()), bus=Bus())
            chat = ChatService(rooms=rooms, messages=store, markers=markers, sequences=seqs,
                               notifier=Notifier(NoEmit()), clock=Clock())
            page = await chat.history("bob", rid, before_seq=None, after_seq=None,
                                      limit=HISTORY_LIMIT)  # warm the seq cache
            assert len(page["items"] if isinstance(page, dict) else page) > 0
            modes[mode] = (chat, rid)

        rounds: dict[str, dict[str, list[float]]] = {
            m: {"send_ms": [], "history_ms": []} for m in modes}
        for _ in range(runs):
            # interleaved, so drift (the rooms growing, other load on the
            # machine) hits both modes alike
            samples: dict[str, dict[str, list[float]]] = {
                m: {"send_ms": [], "history_ms": []} for m in modes}
            for k in range(max(sends, pages)):
                for mode, (chat, rid) in modes.items():
                    if k < sends:
                        t = time.perf_counter()
                        await chat.send("alice", rid, str(uuid.uuid4()), f"{k} {BODY}")
                        samples[mode]["send_ms"].append((time.perf_counter() - t) * 1000)
                    if k < pages:
                        t = time.perf_counter()
                        await chat.history("bob", rid, before_seq=None, after_seq=None,
                                           limit=HISTORY_LIMIT)
                        samples[mode]["history_ms"].append((time.perf_counter() - t) * 1000)
            for mode in modes:
                for case, values in samples[mode].items():
                    rounds[mode][case].append(statistics.median(values))
        result = {m: {k: round(statistics.median(v), 3) for k, v in r.items()}
                  for m, r in rounds.items()}
        for case in ("send_ms", "history_ms"):
            base, enc = result["plaintext"][case], result["encrypted"][case]
            result.setdefault("overhead_pct", {})[case] = round((enc / base - 1) * 100, 1)
        result["rounds"] = rounds
        result["params"] = {"messages": messages, "sends": sends, "pages": pages,
                            "runs": runs, "history_limit": HISTORY_LIMIT}
        return result
    finally:
        await client.close()
        server.stop()
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="seeded per room")
    parser.add_argument("--sends", type=int, default=500, help="message sends per round")
    parser.add_argument("--pages", type=int, default=300, help="history pages per round")
    parser.add_argument("--runs", type=int, default=3, help="rounds per mode (median taken)")
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(bench(args.messages, args.sends, args.pages, args.runs)),
                     indent=2))


if __name__ == "__main__":
    main()
