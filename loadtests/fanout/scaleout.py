"""Scale-out numbers for issue 10 (docs/scaling.md): the same chat load on
1, 2 and 3 nodes sharing one database and one Redis, and the "only node 1
busy" measurement, each with the fan-out mode to compare
(``SKILLSHARE_FANOUT_MODE``: ``sharded``, the default, or ``broadcast``,
the previous single channel).

    python loadtests/fanout/scaleout.py                       # everything, 3 runs each, medians
    python loadtests/fanout/scaleout.py --scenarios busy1 --modes broadcast,sharded
    python loadtests/fanout/scaleout.py --scenarios shared --nodes 1,3 --repeat 1
    python loadtests/fanout/scaleout.py --redis cluster      # on a 3-master Redis Cluster
    python loadtests/fanout/scaleout.py --from-json a.json --from-json b.json   # the table again

Scenarios (clients connect with the official socket.io-client, gen.mjs):

- ``shared``: 120 clients in rooms of 10, 2 msg/s each; every room's
  members on one node (rooms dealt round-robin over the nodes).
- ``direct``: 200 clients in 1:1 rooms, 0.5 msg/s each; with 2 or 3 nodes the
  two members of a room are on different nodes.
- ``busy1`` (3 nodes; the issue's first measurement): node 1 holds 100
  members in rooms of 10 sending 3 msg/s each; nodes 2 and 3 each hold 100
  idle members of other rooms (connected and joined, sending nothing).

``--redis cluster`` replaces the single redis-server with a Redis Cluster of
three masters (no replicas), created with ``redis-cli --cluster create``;
nodes get its ``redis+cluster://`` URL, and "redis" CPU is the three
together. The table's mode column then reads ``sharded@cluster``.

Every node, the database and Redis run under ``taskset -c 1`` (one core,
so CPU per delivery is comparable however many nodes there are); the
generator under ``taskset -c 0``. CPU is utime+stime from /proc per process,
read at the generator's MEASURE_START / MEASURE_END marks."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402  (run.py is a script beside this one)
    DATA_KEY,
    HERE,
    REPO,
    SECRET,
    Options,
    Procs,
    cpu_seconds,
    db_commands,
    follow_generator,
    free_port,
    publish_calls,
    pinned,
    start_database,
    start_redis,
    wait_port,
)

SCENARIOS = {
    # name: (clients, room size, msg/s per sender, room type)
    "shared": (120, 10, 2.0, "group"),
    "direct": (200, 2, 0.5, "direct"),
    "busy1": (300, 10, 3.0, "group"),
}
BUSY_NODE_CLIENTS = 100  # busy1: members on node 1, the only ones sending
CLUSTER_MASTERS = 3
CLUSTER_BUS_OFFSET = 10000  # a cluster node also listens on port + 10000


def start_redis_cluster(procs: Procs, opts: Options) -> tuple[list[subprocess.Popen], str]:
    """Three cluster-enabled redis-servers joined into one cluster (all slots
    covered, no replicas), pinned like the single one."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise SystemExit("redis-server and redis-cli are needed (apt-get install redis-server)")
    ports: list[int] = []
    while len(ports) < CLUSTER_MASTERS:
        port = free_port()
        if port + CLUSTER_BUS_OFFSET <= 65535 and port not in ports:
            ports.append(port)
    servers = []
    for i, port in enumerate(ports):
        node_dir = procs.workdir / f"redis{i}"
        node_dir.mkdir()
        servers.append(procs.start(f"redis{i}", pinned(opts.server_core, [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(node_dir), "--loglevel", "warning",
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])))
        wait_port(port, servers[-1])
    subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                    "--cluster-replicas", "0", "--cluster-yes"],
                   check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 30
    while not all("cluster_state:ok" in subprocess.run(
            [cli, "-p", str(p), "cluster", "info"], capture_output=True, text=True,
            timeout=5).stdout for p in ports):
        if time.monotonic() > deadline:
            raise RuntimeError("the Redis cluster did not become ok")
        time.sleep(0.2)
    return servers, "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/"


