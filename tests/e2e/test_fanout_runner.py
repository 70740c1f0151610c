"""The side-by-side fan-out runner (loadtests/fanout/run.py) works end to end:
a smoke run with tiny numbers starts our node and the Node.js reference,
each on a fresh database process, drives both with the one load generator
and reports deliveries for both. Numbers are not asserted beyond "it
worked": speed is for the benchmark (docs/benchmarks.md), not the suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "loadtests" / "fanout" / "run.py"


def test_quick_run_drives_both_servers(tmp_path: Path) -> None:
    assert (ROOT / "loadtests/fanout/node_modules/socket.io").is_dir(), (
        "run scripts/test.sh (npm ci in loadtests/fanout) first")
    out = tmp_path / "quick.json"
    run = subprocess.run(
        [sys.executable, str(RUNNER), "--quick", "--clients", "20", "--room-size", "5",
         "--rate", "1", "--duration", "5", "--warmup", "1", "--drain", "5", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    median = report["scenarios"]["quick"]["median"]
    assert set(median) == {"ref", "ours"}
    for kind, result in median.items():
        assert result["clients"] == 20 and result["rooms"] == 4, (kind, result)
        assert result["sent"] > 0, (kind, result)
        assert result["failed"] == 0 and result["missing_acks"] == 0, (kind, result)
        assert result["acked"] == result["sent"], (kind, result)
        # every other member of the room got each message (no echo counted)
        assert result["deliveries"] == result["expected_deliveries"] == 4 * result["acked"], (kind, result)
        assert result["cpu_ms_per_1000"]["server"] > 0, (kind, result)
    assert "| deliveries/s |" in run.stdout
