"""``/api/v1/users``: my profile, my data, public profiles."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..http.auth import authenticate
from ..http.client import client_info
from ..http.parsing import body, path_id
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import ACCOUNTS, CONSENT, PROFILES, SIGN_IN
from ..schemas.accounts import PrivateUser, ProfilePatch, PublicUser
from ..views import plain_view
from ..views.users import identity_view, private_user_view, public_user_view

routes = Routes()
TAGS = ["users"]
PREFIX = "/api/v1/users"


@routes.get(f"{PREFIX}/me", summary="My profile", tags=TAGS, response=PrivateUser,
            errors=[401])
async def get_me(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    sign_in = request.app[SIGN_IN]
    # both through the read cache; on a miss, one wait for two reads
    user, identities = await asyncio.gather(request.app[PROFILES].me(claims.user_id),
                                            sign_in.linked(claims.user_id))
    me = private_user_view(user)
    me["identities"] = [identity_view(i, provider_name=sign_in.provider_name(i["provider"]))
                        for i in identities]
    return json_response(me)


@routes.patch(f"{PREFIX}/me", summary="Edit my profile", tags=TAGS, body=ProfilePatch,
              response=PrivateUser, errors=[400, 401])
async def patch_me(request: web.Request) -> web.Response:
    """``presence_visibility``: ``contacts`` (default; only people I have a
    relation with see my presence) or ``public`` (anyone signed in, except
    people blocked either way)."""
    claims = await authenticate(request)
    patch = await body(request, ProfilePatch)
    changes = patch.model_dump(exclude_unset=True, mode="json")
    changes = {k: v for k, v in changes.items() if v is not None}
    user = await request.app[PROFILES].update(claims.user_id, changes)
    if "presence_visibility" in changes:  # who may watch me changed: re-check on every node
        await request.app[CONSENT].changed([claims.user_id])
    return json_response(private_user_view(user))


@routes.delete(f"{PREFIX}/me", summary="Delete my account", tags=TAGS, status=204,
               errors=[401])
async def delete_me(request: web.Request) -> web.Response:
    """Soft delete: the account stops working at once and disappears from
    public reads; personal data is purged after the grace period."""
    claims = await authenticate(request)
    await request.app[ACCOUNTS].delete(claims.user_id, client_info(request))
    return web.Response(status=204)


@routes.get(f"{PREFIX}/me/export", summary="Export all my data", tags=TAGS, errors=[401])
async def export_me(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    data = await request.app[PROFILES].export(claims.user_id)
    return json_response(
        plain_view(data), headers={"Content-Disposition": 'attachment; filename="skillshare-export.json"'}
    )


@routes.get(PREFIX + "/{id}", summary="A public profile", tags=TAGS, response=PublicUser,
            auth=False, errors=[404])
async def get_user(request: web.Request) -> web.Response:
    """Never includes the email. Deleted and banned users are not found."""
    return json_response(public_user_view(await request.app[PROFILES].public(path_id(request))))
