"""``/api/v1/requests``: my skill requests, their transitions, reviews."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..http.auth import authenticate
from ..http.parsing import body, path_id, query
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import REVIEWS, SKILL_REQUESTS
from ..schemas.marketplace import RequestOut, RequestPage, RequestQuery, ReviewIn, ReviewOut
from ..views.marketplace import page_view, request_view, review_view

routes = Routes()
TAGS = ["requests"]
PREFIX = "/api/v1/requests"


@routes.get(PREFIX, summary="My skill requests", tags=TAGS, query=RequestQuery,
            response=RequestPage, errors=[400])
async def list_requests(request: web.Request) -> web.Response:
    """`role=incoming`: requests for my listings; `outgoing`: mine to others;
    newest first."""
    claims = await authenticate(request)
    params = query(request, RequestQuery)
    page = await request.app[SKILL_REQUESTS].page(
        claims.user_id, role=params.role, status=params.status, limit=params.limit,
        cursor=params.cursor,
    )
    return json_response(page_view(page, request_view))


@routes.get(PREFIX + "/{id}", summary="One of my skill requests", tags=TAGS,
            response=RequestOut, errors=[404])
async def get_request(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    found = await request.app[SKILL_REQUESTS].get(path_id(request), claims.user_id)
    return json_response(request_view(found))


def _transition(action: str, summary: str, doc: str
                ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        claims = await authenticate(request)
        updated = await request.app[SKILL_REQUESTS].transition(
            action, path_id(request), claims.user_id
        )
        return json_response(request_view(updated))

    handler.__name__ = f"{action}_request"
    handler.__doc__ = doc
    routes.post(f"{PREFIX}/{{id}}/{action}", summary=summary, tags=TAGS, response=RequestOut,
                errors=[403, 404, 409, 503])(handler)
    return handler


accept_request = _transition(
    "accept", "Accept a request (teacher)",
    "pending -> accepted. Opens, or reuses, the direct chat room between teacher and "
    "learner; its id is `room_id`. Both get a `request` Socket.IO event and a mail. "
    "Any other status: 409 `invalid_transition`.",
)
decline_request = _transition(
    "decline", "Decline a request (teacher)", "pending -> declined; else 409.")
cancel_request = _transition(
    "cancel", "Cancel my request (learner)", "pending -> cancelled; else 409.")
complete_request = _transition(
    "complete", "Mark a request completed (either party)", "accepted -> completed; else 409.")


@routes.post(PREFIX + "/{id}/review", summary="Review a completed request (learner)",
             tags=TAGS, body=ReviewIn, response=ReviewOut, status=201,
             errors=[400, 403, 404, 409, 415])
async def review_request(request: web.Request) -> web.Response:
    """Once per request, after `complete`; rating 1-5 and an optional comment.
    The listing's average and count update at once."""
    claims = await authenticate(request)
    data = await body(request, ReviewIn)
    review = await request.app[REVIEWS].create(path_id(request), claims.user_id,
                                               rating=data.rating, comment=data.comment)
    return json_response(review_view(review), status=201)
