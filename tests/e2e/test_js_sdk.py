"""The JS SDK's own test suite (``clients/js-sdk/test/*.test.mjs``): unit
tests, the committed-bundle check, and auth/realtime against a real server
process the suite starts."""

from __future__ import annotations

from ._node import SDK, explain, run_node_tests


def test_js_sdk_suite_passes() -> None:
    files = sorted(str(p.relative_to(SDK)) for p in (SDK / "test").glob("*.test.mjs"))
    assert files, "no SDK test files found"
    run = run_node_tests(files)
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed > 0, explain(run)
