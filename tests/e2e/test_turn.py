"""Calls through a real coturn: ``turnserver`` started from the kit's
``config/turnserver.conf`` (tests/support/services.py ``TurnProcess``) with
the node's TURN secret, and two SDK clients in headless Chromium
(clients/js-sdk/test/browser/call-turn.browser.test.mjs): TURN-only calls
over UDP and TCP with video decoded both ways, credentials expiring
mid-call, wrong and stale credentials failing with ``turn_failed``, and the
fallback order direct -> TURN -> server relay in call:stats and metrics."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.support.services import TurnProcess

from ._node import explain, run_node_tests
from .test_browser import _require_chromium

#: call-turn.browser.test.mjs: UDP, TCP, expiry, wrong, stale, fallback order.
TURN_BROWSER_TESTS = 6


def test_calls_through_coturn_in_chromium(tmp_path: Path) -> None:
    _require_chromium()
    turn = TurnProcess(tmp_path, secret=secrets.token_urlsafe(24))
    turn.start()
    try:
        run = run_node_tests(["test/browser/call-turn.browser.test.mjs"], env={
            "SKILLSHARE_TEST_TURN_PORT": str(turn.port),
            "SKILLSHARE_TEST_TURN_SECRET": turn.secret,
            "SKILLSHARE_TEST_TURN_LIFETIME": str(turn.allocation_lifetime_s),
        })
        log = turn.log()
    finally:
        turn.stop()
    assert run.returncode == 0 and run.failed == 0, explain(run) + "\ncoturn log:\n" + log[-4000:]
    assert run.passed == TURN_BROWSER_TESTS, explain(run)
    # The kit's file parsed cleanly, and the media went through this coturn
    # with refreshed allocations.
    assert "CONFIGURATION ALERT" not in log, log[:6000]
    assert "ALLOCATE processed, success" in log, log[-4000:]
    assert "REFRESH processed, success" in log, log[-4000:]
