"""The launch test, end to end: a node on the embedded default pinned to
one core, the seed's 1,000 signed-in people, locust (loadtests/locustfile.py)
headless pinned to the other core, the node's CPU and memory from /proc.

    .venv/bin/python loadtests/launch_test.py --users 250 500 1000 2000 \\
        [--duration 90] [--out loadtests/out] [--data /tmp/launch-lab] [--fresh] [--steady]

Per user count it writes ``<out>/launch-<N>_stats.csv`` (locust's, HTTP
requests and socket events side by side), ``<out>/launch-<N>_failures.csv``,
``<out>/node-<N>.csv`` (one row a second: CPU % of one core, RSS MiB),
``<out>/metrics-<N>.txt`` (the node's /metrics at the end) and
prints one summary line (JSON). Each user count gets a fresh node on the
same data (seeded once; ``--fresh`` seeds again). Only on your own machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
SEED_USERS = 1000


def node_env(data: Path, port: int, settings: dict[str, str] | None = None) -> dict[str, str]:
    """``settings``: more ``SKILLSHARE_*`` variables for the node (tuning runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
    env.update({
        "SKILLSHARE_DATA_DIR": str(data), "SKILLSHARE_PORT": str(port),
        "SKILLSHARE_RATE_LIMITS": "off",  # one IP plays 1,000 people
        "SKILLSHARE_ACCESS_TOKEN_TTL": "86400",  # the seed's tokens outlive the test
        "SKILLSHARE_LOG_LEVEL": "WARNING",
        **(settings or {}),
    })
    return env


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run_queue_wait_s(pid: int) -> float:
    """Seconds the node's threads have waited for a CPU while runnable
    (/proc/<pid>/task/*/schedstat, 2nd field, ns): on a shared machine this
    is the time other processes held the core."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (FileNotFoundError, IndexError, ValueError):
            continue
    return total / 1e9


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB / 1024


class Sampler(threading.Thread):
    """The node's CPU (% of one core), run-queue wait (% of a second) and
    RSS once a second."""

    def __init__(self, pid: int, path: Path) -> None:
        super().__init__(daemon=True)
        self.pid, self.path = pid, path
        self.rows: list[tuple[float, float, float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        start = last_t = time.monotonic()
        last_cpu, last_wait = cpu_seconds(self.pid), run_queue_wait_s(self.pid)
        while not self.done.wait(1.0):
            try:
                cpu, rss = cpu_seconds(self.pid), rss_mib(self.pid)
                wait = run_queue_wait_s(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            now = time.monotonic()
            span = now - last_t
            self.rows.append((round(now - start, 1), round(100 * (cpu - last_cpu) / span, 1),
                              round(100 * (wait - last_wait) / span, 1), round(rss, 1)))
            last_cpu, last_wait, last_t = cpu, wait, now
        self.path.write_text("t_s,cpu_percent,run_queue_wait_percent,rss_mib\n"
                             + "".join(f"{t},{c},{w},{r}\n" for t, c, w, r in self.rows))


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (the embedded database's process)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in children.read_text().split()]
        except FileNotFoundError:
            continue
    return found


def set_cores(pid: int, cores: str) -> None:
    """Every thread of ``pid`` on ``cores`` ("0,1"): the database child
    inherits the node's pinning; this lets it use the other core when free."""
    wanted = {int(c) for c in cores.split(",")}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), wanted)
        except (ProcessLookupError, FileNotFoundError):
            continue


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/api/v1/skills/categories", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("node did not answer in time")


