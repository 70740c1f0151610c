"""``/api/v1/users/{id}/block`` and ``/api/v1/users/me/blocks``: blocking
people (see docs/realtime.md, "Consent")."""

from __future__ import annotations

from aiohttp import web

from ..http.auth import authenticate
from ..http.client import client_info
from ..http.parsing import path_id, query
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import CONSENT
from ..schemas.common import PageQuery
from ..schemas.consent import BlockOut, BlockPage
from ..storage.ids import decode_cursor, encode_cursor
from ..views.consent import block_view

routes = Routes()
TAGS = ["users"]
PREFIX = "/api/v1/users"


@routes.get(f"{PREFIX}/me/blocks", summary="People I blocked", tags=TAGS, query=PageQuery,
            response=BlockPage, errors=[400, 401])
async def list_blocks(request: web.Request) -> web.Response:
    """Newest first."""
    claims = await authenticate(request)
    page = query(request, PageQuery)
    cursor = decode_cursor(page.cursor)
    before = str(cursor.get("before")) if cursor else None
    items, last = await request.app[CONSENT].list_blocks(
        claims.user_id, before=before, limit=page.limit
    )
    return json_response({"items": [block_view(entry) for entry in items],
                          "next_cursor": encode_cursor({"before": last}) if last else None})


@routes.post(PREFIX + "/{id}/block", summary="Block a user", tags=TAGS, response=BlockOut,
             errors=[400, 401, 404, 409])
async def block(request: web.Request) -> web.Response:
    """Idempotent: blocking again answers the same block (its first
    ``created_at``), so the status is always 200. The blocked person can no
    longer message me in our direct room (nor I them), call me, send me skill
    requests, open a direct room with me or add me to a group, and neither of
    us sees the other's presence. At most SKILLSHARE_MAX_BLOCKS_PER_USER
    people (409 ``block_limit_reached``). Holds on every node at once."""
    claims = await authenticate(request)
    entry, _ = await request.app[CONSENT].block(
        claims.user_id, path_id(request), client_info(request)
    )
    return json_response(block_view(entry))


@routes.delete(PREFIX + "/{id}/block", summary="Unblock a user", tags=TAGS, status=204,
               errors=[401])
async def unblock(request: web.Request) -> web.Response:
    """Idempotent: 204 whether or not that user was blocked."""
    claims = await authenticate(request)
    await request.app[CONSENT].unblock(claims.user_id, path_id(request), client_info(request))
    return web.Response(status=204)
