"""``/api/v1/skills``: listings, their search, their reviews, and asking
for one (a skill request)."""

from __future__ import annotations

from aiohttp import web

from ..auth.tokens import AccessClaims
from ..http.auth import authenticate
from ..http.client import client_info, client_ip
from ..http.parsing import body, path_id, query
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import LIMITER, LISTINGS, REVIEWS, SETTINGS, SKILL_REQUESTS
from ..marketplace.listings import ListingFilters
from ..marketplace.text import CATEGORIES
from ..schemas.common import PageQuery
from ..schemas.marketplace import (
    CategoryList,
    ListingIn,
    ListingOut,
    ListingPage,
    ListingPatch,
    ListingQuery,
    RequestIn,
    RequestOut,
    ReviewPage,
)
from ..views.marketplace import listing_view, page_view, request_view, review_view

routes = Routes()
TAGS = ["skills"]
PREFIX = "/api/v1/skills"


async def optional_claims(request: web.Request) -> AccessClaims | None:
    if "Authorization" not in request.headers:
        return None
    return await authenticate(request)


@routes.get(f"{PREFIX}/categories", summary="Listing categories", tags=TAGS,
            response=CategoryList, auth=False)
async def list_categories(request: web.Request) -> web.Response:
    """The fixed list of categories a listing can be in."""
    return json_response({"items": [{"id": k, "name": v} for k, v in CATEGORIES.items()]})


@routes.post(PREFIX, summary="Create a listing", tags=TAGS, body=ListingIn, response=ListingOut,
             status=201, errors=[400, 403, 415, 429])
async def create_listing(request: web.Request) -> web.Response:
    """Offer to teach a skill. Tags are normalised (lower case, spaces to
    hyphens, duplicates dropped; at most 10). Limited per user
    (SKILLSHARE_LISTING_CREATE_LIMIT)."""
    claims = await authenticate(request, verified_email_for="skills.create")
    data = await body(request, ListingIn)
    await request.app[LIMITER].hit("listings:create", request.app[SETTINGS].listing_create_limit,
                                   claims.user_id)
    listing = await request.app[LISTINGS].create(claims.user_id, data.model_dump())
    return json_response(listing_view(listing), status=201)


@routes.get(PREFIX, summary="Search and browse listings", tags=TAGS, query=ListingQuery,
            response=ListingPage, auth=False, errors=[400, 401, 429])
async def search_listings(request: web.Request) -> web.Response:
    """Words in `q` match titles, tags and descriptions (title matches weigh
    most), and so do their synonyms and, weighing less, related skills from
    the shipped skill vocabulary ("guitar" finds "six-string"); with
    SKILLSHARE_AI_PROVIDER=gemini, similarity of Gemini embeddings is
    blended in (the local ranking if Gemini fails or is slow). Sorted by relevance when `q` is given, else newest first; filters
    combine. Cursor pagination never repeats or skips a listing that existed
    when paging began: a relevance search is ranked once, on the first page,
    and its cursor (valid at least 30 minutes, for the same caller and query) reads
    that ranking; an expired one is 400 `validation_error` on `cursor`.
    Hidden and deleted listings, and those of banned or deleted users, never
    appear. No auth needed; a bearer token, when sent, must be valid.
    Ranking a new relevance search is limited per IP (SKILLSHARE_SEARCH_LIMIT);
    browsing and following cursors are not."""
    claims = await optional_claims(request)
    params = query(request, ListingQuery)
    if params.q and params.cursor is None and params.sort != "newest":
        await request.app[LIMITER].hit("search", request.app[SETTINGS].search_limit,
                                       client_ip(request) or "-")
    filters = ListingFilters(q=params.q, category=params.category, tag=params.tag,
                             owner=params.owner, level=params.level, mode=params.mode,
                             sort=params.sort)
    page = await request.app[LISTINGS].search(filters, limit=params.limit, cursor=params.cursor,
                                              viewer_id=claims.user_id if claims else None,
                                              client_ip=client_ip(request))
    return json_response(page_view(page, listing_view))


@routes.get(PREFIX + "/{id}", summary="A listing", tags=TAGS, response=ListingOut, auth=False,
            errors=[404])
async def get_listing(request: web.Request) -> web.Response:
    """Hidden listings are visible to their owner and admins only."""
    claims = await optional_claims(request)
    listing = await request.app[LISTINGS].get(
        path_id(request), viewer_id=claims.user_id if claims else None,
        role=claims.role if claims else None,
    )
    return json_response(listing_view(listing))


@routes.patch(PREFIX + "/{id}", summary="Edit my listing", tags=TAGS, body=ListingPatch,
              response=ListingOut, errors=[400, 403, 404, 415])
async def patch_listing(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    patch = await body(request, ListingPatch)
    changes = {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}
    listing = await request.app[LISTINGS].update(path_id(request), claims.user_id, changes)
    return json_response(listing_view(listing))


@routes.delete(PREFIX + "/{id}", summary="Delete a listing", tags=TAGS, status=204,
               errors=[403, 404])
async def delete_listing(request: web.Request) -> web.Response:
    """Soft delete, by the owner or an admin (admin deletions are audited)."""
    claims = await authenticate(request)
    await request.app[LISTINGS].delete(path_id(request), claims.user_id, claims.role,
                                       client_info(request))
    return web.Response(status=204)


@routes.get(PREFIX + "/{id}/reviews", summary="Reviews of a listing", tags=TAGS,
            query=PageQuery, response=ReviewPage, auth=False, errors=[400, 404])
async def listing_reviews(request: web.Request) -> web.Response:
    params = query(request, PageQuery)
    page = await request.app[REVIEWS].page(path_id(request), limit=params.limit,
                                           cursor=params.cursor)
    return json_response(page_view(page, review_view))


@routes.post(PREFIX + "/{id}/requests", summary="Ask to learn from a listing", tags=TAGS,
             body=RequestIn, response=RequestOut, status=201,
             errors=[400, 403, 404, 409, 415, 429])
async def create_request(request: web.Request) -> web.Response:
    """The caller (learner) asks the listing's owner (teacher); status
    `pending`. One open (pending or accepted) request per learner and
    listing (409 `request_exists`); your own listing is 403. Each request
    mails the teacher, so a learner may send at most
    SKILLSHARE_REQUEST_CREATE_LIMIT of them (default 30/hour; 429)."""
    claims = await authenticate(request, verified_email_for="requests.create")
    data = await body(request, RequestIn, allow_empty=True)
    await request.app[LIMITER].hit("requests:create", request.app[SETTINGS].request_create_limit,
                                   claims.user_id)
    created = await request.app[SKILL_REQUESTS].create(path_id(request), claims.user_id,
                                                       data.message)
    return json_response(request_view(created), status=201)
