"""``to_api_error``: what a client is told about an exception, for both edges
(the REST error middleware and the Socket.IO dispatcher).

An ``ApiError`` is meant for the client and passes through; a dependency out
of reach (``DEPENDENCY_ERRORS``) is 503 ``unavailable``, logged as an error;
anything else is a bug: logged with its traceback, sent to Sentry with the
edge's tags (REST: ``request_id``, ``route``; Socket.IO: ``event``, ``sid``)
and answered with 500 ``internal_error``."""

from __future__ import annotations

from collections.abc import Mapping

import sentry_sdk
from loguru import logger

from .dependency_errors import DEPENDENCY_ERRORS
from .errors import ApiError, InternalError, Unavailable


def to_api_error(exc: Exception, *, where: str, tags: Mapping[str, str]) -> ApiError:
    """``where`` names what failed in the log line (``GET /api/v1/me``,
    ``socket <sid> event 'message:send'``)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DEPENDENCY_ERRORS):
        logger.error("dependency unavailable during {}: {!r}", where, exc)
        return Unavailable()
    logger.opt(exception=exc).error("unhandled error in {}", where)
    with sentry_sdk.new_scope() as scope:
        for name, value in tags.items():
            scope.set_tag(name, value)
        scope.capture_exception(exc)
    return InternalError()
