"""POST /api/v1/client-errors: the web app's error boundary reports
uncaught errors and unhandled rejections here (docs/webapp.md)."""

from __future__ import annotations

from typing import Any

from loguru import logger

from server import client_errors
from tests.support.api import error_of, register

REPORT = {"kind": "error", "message": "TypeError: x is undefined",
          "stack": "at render (app.js:10:5)", "url": "http://localhost/#/chat"}


async def test_a_report_is_logged_with_the_request_id_and_forwarded_to_sentry(client, monkeypatch):
    captured: list[tuple[str, dict[str, Any]]] = []

    def capture_message(message: str, *, level: str, scope: Any = None) -> None:
        captured.append((message, dict(scope._tags) if scope is not None else {}))

    monkeypatch.setattr(client_errors.sentry_sdk, "capture_message", capture_message)
    monkeypatch.setattr(client_errors.sentry_sdk, "is_initialized", lambda: True)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        account = await register(client)
        resp = await client.post("/api/v1/client-errors", json=REPORT, headers={
            "Authorization": f"Bearer {account['access_token']}", "X-Request-Id": "req-abc-123"})
    finally:
        logger.remove(sink)
    assert resp.status == 204
    request_id = resp.headers["X-Request-Id"]
    logged = "\n".join(lines)
    assert "TypeError: x is undefined" in logged and request_id in logged
    assert account["user"]["id"] in logged
    assert captured and captured[0][0].startswith("web app error: TypeError: x is undefined")
    assert captured[0][1]["request_id"] == request_id


async def test_reports_need_no_sign_in_and_are_validated(client):
    assert (await client.post("/api/v1/client-errors", json=REPORT)).status == 204
    resp = await client.post("/api/v1/client-errors", json={**REPORT, "message": "x" * 5000})
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "validation_error"
    resp = await client.post("/api/v1/client-errors", json={**REPORT, "kind": "other"})
    assert resp.status == 400


async def test_reports_are_rate_limited_per_ip(make_client):
    client = await make_client(client_error_limit="3/minute")
    for _ in range(3):
        assert (await client.post("/api/v1/client-errors", json=REPORT)).status == 204
    resp = await client.post("/api/v1/client-errors", json=REPORT)
    assert resp.status == 429
    assert resp.headers["Retry-After"]
