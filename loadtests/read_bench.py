"""Each read endpoint on its own: requests/s and node CPU per request.

    python loadtests/read_bench.py --host http://127.0.0.1:8080 --pid NODE_PID \\
        --tokens /tmp/lab-tokens.jsonl [--requests 400] [--concurrency 8] [--writes 5]

Needs a seeded node (``skillshare seed --users 1000 --tokens FILE``). CPU is
the node process's utime+stime from /proc (all its threads) plus its child
processes' (the embedded database's), divided by the requests served. Pin the node and this
script to different cores with ``taskset`` for numbers worth comparing.

``--writes N``: during each case, N writes a second that change nothing a
page shows (a person's display name, a listing's description, each set to
what it is), standing in for the launch test's reviews and profile edits;
their own requests are not counted, their CPU is."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from pathlib import Path

import aiohttp

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """The node's CPU and its children's (the embedded database's process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / TICKS
    children = [int(c) for f in Path(f"/proc/{pid}/task").glob("*/children")
                for c in f.read_text().split()]
    return own + sum(cpu_seconds(c) for c in children)


async def run_case(session: aiohttp.ClientSession, pid: int, urls: list[tuple[str, dict]],
                   requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    failures = 0
    queue = list(range(requests))

    async def worker() -> None:
        nonlocal failures
        while queue:
            queue.pop()
            url, headers = random.choice(urls)
            started = time.perf_counter()
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    failures += 1
            latencies.append(time.perf_counter() - started)

    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu1, t1 = cpu_seconds(pid), time.perf_counter()
    latencies.sort()
    return {"rps": round(requests / (t1 - t0), 1),
            "cpu_ms_per_request": round(1000 * (cpu1 - cpu0) / requests, 2),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p95_ms": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
            "failures": failures}


async def keep_writing(session: aiohttp.ClientSession, api: str, per_second: float,
                       writes: list[tuple[str, dict, dict]], stop: asyncio.Event) -> None:
    """PATCH a random one of ``writes`` (url, body, headers) N times a second until ``stop``."""
    while not stop.is_set():
        url, body, headers = random.choice(writes)
        async with session.patch(url, json=body, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"write {url}: {resp.status}")
        await asyncio.sleep(1 / per_second)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="http://127.0.0.1:8080")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", default="", help="cases whose name contains one of these "
                        "comma-separated words")
    parser.add_argument("--writes", type=float, default=0.0,
                        help="writes per second that change no page, during each case")
    args = parser.parse_args()
    people = [json.loads(line) for line in args.tokens.read_text().splitlines() if line]
    auths = [{"Authorization": f"Bearer {p['access_token']}"} for p in people]
    api = args.host + "/api/v1"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{api}/skills?limit=20", headers=auths[0]) as resp:
            first = await resp.json()
        listing_ids = [i["id"] for i in first["items"]]
        cursor = first["next_cursor"]
        async with session.get(f"{api}/skills?limit=100&category=music") as resp:
            music = (await resp.json())["items"]
        listing_ids += [i["id"] for i in music]
        by_user = {p["user_id"]: a for p, a in zip(people, auths, strict=True)}
        writes = [(f"{api}/skills/{i['id']}", {"description": i["description"]},
                   by_user[i["owner"]["id"]])
                  for i in first["items"] + music if i["owner"]["id"] in by_user]
        for auth in auths[:50]:
            async with session.get(f"{api}/users/me", headers=auth) as resp:
                name = (await resp.json())["display_name"]
            writes.append((f"{api}/users/me", {"display_name": name}, auth))
        def signed(path: str) -> list[tuple[str, dict]]:
            return [(api + path, a) for a in auths]
        cases = {
            "skills newest": signed("/skills?limit=20"),
            "skills page 2": [(f"{api}/skills?limit=20&cursor={cursor}", a) for a in auths],
            "skills category": [(f"{api}/skills?limit=20&category={c}", a) for a in auths
                                for c in ("music", "programming", "languages", "cooking")],
            "skills search": [(f"{api}/skills?limit=20&q={w}", a) for a in auths[:50]
                              for w in ("python", "guitar", "spanish", "baking", "yoga")],
            "listing": [(f"{api}/skills/{i}", a) for i in listing_ids for a in auths[:5]],
            "listing reviews": [(f"{api}/skills/{i}/reviews", a) for i in listing_ids
                                for a in auths[:5]],
            "matches": signed("/matches"),
            "users/me": signed("/users/me"),
            "public profile": [(f"{api}/users/{p['user_id']}", auths[0]) for p in people],
            "rooms": signed("/rooms"),
            "requests": signed("/requests"),
        }
        for name, urls in cases.items():
            if args.only and not any(part in name for part in args.only.split(",")):
                continue
            stop = asyncio.Event()
            writer = (asyncio.create_task(keep_writing(session, api, args.writes, writes, stop))
                      if args.writes > 0 else None)
            result = await run_case(session, args.pid, urls, args.requests, args.concurrency)
            stop.set()
            if writer is not None:
                await writer
            print(json.dumps({"endpoint": name, **result}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
