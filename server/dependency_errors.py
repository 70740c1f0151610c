"""Exceptions that mean a dependency (the database, Redis) is out of reach:
both edges answer them with 503 ``unavailable`` instead of ``internal_error``."""

from __future__ import annotations

import pymongo.errors
import redis.exceptions

DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    pymongo.errors.ConnectionFailure,  # includes ServerSelectionTimeoutError, AutoReconnect
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
