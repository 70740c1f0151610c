"""Chat fan-out, our node(s) beside a Node.js Socket.IO 4 reference doing the
same work, driven by one open-loop load generator (the official
socket.io-client). Results go to docs/benchmarks.md ("Chat fan-out vs Node.js").

    python loadtests/fanout/run.py                     # every scenario, 3 runs each, median
    python loadtests/fanout/run.py --scenarios group100-0.2 --repeat 1
    python loadtests/fanout/run.py --quick             # smoke run: tiny numbers, one run
    python loadtests/fanout/run.py --server-root /work/main   # another checkout's server

Per run, for each server in turn (reference first, then ours; alternating
over the repeats): a fresh SecantusDB server process of its own (and a fresh
redis-server for two nodes), the server node(s) started under
``taskset -c <server core>``, users/rooms created (ours: straight into its
database through our store classes, with real access tokens; the reference:
its own HMAC tokens and a rooms file), then the generator under
``taskset -c <generator core>``. CPU (utime+stime from /proc, node processes
and their children; the database and Redis separately) and RSS are read at
the generator's MEASURE_START / MEASURE_END marks.

Needs ``npm ci`` in loadtests/fanout (scripts/test.sh does it), node,
taskset, and redis-server for the two-node scenarios.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SECRET = "fanout-bench-secret-" + "s" * 32
DATA_KEY = "fanout-bench-data-key-" + "d" * 32

DATABASE_CHILD = """
import signal, sys, threading
from secantus import SecantusDBServer
server = SecantusDBServer(host="127.0.0.1", port=int(sys.argv[1]), storage_path=sys.argv[2])
server.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
server.stop()
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    room_size: int
    rate: float  # msg/s per client
    nodes: int = 1
    room_type: str = "group"

    def describe(self) -> str:
        rooms = "1:1 rooms" if self.room_type == "direct" else f"rooms of {self.room_size}"
        nodes = "1 node" if self.nodes == 1 else f"{self.nodes} nodes + Redis"
        return f"{self.clients} clients, {rooms}, {self.rate:g} msg/s each, {nodes}"


SCENARIOS = {
    s.name: s for s in [
        Scenario("group100-0.05", 1000, 100, 0.05),
        Scenario("group100-0.2", 1000, 100, 0.2),
        Scenario("direct-0.3", 500, 2, 0.3, room_type="direct"),
        Scenario("cluster2-group100-0.1", 1000, 100, 0.1, nodes=2),
    ]
}
#: The issue's targets apply to these (ours vs the reference, same run).
TARGET_SCENARIOS = ("group100-0.2", "cluster2-group100-0.1")


# ------------------------------------------------------------ processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


def pinned(core: int | None, args: list[str], nice: int = 0) -> list[str]:
    args = args if not nice else ["nice", "-n", str(nice), *args]
    return args if core is None else ["taskset", "-c", str(core), *args]


