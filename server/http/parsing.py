"""Request -> pydantic model: the JSON body, the query string, a path id."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..errors import BadRequest, UnsupportedMediaType, ValidationFailed
from ..schemas.parsing import M, parse_model


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    if not request.body_exists:
        if allow_empty:
            return {}
        raise BadRequest("A JSON body is required.")
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    raw = await request.read()
    if not raw.strip() and allow_empty:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not valid JSON.") from None


async def body(request: web.Request, model: type[M], *, allow_empty: bool = False) -> M:
    return parse_model(model, await read_json(request, allow_empty=allow_empty))


def query(request: web.Request, model: type[M]) -> M:
    return parse_model(model, dict(request.query))


def path_id(request: web.Request, name: str = "id") -> str:
    value = request.match_info[name]
    if len(value) > 64:
        raise ValidationFailed.field(name, "Invalid id.")
    return value
