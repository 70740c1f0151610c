"""Logging with loguru: readable lines in development, one JSON object per
line in production; every line carries the current request id."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import traceback
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


def mask_email(email: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``: enough to correlate,
    never the full address."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


_URL_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/?#]*@", re.IGNORECASE)
_SECRET_QUERY_VALUE = re.compile(
    r"([?&][^=&#]*(?:pass|secret|token|key)[^=&#]*=)[^&#]*", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """A service URL (mongodb, redis, smtp...) fit for a log line: its user
    info and any password-like query value become ``***``."""
    return _SECRET_QUERY_VALUE.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", url))


def _patch(record: Record) -> None:
    record["extra"].setdefault("request_id", request_id_var.get() or "-")


def _json_sink(message: Any) -> None:
    record = message.record
    payload = {
        "ts": record["time"].isoformat(),
        "level": record["level"].name,
        "msg": record["message"],
        "logger": record["name"],
        **{k: v for k, v in record["extra"].items()},
    }
    if record["exception"] is not None:
        payload["exception"] = "".join(traceback.format_exception(*record["exception"]))
    sys.stderr.write(orjson.dumps(payload, default=str).decode() + "\n")


class _InterceptHandler(logging.Handler):
    """Route stdlib logging (aiohttp, engineio, pymongo) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str, *, json_lines: bool, stream: TextIO | None = None) -> None:
    """``stream``: where the human-readable lines go (default stderr)."""
    logger.remove()
    logger.configure(patcher=_patch)
    if json_lines:
        logger.add(_json_sink, level=level, diagnose=False, backtrace=False)
    else:
        logger.add(
            stream or sys.stderr,
            level=level,
            # No local variables in tracebacks (they hold tokens and payloads),
            # no frames above the one that caught the error.
            diagnose=False,
            backtrace=False,
            format=(
                "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
                "<cyan>{extra[request_id]}</cyan> {name}: {message}"
            ),
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
