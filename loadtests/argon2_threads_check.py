"""Does argon2-cffi hash in parallel from threads (i.e. release the GIL)?
Wall time of ``--hashes`` argon2id hashes (t=3, m=64 MiB) on one thread and
on ``--threads`` threads, and how late a 10 ms timer on the event loop fires
meanwhile. Not a test; docs/benchmarks.md ("Password hashing pool").

    python loadtests/argon2_threads_check.py --hashes 8 --threads 2 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type

TICK_S = 0.01


async def run(hasher: PasswordHasher, hashes: int, threads: int) -> tuple[float, float]:
    """(wall seconds, worst timer lateness in ms) for ``hashes`` hashes."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            started = time.monotonic()
            await asyncio.sleep(TICK_S)
            worst = max(worst, time.monotonic() - started - TICK_S)

    tick = asyncio.create_task(ticker())
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, hasher.hash, f"password {i}")
                               for i in range(hashes)))
    wall = time.monotonic() - started
    done.set()
    await tick
    return wall, worst * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hashes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1, type=Type.ID)
    results: dict[int, list[tuple[float, float]]] = {1: [], args.threads: []}
    for _ in range(args.runs):
        for threads in results:
            results[threads].append(await run(hasher, args.hashes, threads))
    for threads, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        late = statistics.median(r[1] for r in runs)
        print(f"{threads} thread(s): {args.hashes} hashes in {wall:.2f} s "
              f"({wall / args.hashes * 1000:.0f} ms each), loop timer at most {late:.1f} ms late")


if __name__ == "__main__":
    asyncio.run(main())
