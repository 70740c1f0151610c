"""``GET /api/v1/skills?limit=20`` throughput and node CPU with the embedded
database inside the node's process (a reference checkout, ``--before``)
and in its own child process (this checkout). Not a test; results go to
docs/benchmarks.md ("Embedded database in its own process").

    git worktree add /tmp/dbproc-base <commit before the change>
    python loadtests/embedded_db_bench.py --before /tmp/dbproc-base \\
        --server-cpus 0 --generator-cpu 1 --runs 3

Both checkouts run ``python -m server serve`` from their own folder with
this interpreter, on copies of one data dir seeded once (``skillshare seed
--users N``). The cases alternate run by run; each run starts a fresh node,
warms it up, then ``--concurrency`` clients request the page for
``--seconds``. The node is pinned with ``taskset`` to ``--server-cpus`` (its
database child inherits that), this load generator to ``--generator-cpu``.
CPU is the node's and its children's utime+stime from /proc over the
window, in cores (1.0 = one core busy). The report is the median of the
runs per case."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PAGE = "/api/v1/skills?limit=20"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
    env.update({f"SKILLSHARE_{k.upper()}": v for k, v in settings.items()})
    return env


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_seconds(root: int) -> float:
    """utime+stime of ``root`` and its live descendants."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += times.get(pid, 0.0)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return total


class Node:
    def __init__(self, code_dir: Path, data_dir: Path, cpus: str, log: Path, **settings: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = clean_env(data_dir=str(data_dir), port=str(self.port), rate_limits="off",
                        log_level="WARNING", **settings)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                ["taskset", "-c", cpus, sys.executable, "-m", "server", "serve"],
                cwd=code_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    async def ready(self, http: aiohttp.ClientSession, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}")
            try:
                async with http.get(f"{self.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
        raise RuntimeError("node not ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def hammer(http: aiohttp.ClientSession, url: str, concurrency: int, seconds: float,
                 ) -> tuple[int, int, list[float]]:
    ok = failed = 0
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal ok, failed
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                async with http.get(url) as resp:
                    await resp.read()
                    good = resp.status == 200
            except aiohttp.ClientError:
                good = False
            latencies.append(time.monotonic() - started)
            if good:
                ok += 1
            else:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, failed, latencies


async def one_run(code_dir: Path, template: Path, args: argparse.Namespace, work: Path,
                  name: str) -> dict:
    data_dir = work / f"{name}-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(template, data_dir)
    node = Node(code_dir, data_dir, args.server_cpus, work / f"{name}.log")
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            await node.ready(http)
            await hammer(http, node.url + PAGE, args.concurrency, args.warmup)
            own0 = process_cpu_seconds(node.proc.pid)
            cpu0, t0 = tree_cpu_seconds(node.proc.pid), time.monotonic()
            ok, failed, latencies = await hammer(http, node.url + PAGE, args.concurrency,
                                                 args.seconds)
            cpu1, t1 = tree_cpu_seconds(node.proc.pid), time.monotonic()
            own1 = process_cpu_seconds(node.proc.pid)
    finally:
        node.stop()
    latencies.sort()
    elapsed = t1 - t0
    return {
        "req_per_s": ok / elapsed, "failed": failed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
        "cpu_cores": (cpu1 - cpu0) / elapsed,
        "node_process_cores": (own1 - own0) / elapsed,
        "cpu_ms_per_req": 1000 * (cpu1 - cpu0) / max(ok, 1),
    }


def seed(template: Path, users: int) -> None:
    env = clean_env(data_dir=str(template), log_level="WARNING")
    subprocess.run([sys.executable, "-m", "server", "seed", "--users", str(users)],
                   cwd=ROOT, env=env, check=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True,
                        help="checkout with the embedded database in the node's process")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--generator-cpu", type=int, default=1)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.generator_cpu})
    work = Path(tempfile.mkdtemp(prefix="embedded-db-bench-"))
    template = work / "template"
    seed(template, args.users)
    (template / "embedded-db.url").unlink(missing_ok=True)
    cases = {"in-process (before)": args.before.resolve(), "child process (after)": ROOT}
    results: dict[str, list[dict]] = {name: [] for name in cases}
    for run in range(args.runs):
        for name, code_dir in cases.items():
            result = await one_run(code_dir, template, args, work, name.split()[0])
            results[name].append(result)
            print(f"run {run + 1} {name}: {json.dumps({k: round(v, 2) for k, v in result.items()})}",
                  flush=True)
    print(f"\nserver cpus {args.server_cpus}, generator cpu {args.generator_cpu}, "
          f"concurrency {args.concurrency}, {args.seconds:g} s per run, median of {args.runs}:")
    print("| case | req/s | p50 ms | p95 ms | node + database CPU (cores) | of which the node "
          "process | CPU ms/req | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {name} | {med['req_per_s']:.1f} | {med['p50_ms']:.0f} | {med['p95_ms']:.0f} | "
              f"{med['cpu_cores']:.2f} | {med['node_process_cores']:.2f} | "
              f"{med['cpu_ms_per_req']:.1f} | {med['failed']:.0f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
