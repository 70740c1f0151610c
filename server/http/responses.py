"""JSON replies (orjson; datetimes as UTC ``Z`` strings)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_response(data: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC),
        status=status, content_type="application/json", **kwargs,
    )
