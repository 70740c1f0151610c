"""Markdown tables from launch_test.py's output.

    .venv/bin/python loadtests/launch_report.py loadtests/out 250 500 1000 2000

Per user count: one row per endpoint and socket event (requests, failures,
req/s, p50/p95/p99 ms) and a summary line: total req/s, failures, the
share of the offered load served, node CPU and memory. The share served is
``1 - (time people spent waiting for responses) / (people x test time)``:
in this closed-loop test each person thinks 1-3 s and then waits for its
requests, so a server with instant answers serves 100% of what they offer.
Socket deliveries and connects are not waits and are left out of it."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

NOT_WAITS = {"deliver message", "connect"}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def seconds(history: Path) -> float:
    stamps = [int(r["Timestamp"]) for r in rows(history)]
    return max(stamps) - min(stamps) if len(stamps) > 1 else 1.0


def report(out: Path, users: int) -> str:
    stats = rows(out / f"launch-{users}_stats.csv")
    total = next(r for r in stats if not r["Type"])
    # locust's own span (since the start, or since --reset-stats when the
    # statistics cover the steady state only)
    duration = (int(total["Request Count"]) / float(total["Requests/s"])
                if float(total["Requests/s"]) else
                seconds(out / f"launch-{users}_stats_history.csv"))
    lines = [f"### {users} people", "",
             "| type | name | requests | failures | req/s | p50 ms | p95 ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|"]
    waited = 0.0
    for r in stats:
        name = r["Name"] if r["Type"] else "**all**"
        lines.append(f"| {r['Type']} | {name} | {r['Request Count']} | {r['Failure Count']} | "
                     f"{float(r['Requests/s']):.1f} | {r['50%']} | {r['95%']} | {r['99%']} |")
        if r["Type"] and r["Name"] not in NOT_WAITS:
            waited += float(r["Average Response Time"]) * int(r["Request Count"]) / 1000
    node = rows(out / f"node-{users}.csv")
    steady = node[len(node) // 5:] or node
    cpu = sum(float(r["cpu_percent"]) for r in steady) / max(len(steady), 1)
    rss = max((float(r["rss_mib"]) for r in node), default=0)
    waits = [float(r["run_queue_wait_percent"]) for r in steady if "run_queue_wait_percent" in r]
    wait = (f"; its threads waited for a CPU {sum(waits) / len(waits):.0f}% of the time "
            "(run queue, /proc schedstat)") if waits else ""
    served = max(0.0, 1 - waited / (users * duration))
    db_path = out / f"db-{users}.csv"
    if db_path.exists():  # the embedded database's own process
        db = rows(db_path)
        db_steady = db[len(db) // 5:] or db
        wait += (f"; the database process: CPU "
                 f"{sum(float(r['cpu_percent']) for r in db_steady) / max(len(db_steady), 1):.0f}%"
                 f" of one core, RSS max {max((float(r['rss_mib']) for r in db), default=0):.0f} MiB")
    lines += ["", f"{float(total['Requests/s']):.0f} req/s over {duration:.0f} s, "
              f"{total['Failure Count']} failures, {100 * served:.0f}% of the offered load "
              f"served; node CPU {cpu:.0f}% of one core (mean, after the first fifth){wait}; "
              f"node RSS max {rss:.0f} MiB.", ""]
    return "\n".join(lines)


def main() -> None:
    out = Path(sys.argv[1])
    for users in sys.argv[2:]:
        print(report(out, int(users)))


if __name__ == "__main__":
    main()
