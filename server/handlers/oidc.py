"""``/api/v1/auth/oidc``: sign-in providers (the browser's redirects and
the profile's link/unlink), and a first password for provider-only accounts."""

from __future__ import annotations

from html import escape

from aiohttp import web
from loguru import logger

from ..errors import ApiError, SignInFailed
from ..http.auth import authenticate
from ..http.client import client_info, client_ip
from ..http.parsing import body
from ..http.responses import json_response
from ..http.routes import Routes
from ..schemas.parsing import parse_model
from ..keys import ACCOUNTS, SETTINGS, SIGN_IN
from ..logs import request_id_var
from ..schemas.oidc import CallbackQuery, LinkOut, ProviderList, SetPasswordIn
from .accounts import set_session_cookies

routes = Routes()
TAGS = ["auth"]
PREFIX = "/api/v1/auth/oidc"
FLOW_COOKIE = "ss_oidc"  # the browser's half of a flow in progress (its secret)
MAX_NAME_CHARS = 32
SIGNED_IN_PAGE = "/"
LINKED_PAGE = "/#/profile"
ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in did not work - Skill Share</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;
line-height:1.5}}code{{color:#666}}</style></head>
<body><h1>Sign-in did not work</h1><p>{message}</p>
<p><a href="/">Back to Skill Share</a></p>
<p><small>Reference: <code>{request_id}</code></small></p></body></html>
"""


def _provider_name(request: web.Request) -> str:
    name = request.match_info["name"]
    return name[:MAX_NAME_CHARS]


def _error_page(error: ApiError) -> web.Response:
    response = web.Response(
        text=ERROR_PAGE.format(message=escape(error.message),
                               request_id=escape(request_id_var.get() or "-")),
        status=error.status, content_type="text/html", headers=error.headers,
    )
    response.del_cookie(FLOW_COOKIE, path=PREFIX)
    return response


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _flow_cookie(response: web.StreamResponse, request: web.Request, secret: str) -> None:
    settings = request.app[SETTINGS]
    # Lax, not Strict: it must come back with the provider's (cross-site)
    # top-level redirect to the callback.
    response.set_cookie(FLOW_COOKIE, secret, max_age=settings.oidc_flow_ttl, path=PREFIX,
                        httponly=True, secure=settings.production, samesite="Lax")


@routes.get(f"{PREFIX}/providers", summary="Sign-in providers", tags=TAGS,
            response=ProviderList, auth=False)
async def list_providers(request: web.Request) -> web.Response:
    """The providers a person can sign in with, in the configured order."""
    return json_response({"items": request.app[SIGN_IN].providers()})


@routes.get(PREFIX + "/{name}/start", summary="Start signing in with a provider", tags=TAGS,
            status=302, auth=False, errors=[404, 429], html=True)
async def start(request: web.Request) -> web.StreamResponse:
    """Redirects the browser to the provider (authorization code flow with
    `state`, `nonce` and PKCE S256); the flow is bound to this browser by a
    short-lived HttpOnly cookie. Failures are an HTML page."""
    try:
        flow = await request.app[SIGN_IN].start(_provider_name(request),
                                                client_ip=client_ip(request))
    except ApiError as exc:
        return _error_page(exc)
    response = _redirect(flow.authorization_url)
    _flow_cookie(response, request, flow.browser_secret)
    return response


@routes.get(PREFIX + "/{name}/callback", summary="The provider's redirect back", tags=TAGS,
            status=302, auth=False, errors=[400, 404], html=True)
async def callback(request: web.Request) -> web.StreamResponse:
    """Checks everything (state bound to this browser, issuer, audience,
    expiry, nonce, signature), signs in exactly like a password sign-in in
    the browser (`ss_refresh` and `ss_csrf` cookies) and redirects to the web
    app; after a link started from the profile, back to the profile. On any
    failure no session exists and the person sees an HTML page."""
    try:
        params = parse_model(CallbackQuery, dict(request.query))
        if params.error or not params.code or not params.state:
            logger.info("oidc callback without a code: {}", params.error)
            raise SignInFailed("Signing in at the provider was cancelled or did not finish. "
                               "Please start again.")
        outcome = await request.app[SIGN_IN].complete(
            _provider_name(request), code=params.code, state=params.state,
            browser_secret=request.cookies.get(FLOW_COOKIE), client=client_info(request),
        )
    except ApiError as exc:
        if exc.status == 400 and exc.code == "validation_error":
            exc = SignInFailed("The provider's answer was malformed. Please start again.")
        return _error_page(exc)
    settings = request.app[SETTINGS]
    base = (settings.public_url or "").rstrip("/")
    response = _redirect(base + (SIGNED_IN_PAGE if outcome.pair else LINKED_PAGE))
    response.del_cookie(FLOW_COOKIE, path=PREFIX)
    if outcome.pair is not None:
        set_session_cookies(response, settings, outcome.pair)
    return response


@routes.post(PREFIX + "/{name}/link", summary="Start linking a provider to my account",
             tags=TAGS, response=LinkOut, errors=[401, 404, 429])
async def link(request: web.Request) -> web.Response:
    """Answers the provider's URL for the browser to open, and sets the flow's
    cookie; the callback then links the provider's account to mine."""
    claims = await authenticate(request)
    flow = await request.app[SIGN_IN].start(_provider_name(request), client_ip=client_ip(request),
                                            link_user_id=claims.user_id)
    response = json_response({"authorization_url": flow.authorization_url})
    _flow_cookie(response, request, flow.browser_secret)
    return response


@routes.delete(PREFIX + "/{name}/link", summary="Unlink a provider from my account",
               tags=TAGS, status=204, errors=[401, 404, 409])
async def unlink(request: web.Request) -> web.Response:
    """409 `last_sign_in_method` when the account has no password and no
    other provider (it would have no way in)."""
    claims = await authenticate(request)
    await request.app[SIGN_IN].unlink(claims.user_id, _provider_name(request),
                                      client_info(request))
    return web.Response(status=204)


@routes.post("/api/v1/auth/password/set", summary="Set a first password", tags=TAGS,
             body=SetPasswordIn, status=204, errors=[400, 401, 409])
async def set_password(request: web.Request) -> web.Response:
    """For an account that signs in only with providers; 409 when it has a
    password already (use /auth/password/change)."""
    claims = await authenticate(request)
    data = await body(request, SetPasswordIn)
    await request.app[ACCOUNTS].set_password(claims.user_id, new_password=data.new_password,
                                             client=client_info(request))
    return web.Response(status=204)
