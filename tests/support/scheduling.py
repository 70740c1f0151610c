"""How pytest-xdist shares the suite between its workers (``-n 2 --dist
loadfile``, as scripts/test.sh runs it; docs/testing.md).

xdist's ``loadfile``, with three changes:

- The Chromium tests — every file in ``CHROMIUM_FILES`` — are one unit: two
  browsers, a node and video use most of the 2 cores, and two such tests at
  once miss Playwright's 30 s waits. One worker runs them one after another.
- Units are handed out: the other ``tests/e2e`` files first (node clusters,
  the chaos soak, the JS SDK suite), then the rest, then the Chromium unit
  last; within each, files with more tests first. The long units start
  early, and the Chromium tests run while the other worker finishes its
  last small files and then idles: beside the e2e units (two runs of the
  merged main out of three) the web app's presence and search steps missed
  their waits and assertions, which they never did alone.
- A ``-m slow`` run is one unit: the soak/load runs one after another on one
  worker, each measured alone, as before.

Files stay whole, so tests sharing a module-scoped fixture (a node cluster,
a Redis Cluster, the OpenID provider) set it up once. The groups come from
node ids alone: the controller that schedules never imports the tests
(``xdist_group`` marks would do this, but xdist 3.8 cannot add them to node
ids under pytest 9)."""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

CHROMIUM_FILES = frozenset({
    "tests/e2e/test_browser.py",
    "tests/e2e/test_turn.py",  # coturn between two Chromium clients (+ a 15 s protocol test)
    "tests/e2e/test_call_matrix.py",
})
CHROMIUM_UNIT = "chromium"
SLOW_UNIT = "slow"


def selects_slow(markexpr: str) -> bool:
    """True for ``-m slow`` and the like (not for the default ``not slow``)."""
    return "slow" in markexpr and "not slow" not in markexpr


class SuiteScheduling(LoadScopeScheduling):
    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        self._everything_one_unit = selects_slow(config.option.markexpr or "")
        self._ordered = False

    def _split_scope(self, nodeid: str) -> str:
        if self._everything_one_unit:
            return SLOW_UNIT
        path = nodeid.split("::", 1)[0]
        return CHROMIUM_UNIT if path in CHROMIUM_FILES else path

    @staticmethod
    def _rank(unit: str) -> int:
        if unit == CHROMIUM_UNIT:
            return 2
        return 0 if unit.startswith("tests/e2e/") else 1

    def _assign_work_unit(self, node: Any) -> None:
        if not self._ordered:
            # The queue is filled (larger files first) before the first
            # unit is handed out; a stable sort keeps that within each rank.
            self._ordered = True
            units = sorted(self.workqueue.items(), key=lambda unit: self._rank(unit[0]))
            self.workqueue.clear()
            self.workqueue.update(units)
        super()._assign_work_unit(node)
