"""``/api/v1/rooms``: the caller's rooms, creating rooms, history."""

from __future__ import annotations

from aiohttp import web

from ..errors import ValidationFailed
from ..http.auth import authenticate
from ..http.parsing import body, path_id, query
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import CHAT, LIMITER, ROOMS, SETTINGS
from ..schemas.common import PageQuery
from ..schemas.consent import AddMembers
from ..schemas.rooms import MAX_SEQ, CreateRoom, HistoryPage, HistoryQuery, RoomOut, RoomPage
from ..storage.ids import decode_cursor, encode_cursor
from ..views.rooms import message_view, room_summary_view, room_view

routes = Routes()
TAGS = ["rooms"]
PREFIX = "/api/v1/rooms"


@routes.get(PREFIX, summary="My rooms", tags=TAGS, query=PageQuery, response=RoomPage,
            errors=[400, 401])
async def list_rooms(request: web.Request) -> web.Response:
    """Newest rooms first (by creation), each with its last message, last
    seq, my read marker and my unread count."""
    claims = await authenticate(request)
    page = query(request, PageQuery)
    cursor = decode_cursor(page.cursor)
    before = str(cursor.get("before")) if cursor else None
    items, last_id = await request.app[ROOMS].list_for_user(
        claims.user_id, before_id=before, limit=page.limit
    )
    next_cursor = encode_cursor({"before": last_id}) if last_id else None
    return json_response({"items": [room_summary_view(s) for s in items],
                          "next_cursor": next_cursor})


@routes.post(PREFIX, summary="Open a direct room or create a group room", tags=TAGS,
             body=CreateRoom, response=RoomOut, status=201, also=[200],
             errors=[400, 401, 403, 404, 429])
async def create_room(request: web.Request) -> web.Response:
    """A second direct room between the same two users returns the
    existing one with 200. Creating rooms is limited per user
    (SKILLSHARE_ROOM_CREATE_LIMIT), so nobody can fill others' room lists.
    403 ``blocked`` when either of the two blocked the other. A group's
    members must each have a relation with the creator (403
    ``not_a_contact``, ``details.user_ids``; see ``POST /rooms/{id}/members``)."""
    claims = await authenticate(request, verified_email_for="rooms.create")
    spec = await body(request, CreateRoom)
    limiter, limit = request.app[LIMITER], request.app[SETTINGS].room_create_limit
    rooms = request.app[ROOMS]
    if spec.type == "direct":
        assert spec.user_id is not None
        # Reopening an existing direct room is free; only new rooms count.
        room, created = await rooms.open_direct(
            claims.user_id, spec.user_id,
            before_create=lambda: limiter.hit("rooms:create", limit, claims.user_id),
        )
        return json_response(room_view(room), status=201 if created else 200)
    assert spec.name is not None
    await limiter.hit("rooms:create", limit, claims.user_id)
    room = await rooms.create_group(claims.user_id, name=spec.name, member_ids=spec.member_ids or [])
    return json_response(room_view(room), status=201)


@routes.post(PREFIX + "/{id}/leave", summary="Leave a group room", tags=TAGS, status=204,
             errors=[400, 401, 403, 404])
async def leave_room(request: web.Request) -> web.Response:
    """The caller stops being a member: no more messages, no history, the
    room leaves their list. The others get ``room:member_left``
    ``{room_id, user_id}`` and keep the whole history. Direct rooms cannot
    be left (400 ``bad_request``; block the person instead)."""
    claims = await authenticate(request)
    await request.app[ROOMS].leave(path_id(request), claims.user_id)
    return web.Response(status=204)


@routes.post(PREFIX + "/{id}/members", summary="Add people to a group room", tags=TAGS,
             body=AddMembers, response=RoomOut, errors=[400, 401, 403, 404])
async def add_members(request: web.Request) -> web.Response:
    """Members only. Each person added must have a relation with the caller
    (a room they share, a direct room they opened or wrote in, or a skill
    request between them): otherwise 403 ``not_a_contact`` with
    ``details.user_ids``; 403 ``blocked`` when either blocked the other.
    Every member gets ``room:member_added`` ``{room_id, user_ids, by}``. New
    members can read the whole history."""
    claims = await authenticate(request)
    spec = await body(request, AddMembers)
    room = await request.app[ROOMS].add_members(path_id(request), claims.user_id, spec.user_ids)
    return json_response(room_view(room))


@routes.get(PREFIX + "/{id}/messages", summary="Message history", tags=TAGS, query=HistoryQuery,
            response=HistoryPage, errors=[400, 401, 403, 404])
async def history(request: web.Request) -> web.Response:
    """Members only. ``after_seq``: the messages after it, oldest first;
    ``before_seq``: the ``limit`` messages before it; neither: the latest
    ``limit``. Items are always in seq order. ``next_cursor`` continues in
    the same direction (older pages, or newer ones with ``after_seq``)."""
    claims = await authenticate(request)
    q = query(request, HistoryQuery)
    before_seq, after_seq = _history_position(q)
    items, has_more, last_seq = await request.app[CHAT].history(
        claims.user_id, path_id(request), before_seq=before_seq, after_seq=after_seq,
        limit=q.limit,
    )
    next_cursor = None
    if has_more and items:
        if after_seq is not None:
            position = {"a": items[-1]["seq"], "b": before_seq}
        else:
            position = {"b": items[0]["seq"]}
        next_cursor = encode_cursor(position)
    return json_response({"items": [message_view(m) for m in items], "has_more": has_more,
                          "next_cursor": next_cursor,
                          "last_seq": last_seq})


def _history_position(q: HistoryQuery) -> tuple[int | None, int | None]:
    """``(before_seq, after_seq)`` from the query, or from its cursor."""
    position = decode_cursor(q.cursor)
    if position is None:
        return q.before_seq, q.after_seq
    before, after = position.get("b"), position.get("a")
    for value, low in ((before, 1), (after, 0)):
        if value is not None and (type(value) is not int or not low <= value <= MAX_SEQ):
            raise ValidationFailed.field("cursor", "Invalid cursor.")
    if before is None and after is None:
        raise ValidationFailed.field("cursor", "Invalid cursor.")
    return before, after
