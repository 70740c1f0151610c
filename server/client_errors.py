"""Errors the web app could not handle, reported by its error boundary:
one warning log line (with the request id, as every line), a Prometheus
counter, and a Sentry event when Sentry is configured."""

from __future__ import annotations

import sentry_sdk
from loguru import logger
from prometheus_client import Counter

from .schemas.client_errors import ClientErrorIn

CLIENT_ERRORS = Counter("skillshare_client_errors_total",
                        "Errors the web app reported (uncaught errors, unhandled rejections)",
                        ["kind"])


def report_client_error(report: ClientErrorIn, *, user_id: str | None, request_id: str | None) -> None:
    CLIENT_ERRORS.labels(report.kind).inc()
    logger.warning("web app {}: {} (user {}, page {}, request {})\n{}", report.kind, report.message,
                   user_id or "-", report.url or "-", request_id or "-", report.stack)
    if not sentry_sdk.is_initialized():
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("source", "web app")
        scope.set_tag("kind", report.kind)
        scope.set_tag("request_id", request_id or "-")
        if user_id:
            scope.set_user({"id": user_id})
        scope.set_extra("stack", report.stack)
        scope.set_extra("url", report.url)
        sentry_sdk.capture_message(f"web app error: {report.message}", level="error", scope=scope)
