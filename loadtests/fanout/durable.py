"""Group commit end to end: durable chat messages per second of one node,
sends to a room stored one insert per message (``SKILLSHARE_MESSAGE_BATCH_MAX=1``,
the path before group commit) against batched (the default, 64), in the
same run, with the fan-out runner's machinery (run.py): a fresh database
process per run (SecantusDB, ``retryWrites=false`` as the node's client of
the embedded default uses it), the node and the database pinned to one core,
the official socket.io-client load generator (gen.mjs, open loop) on the
other. Results go to docs/benchmarks.md ("Group commit").

    python loadtests/fanout/durable.py                                # defaults below
    python loadtests/fanout/durable.py --loads open:300,closed:8 --batch-max 1,64 --repeat 3

Loads: ``open:R`` — R msgs/s in total on a fixed schedule whatever the
acks do (latency at a rate both cases hold); ``closed:K`` — every sender
keeps K sends outstanding, the next one sent as an ack arrives: the
capacity at a fixed concurrency (with the same sends in flight, ack latency
follows from throughput). Open loop far above capacity measures overload
collapse (the node spends its core reading sends it then refuses), not
capacity: use closed loop for that.

Durable msgs/s = ``ok`` acks the generator received inside the measured
window, per second (a send is acked only once its batch is stored), whatever
their send time. Ack p50/p99 over the sends made in the window that were
acked. Cases alternate run by run; each number is the median of the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import REPO, Options, Scenario, run_once  # noqa: E402


def ahead_of_other_jobs(nice: int) -> None:
    """Niceness only orders processes within one scheduling autogroup (one
    per session when ``kernel.sched_autogroup_enabled`` is 1): a session of
    our own, whose autogroup gets ``nice``; every process started from here
    is in it. Needs root for a negative value."""
    autogroup = Path("/proc/self/autogroup")
    if not autogroup.exists():
        return
    if os.getsid(0) != os.getpid():
        try:
            os.setsid()
        except PermissionError:  # already a process group leader: run us via setsid
            raise SystemExit("--nice: start this runner with `setsid`") from None
    autogroup.write_text(str(nice))
    print(f"autogroup: {autogroup.read_text().strip()}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members", type=int, default=4, help="every member sends")
    parser.add_argument("--loads", default="open:300,closed:8",
                        help="comma-separated open:<msgs/s in total> / closed:<in flight per sender>")
    parser.add_argument("--batch-max", default="1,64", help="SKILLSHARE_MESSAGE_BATCH_MAX values")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--drain", type=float, default=5)
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--gen-core", type=int, default=0)
    parser.add_argument("--server-root", type=Path, default=REPO)
    parser.add_argument("--ours-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra setting for the node (both cases)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of node, database and generator (e.g. -10 on a machine "
                             "shared with other jobs, so that each case gets its core); with the "
                             "kernel's autogroup scheduling on, this runner starts a session of "
                             "its own and sets that autogroup's niceness")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.nice:
        ahead_of_other_jobs(args.nice)
    root = args.server_root.resolve()
    python = str(root / ".venv/bin/python") if (root / ".venv/bin/python").exists() else sys.executable
    extra = dict(kv.split("=", 1) for kv in args.ours_env)
    clients = args.rooms * args.members
    loads = [(kind, float(v)) for kind, v in (x.split(":") for x in args.loads.split(","))]
    batches = [int(b) for b in args.batch_max.split(",")]
    cases: dict[tuple[str, int], list[dict]] = {}
    for i in range(args.repeat):
        for kind, value in loads:
            label = f"{kind}:{value:g}"
            rate = value / clients if kind == "open" else 1.0
            for batch in (batches if i % 2 == 0 else batches[::-1]):
                opts = Options(server_root=root, python=python, server_core=args.server_core,
                               db_core=args.server_core, gen_core=args.gen_core, warmup=args.warmup,
                               duration=args.duration, drain=args.drain, no_db=False, keep=False,
                               ours_env={**extra, "SKILLSHARE_MESSAGE_BATCH_MAX": str(batch)},
                               mongo_query="?retryWrites=false",
                               inflight=int(value) if kind == "closed" else 0, nice=args.nice)
                sc = Scenario(f"durable-{kind}-{value:g}", clients, args.members, rate)
                r = run_once("ours", sc, opts)
                r["durable_per_s"] = r.get("durable_per_s", 0.0)
                cases.setdefault((label, batch), []).append(r)
                print(f"  run {i + 1} {label} batch {batch}: durable {r['durable_per_s']:,.0f}/s, "
                      f"acked {r['acked']}/{r['sent']} failed {r['failed']} missing {r['missing_acks']}, "
                      f"ack p50/p99 {r['ack_ms']['p50']}/{r['ack_ms']['p99']} ms, "
                      f"server+db CPU {r['cpu_pct']['server'] + r['cpu_pct']['database']:.0f}%, "
                      f"gen {r['cpu_pct']['generator']:.0f}%, send lag p99 {r['send_lag_ms']['p99']} ms",
                      file=sys.stderr, flush=True)
                if args.json:
                    args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                     "cases": [{"load": k[0], "batch_max": k[1], "runs": v}
                                                               for k, v in cases.items()]}, indent=2))

    def med(runs: list[dict], read) -> float:  # noqa: ANN001
        return statistics.median(float("inf") if read(r) is None else read(r) for r in runs)

    print(f"\n{clients} senders in {args.rooms} rooms of {args.members}, {args.duration:g} s measured, "
          f"median of {args.repeat}\n")
    print("| load | batch max | durable msgs/s (runs) | acked / sent in window | failed + missing "
          "| ack p50 / p99 ms | node+DB CPU-ms per msg | node+DB CPU % | generator CPU % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (label, batch), runs in cases.items():
        per_msg = [1000 * (r["cpu_pct"]["server"] + r["cpu_pct"]["database"]) / 100 / max(r["durable_per_s"], 1e-9)
                   for r in runs]
        each = ", ".join(f"{r['durable_per_s']:,.0f}" for r in runs)
        print(f"| {label} | {batch} | **{med(runs, lambda r: r['durable_per_s']):,.0f}** ({each}) "
              f"| {med(runs, lambda r: r['acked']):,.0f} / {med(runs, lambda r: r['sent']):,.0f} "
              f"| {med(runs, lambda r: r['failed'] + r['missing_acks']):,.0f} "
              f"| {med(runs, lambda r: r['ack_ms']['p50']):,.1f} / {med(runs, lambda r: r['ack_ms']['p99']):,.1f} "
              f"| {statistics.median(per_msg):.2f} "
              f"| {med(runs, lambda r: r['cpu_pct']['server'] + r['cpu_pct']['database']):.0f} "
              f"| {med(runs, lambda r: r['cpu_pct']['generator']):.0f} |")
    for kind, value in loads:
        label = f"{kind}:{value:g}"
        got = {b: statistics.median(r["durable_per_s"] for r in cases[(label, b)]) for b in batches}
        if 1 in got and len(got) > 1:
            for b, v in got.items():
                if b != 1:
                    print(f"\n{label}: batch {b} / batch 1 durable msgs/s = {v / max(got[1], 1e-9):.2f}×")
    if args.json:
        print(f"\n(written to {args.json}; scenario {asdict(sc)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
