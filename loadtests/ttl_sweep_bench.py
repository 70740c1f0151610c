"""What one TTL sweep costs on the embedded database, by collection size:
SecantusDB's own sweep (every document of the collection read and decoded,
under its storage-wide lock) against the node's indexed range delete
(server/storage/embedded_expiry.py), with nothing expired, as in most
minutes. SecantusDB's Storage is driven in-process, on a scratch folder.

    .venv/bin/python loadtests/ttl_sweep_bench.py [--sizes 1000 10000 50000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta

from secantus.storage import Storage

DB, COLL = "bench", "sent_mails"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    args = parser.parse_args()
    print("| documents | SecantusDB's sweep ms (lock held) | indexed range delete ms |")
    print("|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            storage = Storage(folder, ttl_sweep_seconds=0)
            storage.create_index(DB, COLL, "purge_at_1", {"purge_at": 1},
                                 {"expireAfterSeconds": 0})
            later = datetime.now(UTC) + timedelta(days=7)
            body = "x" * 600  # about a sent mail's size once its body is dropped
            for start in range(0, size, 1000):
                storage.insert(DB, COLL, [{"_id": f"m{i}", "purge_at": later, "text": body}
                                          for i in range(start, min(start + 1000, size))])
            started = time.perf_counter()
            storage.prune_ttl(DB, COLL)
            sweep = time.perf_counter() - started
            started = time.perf_counter()
            storage.delete_matching(DB, COLL, {"purge_at": {"$lt": datetime.now(UTC)}})
            ranged = time.perf_counter() - started
            storage.close()
        print(f"| {size:,} | {sweep * 1000:.0f} | {ranged * 1000:.1f} |", flush=True)


if __name__ == "__main__":
    main()
