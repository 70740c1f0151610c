"""``/api/v1/admin``: moderation and the audit log. Admins only."""

from __future__ import annotations

from aiohttp import web

from ..http.auth import require_admin
from ..http.client import client_info
from ..http.parsing import body, path_id, query
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import MODERATION
from ..schemas.marketplace import (
    AdminUserList,
    AdminUserOut,
    AuditPage,
    AuditQuery,
    ListingOut,
    ReasonIn,
    RoleIn,
    UserByEmailQuery,
)
from ..views.marketplace import admin_user_view, audit_entry_view, listing_view, page_view

routes = Routes()
TAGS = ["admin"]
PREFIX = "/api/v1/admin"
ADMIN_ERRORS = [400, 403, 404, 409, 415]


@routes.post(PREFIX + "/skills/{id}/hide", summary="Hide a listing", tags=TAGS, body=ReasonIn,
             response=ListingOut, errors=ADMIN_ERRORS)
async def hide_listing(request: web.Request) -> web.Response:
    """The listing disappears from every read except for its owner and admins."""
    claims = await require_admin(request)
    data = await body(request, ReasonIn, allow_empty=True)
    listing = await request.app[MODERATION].set_listing_hidden(
        path_id(request), True, actor_id=claims.user_id, reason=data.reason,
        client=client_info(request),
    )
    return json_response(listing_view(listing))


@routes.post(PREFIX + "/skills/{id}/unhide", summary="Show a hidden listing again", tags=TAGS,
             body=ReasonIn, response=ListingOut, errors=ADMIN_ERRORS)
async def unhide_listing(request: web.Request) -> web.Response:
    claims = await require_admin(request)
    data = await body(request, ReasonIn, allow_empty=True)
    listing = await request.app[MODERATION].set_listing_hidden(
        path_id(request), False, actor_id=claims.user_id, reason=data.reason,
        client=client_info(request),
    )
    return json_response(listing_view(listing))


@routes.post(PREFIX + "/users/{id}/ban", summary="Ban a user", tags=TAGS, body=ReasonIn,
             response=AdminUserOut, errors=ADMIN_ERRORS)
async def ban_user(request: web.Request) -> web.Response:
    """Every session of the user is revoked at once (tokens refused, sockets
    dropped on every node); their listings and profile disappear."""
    claims = await require_admin(request)
    data = await body(request, ReasonIn, allow_empty=True)
    user = await request.app[MODERATION].ban(
        path_id(request), actor_id=claims.user_id, reason=data.reason,
        client=client_info(request),
    )
    return json_response(admin_user_view(user))


@routes.post(PREFIX + "/users/{id}/unban", summary="Lift a ban", tags=TAGS, body=ReasonIn,
             response=AdminUserOut, errors=ADMIN_ERRORS)
async def unban_user(request: web.Request) -> web.Response:
    claims = await require_admin(request)
    data = await body(request, ReasonIn, allow_empty=True)
    user = await request.app[MODERATION].unban(
        path_id(request), actor_id=claims.user_id, reason=data.reason,
        client=client_info(request),
    )
    return json_response(admin_user_view(user))


@routes.post(PREFIX + "/users/{id}/role", summary="Change a user's role", tags=TAGS,
             body=RoleIn, response=AdminUserOut, errors=ADMIN_ERRORS)
async def set_role(request: web.Request) -> web.Response:
    """The role is carried in access tokens, so the user's sessions are
    revoked and the new role applies from their next sign-in."""
    claims = await require_admin(request)
    data = await body(request, RoleIn)
    user = await request.app[MODERATION].set_role(
        path_id(request), data.role, actor_id=claims.user_id, client=client_info(request)
    )
    return json_response(admin_user_view(user))


@routes.get(PREFIX + "/users", summary="Find a user by email", tags=TAGS,
            query=UserByEmailQuery, response=AdminUserList, errors=[400, 403])
async def user_by_email(request: web.Request) -> web.Response:
    """`?email=`: the account with exactly this address, compared
    case-insensitively (`items` is empty or has one entry). Emails are
    encrypted at rest and looked up through a keyed blind index, so there is
    no partial-match search."""
    await require_admin(request)
    params = query(request, UserByEmailQuery)
    user = await request.app[MODERATION].find_by_email(params.email)
    items = [] if user is None else [admin_user_view(user, with_email=True)]
    return json_response({"items": items})


@routes.get(PREFIX + "/audit", summary="The audit log", tags=TAGS, query=AuditQuery,
            response=AuditPage, errors=[400, 403])
async def audit_log(request: web.Request) -> web.Response:
    """Newest first; filter by `action` (e.g. `user.ban`, `account.login`) or
    `actor_id`."""
    await require_admin(request)
    params = query(request, AuditQuery)
    page = await request.app[MODERATION].audit_page(
        action=params.action, actor_id=params.actor_id, limit=params.limit,
        cursor=params.cursor,
    )
    return json_response(page_view(page, audit_entry_view))
