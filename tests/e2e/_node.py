"""Running the JS SDK's ``node --test`` suites from pytest."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "clients" / "js-sdk"
NODE_TIMEOUT_S = 280


@dataclass
class NodeRun:
    returncode: int
    passed: int
    failed: int
    failures: list[str]
    output: str


def ensure_node_modules() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are required for the JS SDK tests (Node 20+)")
    if not (SDK / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SDK, check=True)


def run_node_tests(files: list[str], env: dict[str, str] | None = None, *,
                   timeout: float = NODE_TIMEOUT_S) -> NodeRun:
    """``node --test`` with the TAP reporter; the server under test is
    started by the suites themselves from this venv's Python. ``env`` adds
    variables (e.g. where a service the test started listens)."""
    ensure_node_modules()
    env = {**os.environ, **(env or {}), "SKILLSHARE_PYTHON": sys.executable}
    proc = subprocess.run(
        ["node", "--test", "--test-concurrency=1", "--test-reporter=tap", *files],
        cwd=SDK, env=env, capture_output=True, text=True, timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    passed = _count(output, "pass")
    failed = _count(output, "fail")
    failures = re.findall(r"^\s*not ok \d+ - (.+)$", output, flags=re.MULTILINE)
    return NodeRun(proc.returncode, passed, failed, failures, output)


def _count(output: str, name: str) -> int:
    match = re.search(rf"^# {name} (\d+)$", output, flags=re.MULTILINE)
    if match is None:
        raise AssertionError(f"no '# {name}' line in node's output:\n{output[-4000:]}")
    return int(match.group(1))


def explain(run: NodeRun) -> str:
    return (f"node --test: {run.passed} passed, {run.failed} failed "
            f"({', '.join(run.failures) or 'no named failures'})\n{run.output[-6000:]}")