class Procs:
    """Every process a run starts; stopped in reverse order (SIGTERM, then SIGKILL)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], *, env: dict | None = None, cwd: Path | None = None,
              stdout: int | None = None) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=stdout or log, stderr=log)
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.started):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def rss_mb(pid: int) -> float:
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total / 2**20


# ------------------------------------------------------------ one run

@dataclass
class Options:
    server_root: Path
    python: str
    server_core: int | None
    db_core: int | None
    gen_core: int | None
    warmup: float
    duration: float
    drain: float
    no_db: bool
    keep: bool
    ours_env: dict = field(default_factory=dict)  # extra SKILLSHARE_* for our node(s)
    mongo_query: str = ""  # appended to the database URL, e.g. "?retryWrites=false"
    inflight: int = 0  # > 0: closed loop, sends outstanding per client (gen.mjs)
    nice: int = 0  # niceness of the servers, database and generator (< 0: ahead of other jobs)


def start_database(procs: Procs, opts: Options) -> tuple[subprocess.Popen, str]:
    port = free_port()
    path = procs.workdir / "db"
    path.mkdir()
    proc = procs.start("db", pinned(opts.db_core, [opts.python, "-c", DATABASE_CHILD, str(port), str(path)],
                                         opts.nice))
    wait_port(port, proc)
    return proc, f"mongodb://127.0.0.1:{port}/{opts.mongo_query}"


def start_redis(procs: Procs, opts: Options) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = procs.start("redis", pinned(opts.server_core, [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(procs.workdir), "--loglevel", "warning"]))
    wait_port(port, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


PUBLISH_COMMANDS = ("publish", "spublish", "ssubscribe", "sunsubscribe")


def publish_calls(redis_url: str) -> dict[str, int]:
    """Calls so far of the pub/sub commands, summed over the URL's servers
    (``INFO commandstats``)."""
    hosts = redis_url.split("://", 1)[1].rstrip("/").removesuffix("/0").split(",")
    out: dict[str, int] = {}
    for host in hosts:
        port = host.rsplit(":", 1)[1]
        info = subprocess.run(["redis-cli", "-p", port, "info", "commandstats"],
                              capture_output=True, text=True, timeout=5).stdout
        for line in info.splitlines():
            name, _, stats = line.partition(":")
            command = name.removeprefix("cmdstat_")
            if command in PUBLISH_COMMANDS:
                calls = int(stats.split(",")[0].split("=")[1])
                out[command] = out.get(command, 0) + calls
    return out


def db_commands(urls: list[str]) -> dict[str, float]:
    """Database commands the nodes sent so far, by ``command/outcome``,
    summed over the nodes (``skillshare_db_commands_total`` in /metrics)."""
    out: dict[str, float] = {}
    for url in urls:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
            families = text_string_to_metric_families(resp.read().decode())
        for family in families:
            if family.name != "skillshare_db_commands":
                continue
            for s in family.samples:
                if s.name == "skillshare_db_commands_total":
                    key = f"{s.labels['command']}/{s.labels['outcome']}"
                    out[key] = out.get(key, 0.0) + s.value
    return out


def room_plan(sc: Scenario) -> dict:
    return {"rooms": sc.clients // sc.room_size, "size": sc.room_size, "type": sc.room_type}


def start_ours(procs: Procs, opts: Options, sc: Scenario, mongo_url: str, redis_url: str | None
               ) -> tuple[list[subprocess.Popen], list[dict]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
    env.update({
        "SKILLSHARE_ENV": "test", "SKILLSHARE_MONGO_URL": mongo_url, "SKILLSHARE_MONGO_DB": "fanout",
        "SKILLSHARE_SECRET_KEY": SECRET, "SKILLSHARE_DATA_KEY": DATA_KEY,
        "SKILLSHARE_DATA_DIR": str(procs.workdir / "data"), "SKILLSHARE_RATE_LIMITS": "off",
        "SKILLSHARE_LOG_LEVEL": "WARNING", "SKILLSHARE_ACCESS_TOKEN_TTL": "3600",
        "PYTHONPATH": str(opts.server_root),
    })
    if redis_url:
        env["SKILLSHARE_REDIS_URL"] = redis_url
    env.update(opts.ours_env)
    nodes, urls = [], []
    for i in range(sc.nodes):
        port = free_port()
        proc = procs.start(f"node{i}", pinned(opts.server_core, [opts.python, "-m", "server", "serve"],
                                                        opts.nice),
                           env={**env, "SKILLSHARE_PORT": str(port)}, cwd=opts.server_root)
        wait_port(port, proc)
        nodes.append(proc)
        urls.append(f"http://127.0.0.1:{port}")
    seeded = subprocess.run([opts.python, str(HERE / "seed_ours.py")], input=json.dumps(room_plan(sc)),
                            env=env, cwd=opts.server_root, capture_output=True, text=True, timeout=600)
    if seeded.returncode != 0:
        raise RuntimeError(f"seeding our database failed:\n{seeded.stderr[-3000:]}")
    clients = json.loads(seeded.stdout)
    for i, c in enumerate(clients):
        c["url"] = urls[i % len(urls)]
    return nodes, clients


def reference_token(user_id: str) -> str:
    mac = hmac.new(SECRET.encode(), user_id.encode(), hashlib.sha256).digest()
    return f"{user_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def start_reference(procs: Procs, opts: Options, sc: Scenario, mongo_url: str | None,
                    redis_url: str | None) -> tuple[list[subprocess.Popen], list[dict]]:
    plan = room_plan(sc)
    rooms, clients = {}, []
    for _ in range(plan["rooms"]):
        room_id = uuid.uuid4().hex
        members = [uuid.uuid4().hex for _ in range(plan["size"])]
        rooms[room_id] = {"type": plan["type"], "member_ids": members}
        clients.extend({"user_id": m, "token": reference_token(m), "room_id": room_id} for m in members)
    rooms_file = procs.workdir / "rooms.json"
    rooms_file.write_text(json.dumps(rooms))
    nodes, urls = [], []
    for i in range(sc.nodes):
        port = free_port()
        args = ["node", str(HERE / "ref-server.mjs"), "--port", str(port), "--secret", SECRET,
                "--rooms", str(rooms_file)]
        args += ["--no-db"] if mongo_url is None else ["--mongo", mongo_url, "--db", "fanout"]
        if redis_url:
            args += ["--redis", redis_url]
        proc = procs.start(f"ref{i}", pinned(opts.server_core, args, opts.nice), cwd=HERE)
        wait_port(port, proc)
        nodes.append(proc)
        urls.append(f"http://127.0.0.1:{port}")
    for i, c in enumerate(clients):
        c["url"] = urls[i % len(urls)]
    return nodes, clients


def follow_generator(gen: subprocess.Popen, opts: Options, sample: Callable[[], dict[str, float]],
                     at_end: Callable[[], dict] = dict,
                     ) -> tuple[dict, float, dict[str, float], dict] | None:
    """Read a running gen.mjs to its end: ``sample()`` (CPU seconds per key)
    at its MEASURE_START and MEASURE_END marks, ``at_end()`` at MEASURE_END,
    its RESULT line. (result, window seconds, CPU seconds in the window per
    key, at_end's value), or None when it gave no result. A generator that
    hangs (a server that never answers a connect) is killed."""
    cpu0 = cpu1 = None
    t0 = t1 = 0.0
    end: dict = {}
    result = None
    watchdog = threading.Timer(300 + opts.warmup + opts.duration + opts.drain, gen.kill)
    watchdog.start()
    assert gen.stdout is not None
    try:
        for raw in gen.stdout:
            line = raw.decode().strip()
            if line == "MEASURE_START":
                cpu0, t0 = sample(), time.monotonic()
            elif line == "MEASURE_END":
                cpu1, t1 = sample(), time.monotonic()
                end = at_end()
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        gen.wait(60)
    finally:
        watchdog.cancel()
    if result is None or cpu0 is None or cpu1 is None:
        return None
    return result, t1 - t0, {k: cpu1[k] - cpu0[k] for k in cpu0}, end


def run_once(kind: str, sc: Scenario, opts: Options) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"fanout-{kind}-"))
    procs = Procs(workdir)
    try:
        db, mongo_url = (None, None) if (kind == "ref" and opts.no_db) else start_database(procs, opts)
        redis, redis_url = start_redis(procs, opts) if sc.nodes > 1 else (None, None)
        if kind == "ours":
            nodes, clients = start_ours(procs, opts, sc, mongo_url, redis_url)
        else:
            nodes, clients = start_reference(procs, opts, sc, mongo_url, redis_url)
        config = workdir / "gen.json"
        config.write_text(json.dumps({
            "clients": clients, "rate": sc.rate, "warmup": opts.warmup, "duration": opts.duration,
            "drain": opts.drain, "inflight": opts.inflight,
        }))
        gen = procs.start("gen", pinned(opts.gen_core, ["node", str(HERE / "gen.mjs"), str(config)], opts.nice),
                          cwd=HERE, stdout=subprocess.PIPE)
        groups = {"server": [p.pid for p in nodes], "database": [db.pid] if db else [],
                  "redis": [redis.pid] if redis else [], "generator": [gen.pid]}

        redis_calls: list[dict[str, int]] = []

        def sample() -> dict[str, float]:
            if redis_url:
                redis_calls.append(publish_calls(redis_url))
            return {k: sum(cpu_seconds(pid) for pid in pids) for k, pids in groups.items()}

        measured = follow_generator(gen, opts, sample, at_end=lambda: {
            k: round(sum(rss_mb(pid) for pid in pids), 1) for k, pids in groups.items()})
        if measured is None:
            log = (workdir / "gen.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{kind} {sc.name}: the generator gave no result (exit {gen.returncode}):\n{log}")
        result, window, cpu, rss = measured
        deliveries = max(result["deliveries_in_window"], 1)
        return {
            **result, "window_s": round(window, 2),
            "cpu_pct": {k: round(100 * v / window, 1) for k, v in cpu.items()},
            "cpu_ms_per_1000": {k: round(1e6 * v / deliveries, 2) for k, v in cpu.items()},
            "rss_mb": rss,
            # PUBLISH + SPUBLISH in the window per message acked (2+ nodes)
            **({"redis_publishes_per_message": round(sum(
                redis_calls[-1].get(c, 0) - redis_calls[0].get(c, 0)
                for c in ("publish", "spublish")) / max(result["acked"], 1), 2)}
               if len(redis_calls) >= 2 else {}),
        }
    finally:
        procs.stop()
        if opts.keep:
            print(f"  (logs kept in {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------ report

ROWS = [  # label, how to read it from a run, better when (lower|higher)
    ("deliveries/s", lambda r: r["deliveries_per_s"], "higher"),
    ("acked / sent", lambda r: {"acked": r["acked"], "sent": r["sent"]}, None),
    ("failed acks", lambda r: r["failed"], "lower"),
    ("missing acks", lambda r: r["missing_acks"], "lower"),
    ("deliveries of window sends / expected",
     lambda r: {"got": r["deliveries"], "expected": r["expected_deliveries"]}, None),
    ("ack p50 / p99 / p99.9 ms", lambda r: r["ack_ms"], "lower"),
    ("delivery p50 / p99 / p99.9 ms", lambda r: r["delivery_ms"], "lower"),
    ("server CPU-ms per 1,000 deliveries", lambda r: r["cpu_ms_per_1000"]["server"], "lower"),
    ("database CPU-ms per 1,000 deliveries", lambda r: r["cpu_ms_per_1000"]["database"], "lower"),
    ("redis CPU-ms per 1,000 deliveries", lambda r: r["cpu_ms_per_1000"]["redis"], "lower"),
    ("redis publishes per message (2+ nodes)", lambda r: r.get("redis_publishes_per_message"),
     "lower"),
    ("server CPU (% of a core)", lambda r: r["cpu_pct"]["server"], "lower"),
    ("server RSS MB (end of window)", lambda r: r["rss_mb"]["server"], "lower"),
    ("generator CPU (% of a core)", lambda r: r["cpu_pct"]["generator"], "lower"),
    ("generator send lag p99 ms (behind schedule)", lambda r: r["send_lag_ms"]["p99"], None),
]


def median_of(runs: list[dict]) -> dict:
    """Each number the median over the runs (percentiles each on their own)."""
    def med(values: list) -> object:
        if isinstance(values[0], dict):
            return {k: med([v[k] for v in values]) for k in values[0]}
        # a percentile of no samples (nothing acked or delivered) is None: worst
        return statistics.median([float("inf") if v is None else v for v in values])
    return med(runs)


def fmt(value: object) -> str:
    if isinstance(value, dict):
        return " / ".join(fmt(v) for v in value.values())
    if value == float("inf"):
        return "none"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "–" if value is None else str(value)


def ratio(ours: object, ref: object) -> str:
    if isinstance(ours, dict):
        return " / ".join(ratio(ours[k], ref[k]) for k in ours)
    if isinstance(ours, (int, float)) and isinstance(ref, (int, float)) and ref and float("inf") not in (ours, ref):
        return f"{ours / ref:.2f}×"
    return ""


def table(sc: Scenario, med: dict[str, dict], nruns: int) -> str:
    lines = [f"### {sc.describe()} (`{sc.name}`, median of {nruns})", "",
             "| | Node.js reference | ours | ours / ref |", "|---|---|---|---|"]
    for label, read, better in ROWS:
        ref, ours = (read(med[k]) if k in med else None for k in ("ref", "ours"))
        shown = ratio(ours, ref) if better and ref is not None and ours is not None else ""
        lines.append(f"| {label} | {fmt(ref)} | {fmt(ours)} | {shown} |")
    return "\n".join(lines)


def targets(med: dict[str, dict], sc: Scenario) -> list[str]:
    """The issue's targets, ours against the reference in the same run. They
    are judged only when the reference itself kept up (every send acked, the
    offered deliveries/s reached): otherwise the machine, not the server, was
    the limit, and "2× the reference's p99" means nothing."""
    ref, ours = med["ref"], med["ours"]
    offered = sc.clients * sc.rate * (sc.room_size - 1)
    if ref["failed"] + ref["missing_acks"] > 0 or ref["deliveries_per_s"] < 0.95 * offered:
        return [f"- targets not judged: the reference itself did not keep up "
                f"({ref['missing_acks']} missing acks, {ref['deliveries_per_s']:,.0f} of "
                f"{offered:,.0f} deliveries/s offered): the machine was the limit in this run"]
    p99_bound = max(2 * (ref["delivery_ms"]["p99"] or 0), 100)
    checks = [
        ("zero failed or missing acks", ours["failed"] + ours["missing_acks"] == 0,
         f"{ours['failed']} failed, {ours['missing_acks']} missing"),
        ("deliveries/s ≥ 0.95× ref", ours["deliveries_per_s"] >= 0.95 * ref["deliveries_per_s"],
         f"{ours['deliveries_per_s'] / max(ref['deliveries_per_s'], 1e-9):.2f}×"),
        ("CPU per delivery ≤ 1.0× ref", ours["cpu_ms_per_1000"]["server"] <= ref["cpu_ms_per_1000"]["server"],
         f"{ours['cpu_ms_per_1000']['server'] / max(ref['cpu_ms_per_1000']['server'], 1e-9):.2f}×"),
        (f"delivery p99 ≤ max(2× ref, 100 ms) = {p99_bound:.0f} ms",
         (ours["delivery_ms"]["p99"] or float("inf")) <= p99_bound, f"{fmt(ours['delivery_ms']['p99'])} ms"),
    ]
    return [f"- {'met' if ok else 'NOT met'}: {name} ({detail})" for name, ok, detail in checks]


def print_scenario(sc: Scenario, runs: dict[str, list[dict]]) -> dict[str, dict]:
    med = {k: median_of(v) for k, v in runs.items() if v}
    print()
    print(table(sc, med, max(len(v) for v in runs.values())))
    if sc.name in TARGET_SCENARIOS and len(med) == 2:
        print()
        print("\n".join(targets(med, sc)))
    print(flush=True)
    return med


# ------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--servers", default="ref,ours", help="ref, ours or both (ref,ours)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--drain", type=float, default=10, help="seconds to wait for late acks/deliveries")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one tiny scenario (see --clients etc.), one run each")
    parser.add_argument("--clients", type=int, default=20, help="--quick: clients")
    parser.add_argument("--room-size", type=int, default=5, help="--quick: clients per room")
    parser.add_argument("--rate", type=float, default=1.0, help="--quick: msg/s per client")
    parser.add_argument("--nodes", type=int, default=1, help="--quick: nodes (2: + Redis)")
    parser.add_argument("--no-db", action="store_true",
                        help="the reference skips the database (ours always persists)")
    parser.add_argument("--server-root", type=Path, default=REPO,
                        help="checkout whose server runs as 'ours' (default: this one)")
    parser.add_argument("--python", help="Python for our server (default: SERVER_ROOT/.venv/bin/python)")
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--db-core", type=int, default=1)
    parser.add_argument("--gen-core", type=int, default=0)
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--ours-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra setting for our node(s), e.g. SKILLSHARE_FANOUT_MODE=broadcast")
    parser.add_argument("--json", type=Path, help="write every run and the medians here")
    parser.add_argument("--keep", action="store_true", help="keep each run's work dir and logs")
    parser.add_argument("--from-json", type=Path, help="print the tables of an earlier --json report")
    args = parser.parse_args(argv)
    if args.from_json:
        for entry in json.loads(args.from_json.read_text())["scenarios"].values():
            print_scenario(Scenario(**entry["scenario"]), entry["runs"])
        return 0

    root = args.server_root.resolve()
    python = args.python or (str(root / ".venv/bin/python") if (root / ".venv/bin/python").exists()
                             else sys.executable)
    if not (HERE / "node_modules" / "socket.io").is_dir():
        print("loadtests/fanout/node_modules is missing: run `npm ci` there", file=sys.stderr)
        return 2
    pin = not args.no_pin and shutil.which("taskset") is not None
    opts = Options(server_root=root, python=python,
                   server_core=args.server_core if pin else None, db_core=args.db_core if pin else None,
                   gen_core=args.gen_core if pin else None, warmup=args.warmup, duration=args.duration,
                   drain=args.drain, no_db=args.no_db, keep=args.keep,
                   ours_env=dict(item.split("=", 1) for item in args.ours_env))
    if args.quick:
        scenarios = [Scenario("quick", args.clients, args.room_size, args.rate, nodes=args.nodes)]
        repeat = 1
        if "--duration" not in " ".join(sys.argv if argv is None else argv):
            opts.duration, opts.warmup, opts.drain = 5, 1, 5
    else:
        scenarios = [SCENARIOS[name] for name in args.scenarios.split(",")]
        repeat = args.repeat
    kinds = [k for k in ("ref", "ours") if k in args.servers.split(",")]
    git = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %s"],
                         capture_output=True, text=True).stdout.strip()
    print(f"ours: {root} ({git or 'not a git checkout'}); {os.cpu_count()} CPUs; "
          f"cores: server {opts.server_core}, database {opts.db_core}, generator {opts.gen_core}; "
          f"{opts.warmup:g} s warm-up + {opts.duration:g} s measured, {repeat} run(s) each", flush=True)
    report: dict = {"server_root": str(root), "commit": git, "options": {**asdict(opts), "server_root": str(root)},
                    "scenarios": {}}
    for sc in scenarios:
        runs: dict[str, list[dict]] = {k: [] for k in kinds}
        for i in range(repeat):
            for kind in (kinds if i % 2 == 0 else kinds[::-1]):
                r = run_once(kind, sc, opts)
                runs[kind].append(r)
                if args.json:  # after every run, so a long run that fails keeps what it measured
                    report["scenarios"][sc.name] = {"scenario": asdict(sc), "runs": runs}
                    args.json.write_text(json.dumps(report, indent=2))
                print(f"  {sc.name} {kind} run {i + 1}: {r['deliveries_per_s']:,.0f} deliveries/s, "
                      f"acked {r['acked']}/{r['sent']}, failed {r['failed']}, missing {r['missing_acks']}, "
                      f"delivery p99 {r['delivery_ms']['p99']} ms, "
                      f"server {r['cpu_ms_per_1000']['server']} CPU-ms/1000", flush=True)
        med = print_scenario(sc, runs)
        report["scenarios"][sc.name] = {"scenario": asdict(sc), "runs": runs, "median": med}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
