"""Read latency while 100 people sign in at once: ``GET /api/v1/users/me``
p50/p95 before and during a burst of ``--burst`` concurrent logins (real
argon2id cost, t=3 m=64 MiB), with hashing in ``asyncio.to_thread`` (a
reference checkout, ``--before``) and in the bounded hashing pool (this
checkout; once with the default queue, once with a queue that admits the
whole burst). Not a test; results go to docs/benchmarks.md ("Password
hashing pool").

    git worktree add /tmp/dbproc-base <commit before the change>
    python loadtests/hashing_burst_bench.py --before /tmp/dbproc-base \\
        --server-cpus 0,1 --generator-cpu 1 --runs 3

Each run starts a fresh node on a copy of one seeded data dir (rate limits
off, so the burst reaches the hashing), signs in once for a token, lets
``--readers`` clients read ``/users/me`` (each pausing ``--pause`` s between
requests) for ``--baseline`` s, then fires the burst while they keep
reading, until every login has answered. The report is the median of the
runs per case."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from embedded_db_bench import ROOT, Node, seed, tree_cpu_seconds

DEMO_PASSWORD = "skillshare-demo"
DEMO_EMAIL = "demo{n}@skillshare.test"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return 1000 * values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


async def login(http: aiohttp.ClientSession, url: str, n: int) -> tuple[int, dict]:
    """(status, headers); status 0 when the client gave up (``--login-timeout``)."""
    try:
        async with http.post(f"{url}/api/v1/auth/login",
                             json={"email": DEMO_EMAIL.format(n=n), "password": DEMO_PASSWORD}) as r:
            return r.status, dict(r.headers)
    except (TimeoutError, aiohttp.ClientError):
        return 0, {}


async def one_run(code_dir: Path, template: Path, args: argparse.Namespace, work: Path,
                  name: str, settings: dict[str, str]) -> dict:
    data_dir = work / f"{name}-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(template, data_dir)
    node = Node(code_dir, data_dir, args.server_cpus, work / f"{name}.log", **settings)
    try:
        timeout = aiohttp.ClientTimeout(total=args.login_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await node.ready(http)
            async with http.post(f"{node.url}/api/v1/auth/login", json={
                    "email": DEMO_EMAIL.format(n=args.burst + 1),
                    "password": DEMO_PASSWORD}) as resp:
                token = (await resp.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            samples: list[tuple[float, float, int]] = []  # (started, seconds, status)
            stop = asyncio.Event()

            async def reader() -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        async with http.get(f"{node.url}/api/v1/users/me", headers=headers) as r:
                            await r.read()
                            status = r.status
                    except (TimeoutError, aiohttp.ClientError):
                        status = 0
                    samples.append((started, time.monotonic() - started, status))
                    await asyncio.sleep(args.pause)

            readers = [asyncio.create_task(reader()) for _ in range(args.readers)]
            await asyncio.sleep(args.baseline)
            burst_start = time.monotonic()
            cpu0 = tree_cpu_seconds(node.proc.pid)
            outcomes = await asyncio.gather(*(login(http, node.url, 1 + n)
                                              for n in range(args.burst)))
            burst_end = time.monotonic()
            cpu1 = tree_cpu_seconds(node.proc.pid)
            stop.set()
            await asyncio.gather(*readers)
    finally:
        node.stop()
    before = [s for t, s, _ in samples if t < burst_start]
    during = [s for t, s, _ in samples if burst_start <= t < burst_end]
    statuses = [status for status, _ in outcomes]
    retry_after = {h.get("Retry-After") for status, h in outcomes if status == 503}
    return {
        "reads_p50_before_ms": pct(before, 0.5), "reads_p95_before_ms": pct(before, 0.95),
        "reads_p50_during_ms": pct(during, 0.5), "reads_p95_during_ms": pct(during, 0.95),
        "reads_during": len(during),
        "reads_failed": sum(1 for _, _, status in samples if status != 200),
        "logins_200": statuses.count(200), "logins_503": statuses.count(503),
        "logins_other": len(statuses) - statuses.count(200) - statuses.count(503),
        "logins_timed_out": statuses.count(0),
        "burst_s": burst_end - burst_start, "cpu_cores_during": (cpu1 - cpu0) / (burst_end - burst_start),
        "retry_after": ",".join(sorted(v for v in retry_after if v)) or "-",
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--server-cpus", default="0,1")
    parser.add_argument("--generator-cpu", type=int, default=1)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--baseline", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--login-timeout", type=float, default=60.0,
                        help="a client giving up on a login counts as 'other'")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.generator_cpu})
    work = Path(tempfile.mkdtemp(prefix="hashing-bench-"))
    template = work / "template"
    seed(template, args.burst + 1)
    (template / "embedded-db.url").unlink(missing_ok=True)
    cases = {
        "to_thread (before)": (args.before.resolve(), {}),
        "pool, default queue 16 (after)": (ROOT, {}),
        f"pool, queue {args.burst} (after)": (ROOT, {"password_hash_queue": str(args.burst)}),
    }
    results: dict[str, list[dict]] = {name: [] for name in cases}
    for run in range(args.runs):
        for i, (name, (code_dir, settings)) in enumerate(cases.items()):
            result = await one_run(code_dir, template, args, work, f"case{i}", settings)
            results[name].append(result)
            shown = {k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}
            print(f"run {run + 1} {name}: {json.dumps(shown)}", flush=True)
    print(f"\nserver cpus {args.server_cpus}, generator cpu {args.generator_cpu}, burst "
          f"{args.burst} logins, {args.readers} readers, median of {args.runs}:")
    print("| case | reads p50 / p95 before (ms) | reads p50 / p95 during burst (ms) | logins 200 / 503 "
          "/ other | burst wall (s) | node CPU during (cores) | failed reads |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        def med(key: str, runs: list = runs) -> float:
            return statistics.median(r[key] for r in runs)
        print(f"| {name} | {med('reads_p50_before_ms'):.0f} / {med('reads_p95_before_ms'):.0f} | "
              f"{med('reads_p50_during_ms'):.0f} / {med('reads_p95_during_ms'):.0f} | "
              f"{med('logins_200'):.0f} / {med('logins_503'):.0f} / {med('logins_other'):.0f} | "
              f"{med('burst_s'):.1f} | {med('cpu_cores_during'):.2f} | {med('reads_failed'):.0f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
