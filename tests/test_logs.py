"""Development logs: a logged traceback shows where, never the values of
local variables (tokens, passwords, payloads)."""

from __future__ import annotations

import io
import os

from loguru import logger

from server.logs import configure_logging


def _handler_that_fails(token: str) -> None:
    payload = {"token": token}
    raise ValueError(f"bad frame of {len(payload)} fields")


def test_logged_tracebacks_carry_no_local_variables():
    stream = io.StringIO()
    token = "-".join(["SECRET", "LOCAL", "TOKEN"])  # not in any source line a traceback shows
    configure_logging("INFO", json_lines=False, stream=stream)
    try:
        try:
            _handler_that_fails(token)
        except ValueError:
            logger.exception("handler failed")
    finally:
        configure_logging(os.environ.get("SKILLSHARE_TEST_LOG_LEVEL", "WARNING"), json_lines=False)
    text = stream.getvalue()
    assert "handler failed" in text and "ValueError: bad frame of 1 fields" in text
    assert "_handler_that_fails" in text
    assert "SECRET-LOCAL-TOKEN" not in text