def save_metrics(url: str, path: Path) -> None:
    """The node's /metrics at the end of the run (database commands, read
    cache hits, socket acks): where its time went."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
            path.write_bytes(resp.read())
    except OSError as exc:
        path.write_text(f"# /metrics did not answer: {exc}\n")


def seed(data: Path, tokens: Path, port: int) -> None:
    subprocess.run([str(BIN / "skillshare"), "seed", "--users", str(SEED_USERS),
                    "--tokens", str(tokens)], env=node_env(data, port), check=True, cwd=ROOT)


def run_one(users: int, *, data: Path, tokens: Path, out: Path, port: int, duration: int,
            spawn_rate: int, node_core: str, load_core: str,
            node_src: Path | None = None, db_cores: str = "0,1",
            settings: dict[str, str] | None = None, steady_stats: bool = False) -> dict:
    url = f"http://127.0.0.1:{port}"
    log = open(out / f"node-{users}.log", "w")  # noqa: SIM115 (the node's log while it runs)
    env, cwd, command = node_env(data, port, settings), ROOT, [str(BIN / "skillshare"), "serve"]
    if node_src is not None:  # another checkout of the server (a "before" run)
        env["PYTHONPATH"], cwd = str(node_src), node_src
        command = [sys.executable, "-m", "server", "serve"]
    node = subprocess.Popen(["taskset", "-c", node_core, *command], env=env, cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, node)
        sampler = Sampler(node.pid, out / f"node-{users}.csv")
        sampler.start()
        db_samplers = []
        for db_pid in child_pids(node.pid):  # the embedded database's process
            if db_cores:
                set_cores(db_pid, db_cores)
            db_samplers.append(Sampler(db_pid, out / f"db-{users}.csv"))
            db_samplers[-1].start()
        ramp = users / spawn_rate
        locust = subprocess.run(
            ["taskset", "-c", load_core, str(BIN / "locust"), "-f",
             str(ROOT / "loadtests" / "locustfile.py"), "--host", url, "--headless",
             "-u", str(users), "-r", str(spawn_rate), "-t", f"{int(duration + ramp)}s",
             "--csv", str(out / f"launch-{users}"), "--only-summary", "--stop-timeout", "5",
             *(["--reset-stats"] if steady_stats else [])],
            env={**os.environ, "LAUNCH_TOKENS": str(tokens)}, cwd=ROOT,
            stdout=open(out / f"locust-{users}.log", "w"),  # noqa: SIM115 (locust's log while it runs)
            stderr=subprocess.STDOUT)
        for s in (sampler, *db_samplers):
            s.done.set()
            s.join()
        save_metrics(url, out / f"metrics-{users}.txt")
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
        log.close()
    steady = [r for r in sampler.rows if r[0] > ramp] or sampler.rows
    db_rows = db_samplers[0].rows if db_samplers else []
    db_steady = [r for r in db_rows if r[0] > ramp] or db_rows
    return {
        "users": users, "locust_exit": locust.returncode,
        "node_cpu_percent_avg": round(sum(r[1] for r in steady) / max(len(steady), 1), 1),
        "node_run_queue_wait_percent_avg":
            round(sum(r[2] for r in steady) / max(len(steady), 1), 1),
        "node_rss_mib_max": max((r[3] for r in sampler.rows), default=0),
        **({"db_cpu_percent_avg": round(sum(r[1] for r in db_steady) / max(len(db_steady), 1), 1),
            "db_rss_mib_max": max((r[3] for r in db_samplers[0].rows), default=0)}
           if db_samplers else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[1000])
    parser.add_argument("--duration", type=int, default=90, help="seconds after the ramp")
    parser.add_argument("--spawn-rate", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "out")
    parser.add_argument("--data", type=Path, default=Path("/tmp/launch-lab"))
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--fresh", action="store_true", help="seed a new data dir")
    parser.add_argument("--node-core", default="0")
    parser.add_argument("--load-core", default="1")
    parser.add_argument("--node-src", type=Path, default=None,
                        help="run the node from this checkout instead (e.g. the code before)")
    parser.add_argument("--db-cores", default="0,1",
                        help="cores for the embedded database's child process ('' = the node's)")
    parser.add_argument("--steady", action="store_true",
                        help="statistics of the steady state only: locust resets them once "
                             "every user has started (--reset-stats)")
    parser.add_argument("--set", action="append", default=[], metavar="SKILLSHARE_X=VALUE",
                        help="a setting for the node (repeatable), e.g. "
                             "SKILLSHARE_EMBEDDED_DB_POOL_SIZE=8")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    if any(not k.startswith("SKILLSHARE_") for k in settings):
        parser.error("--set takes SKILLSHARE_* variables")
    args.out.mkdir(parents=True, exist_ok=True)
    tokens = args.data.parent / f"{args.data.name}-tokens.jsonl"
    if args.fresh and args.data.exists():
        shutil.rmtree(args.data)
    if not tokens.exists() or not args.data.exists():
        seed(args.data, tokens, args.port)
    for users in args.users:
        summary = run_one(users, data=args.data, tokens=tokens, out=args.out, port=args.port,
                          duration=args.duration, spawn_rate=args.spawn_rate,
                          node_core=args.node_core, load_core=args.load_core,
                          node_src=args.node_src, db_cores=args.db_cores, settings=settings,
                          steady_stats=args.steady)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
