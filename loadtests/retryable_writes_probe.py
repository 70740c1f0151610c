"""What pymongo's retryable writes cost the embedded database: 12,000
``insert_one`` into a fresh SecantusDB (as a node opens it), with
``retryWrites`` on (pymongo's default, what a node uses today) and off;
wall and CPU milliseconds per insert for each block of 3,000. Not a test;
see docs/benchmarks.md ("Group commit").

    taskset -c 0 python loadtests/retryable_writes_probe.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymongo import AsyncMongoClient  # noqa: E402

from server.storage.database import EmbeddedDatabase  # noqa: E402

INSERTS, BLOCK = 12_000, 3_000


async def probe(url: str, retry_writes: bool) -> list[tuple[int, float, float]]:
    client: AsyncMongoClient = AsyncMongoClient(url, retryWrites=retry_writes)
    collection = client["probe"][f"retry_{retry_writes}"]
    blocks = []
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(INSERTS):
        await collection.insert_one({"_id": i, "body": "x" * 80})
        if (i + 1) % BLOCK == 0:
            blocks.append((i + 1, round((time.perf_counter() - wall) * 1000 / BLOCK, 3),
                           round((time.process_time() - cpu) * 1000 / BLOCK, 3)))
            wall, cpu = time.perf_counter(), time.process_time()
    await client.close()
    return blocks


def main() -> None:
    for retry_writes in (True, False):
        with tempfile.TemporaryDirectory() as path:
            database = EmbeddedDatabase(Path(path))
            url = database.start()
            try:
                blocks = asyncio.run(probe(url, retry_writes))
            finally:
                database.stop()
        print(f"retryWrites={str(retry_writes).lower()}: (inserts so far, wall ms, CPU ms) "
              f"per insert: {blocks}")


if __name__ == "__main__":
    main()