def seed(opts: Options, env: dict, rooms: int, size: int, kind: str) -> list[dict]:
    done = subprocess.run([opts.python, str(HERE / "seed_ours.py")],
                          input=json.dumps({"rooms": rooms, "size": size, "type": kind}),
                          env=env, cwd=opts.server_root, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def place(scenario: str, clients: list[dict], size: int, urls: list[str]) -> None:
    """Assign each client a node (``url``) and whether it sends."""
    n = len(urls)
    for i, c in enumerate(clients):
        room_index, member = divmod(i, size)
        if scenario == "direct":
            c["url"] = urls[(room_index + member) % n]  # members on different nodes (n > 1)
        elif scenario == "busy1":
            busy = i < BUSY_NODE_CLIENTS
            c["url"] = urls[0] if busy else urls[1 + (room_index % (n - 1))]
            c["send"] = busy
        else:
            c["url"] = urls[room_index % n]


def run_once(scenario: str, nodes: int, mode: str, opts: Options, *, cluster: bool = False
             ) -> dict:
    clients_n, size, rate, kind = SCENARIOS[scenario]
    workdir = Path(tempfile.mkdtemp(prefix=f"scaleout-{scenario}-"))
    procs = Procs(workdir)
    try:
        db, mongo_url = start_database(procs, opts)
        if cluster:
            redis_procs, redis_url = start_redis_cluster(procs, opts)
        else:
            redis, redis_url = start_redis(procs, opts)
            redis_procs = [redis]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
        env.update({
            "SKILLSHARE_ENV": "test", "SKILLSHARE_MONGO_URL": mongo_url,
            "SKILLSHARE_MONGO_DB": "fanout", "SKILLSHARE_SECRET_KEY": SECRET,
            "SKILLSHARE_DATA_KEY": DATA_KEY, "SKILLSHARE_DATA_DIR": str(workdir / "data"),
            "SKILLSHARE_RATE_LIMITS": "off", "SKILLSHARE_LOG_LEVEL": "WARNING",
            "SKILLSHARE_ACCESS_TOKEN_TTL": "3600", "PYTHONPATH": str(opts.server_root),
            "SKILLSHARE_REDIS_URL": redis_url, "SKILLSHARE_FANOUT_MODE": mode,
        })
        procs_nodes, urls = [], []
        for i in range(nodes):
            port = free_port()
            proc = procs.start(f"node{i}", pinned(opts.server_core, [
                opts.python, "-m", "server", "serve"]), env={**env, "SKILLSHARE_PORT": str(port)},
                cwd=opts.server_root)
            wait_port(port, proc)
            procs_nodes.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
        clients = seed(opts, env, clients_n // size, size, kind)
        place(scenario, clients, size, urls)
        config = workdir / "gen.json"
        config.write_text(json.dumps({"clients": clients, "rate": rate, "warmup": opts.warmup,
                                      "duration": opts.duration, "drain": opts.drain}))
        gen = procs.start("gen", pinned(opts.gen_core, ["node", str(HERE / "gen.mjs"), str(config)]),
                          cwd=HERE, stdout=subprocess.PIPE)
        pids = {**{f"node{i + 1}": p.pid for i, p in enumerate(procs_nodes)},
                "database": db.pid}

        redis_calls: list[dict[str, int]] = []
        db_calls: list[dict[str, float]] = []

        def sample() -> dict[str, float]:
            cpu = {k: cpu_seconds(pid) for k, pid in pids.items()}
            cpu["redis"] = sum(cpu_seconds(p.pid) for p in redis_procs)
            redis_calls.append(publish_calls(redis_url))
            db_calls.append(db_commands(urls))
            return cpu

        measured = follow_generator(gen, opts, sample)
        if measured is None:
            log = (workdir / "gen.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{scenario}: the generator gave no result:\n{log}")
        result, window, cpu, _ = measured
        node_cpu = sum(v for k, v in cpu.items() if k.startswith("node"))
        deliveries = max(result["deliveries_in_window"], 1)
        out = {
            "deliveries_per_s": result["deliveries_per_s"], "acked": result["acked"],
            "sent": result["sent"], "failed": result["failed"],
            "missing_acks": result["missing_acks"], "delivered": result["deliveries"],
            "expected": result["expected_deliveries"], "delivery_ms": result["delivery_ms"],
            "cpu_pct": {k: round(100 * v / window, 1) for k, v in cpu.items()},
            "nodes_cpu_ms_per_1000": round(1e6 * node_cpu / deliveries, 1),
            "redis_cpu_ms_per_1000": round(1e6 * cpu["redis"] / deliveries, 1),
            # Redis commands in the window per message acked (publishes it cost)
            "redis_calls_per_message": {
                name: round((redis_calls[-1].get(name, 0) - redis_calls[0].get(name, 0))
                            / max(result["acked"], 1), 2)
                for name in sorted(set(redis_calls[-1]) | set(redis_calls[0]))},
            # database commands the nodes sent in the window per message acked
            "db_commands_per_message": {
                name: round((db_calls[-1].get(name, 0) - db_calls[0].get(name, 0))
                            / max(result["acked"], 1), 2)
                for name in sorted(set(db_calls[-1]) | set(db_calls[0]))
                if db_calls[-1].get(name, 0) > db_calls[0].get(name, 0)},
        }
        if scenario == "busy1":
            busy = cpu["node1"] or 1e-9
            out["idle_pct_of_busy"] = [round(100 * cpu[f"node{i}"] / busy, 1)
                                       for i in range(2, nodes + 1)]
        return out
    finally:
        procs.stop()
        if opts.keep:
            print(f"  (logs kept in {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(report: dict[str, list[dict]]) -> None:
    """Medians per configuration; "vs 1 node": node CPU per delivery against
    the same scenario and mode on one node."""
    print("\n| scenario | nodes | mode | deliveries/s | delivered / expected | failed+missing acks "
          "| node CPU-ms per 1,000 deliveries | vs 1 node | redis CPU-ms / 1,000 | node CPU % "
          "| idle nodes % of busy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base: dict[tuple[str, str], float] = {}
    for key, runs in sorted(report.items(), key=lambda kv: kv[0].split("/")[1]):
        scenario, nodes, mode = key.split("/")
        per = median([r["nodes_cpu_ms_per_1000"] for r in runs])
        if nodes == "1":
            base[(scenario, mode)] = per
        vs = f"{per / base[(scenario, mode)]:.2f}×" if (scenario, mode) in base else ""
        cpu = " / ".join(f"{median([r['cpu_pct'][f'node{n}'] for r in runs]):.0f}"
                         for n in range(1, int(nodes) + 1))
        idle = (" / ".join(f"{median([r['idle_pct_of_busy'][j] for r in runs]):.1f}"
                           for j in range(int(nodes) - 1)) if scenario == "busy1" else "")
        print(f"| {scenario} | {nodes} | {mode} | {median([r['deliveries_per_s'] for r in runs]):,.0f} "
              f"| {median([r['delivered'] for r in runs]):,.0f} / "
              f"{median([r['expected'] for r in runs]):,.0f} "
              f"| {median([r['failed'] + r['missing_acks'] for r in runs]):.0f} "
              f"| {per:.1f} (runs: {', '.join(str(r['nodes_cpu_ms_per_1000']) for r in runs)}) "
              f"| {vs} | {median([r['redis_cpu_ms_per_1000'] for r in runs]):.1f} | {cpu} | {idle} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="shared,direct,busy1")
    parser.add_argument("--nodes", default="1,2,3", help="node counts for shared/direct")
    parser.add_argument("--modes", default="sharded",
                        help="fan-out modes to run (sharded, broadcast or both)")
    parser.add_argument("--redis", choices=("single", "cluster"), default="single",
                        help="one redis-server, or a Redis Cluster of 3 masters")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--drain", type=float, default=5)
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--gen-core", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every run here (after each run)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--from-json", type=Path, action="append",
                        help="print the table of earlier --json reports (repeatable)")
    args = parser.parse_args(argv)
    if args.from_json:
        merged: dict = {}
        for path in args.from_json:
            for key, runs in json.loads(path.read_text()).items():
                merged.setdefault(key, []).extend(runs)
        print_table(merged)
        return 0
    root = REPO
    python = str(root / ".venv/bin/python") if (root / ".venv/bin/python").exists() else sys.executable
    opts = Options(server_root=root, python=python, server_core=args.server_core,
                   db_core=args.server_core, gen_core=args.gen_core, warmup=args.warmup,
                   duration=args.duration, drain=args.drain, no_db=False, keep=args.keep)
    plan = []
    for scenario in args.scenarios.split(","):
        counts = [3] if scenario == "busy1" else [int(n) for n in args.nodes.split(",")]
        for nodes in counts:
            for mode in args.modes.split(","):
                plan.append((scenario, nodes, mode))
    report: dict = {}
    for i in range(args.repeat):  # interleaved: a noisy minute hits every configuration
        for scenario, nodes, mode in plan:
            cluster = args.redis == "cluster"
            key = f"{scenario}/{nodes}/{mode}{'@cluster' if cluster else ''}"
            r = run_once(scenario, nodes, mode, opts, cluster=cluster)
            report.setdefault(key, []).append(r)
            print(f"{key} run {i + 1}: {json.dumps(r)}", flush=True)
            if args.json:
                args.json.write_text(json.dumps(report, indent=2))
    print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
