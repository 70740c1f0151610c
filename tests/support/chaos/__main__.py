"""Run the chaos soak by hand: ``python -m tests.support.chaos --minutes 10``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from .soak import SoakConfig, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--send-interval", type=float, default=1.0,
                        help="seconds between one user's messages")
    parser.add_argument("--burst", type=int, default=3,
                        help="sends one user has in flight at once")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--overlap", action="store_true",
                        help="also kill a node while the database is paused")
    parser.add_argument("--workdir", type=Path, help="keep node logs here")
    args = parser.parse_args()
    config = SoakConfig(duration_s=args.minutes * 60, users=args.users,
                        send_interval_s=args.send_interval, burst=args.burst,
                        seed=args.seed, overlap=args.overlap)
    with tempfile.TemporaryDirectory(prefix="skillshare-chaos-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run_soak(config, workdir))
    print("\n".join(report.lines()))
    problems = report.problems()
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
