"""``/api/v1/auth``: registration, login, token refresh, logout, sessions,
email verification and passwords."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from ..auth.sessions import TokenPair
from ..config import Settings
from ..errors import CsrfFailed, Unauthorized, ValidationFailed
from ..http.auth import authenticate
from ..http.client import client_info
from ..http.parsing import body, path_id, query
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import ACCOUNTS, SESSIONS, SETTINGS
from ..schemas.accounts import (
    AuthOut,
    ChangePasswordIn,
    ForgotPasswordIn,
    LoginIn,
    MessageOut,
    PrivateUser,
    RefreshIn,
    RegisterIn,
    ResetPasswordIn,
    SessionList,
    TokenIn,
)
from ..schemas.common import PageQuery
from ..storage.ids import decode_cursor, encode_cursor, is_id
from ..views.users import private_user_view, session_view, token_pair_view

routes = Routes()
TAGS = ["auth"]
PREFIX = "/api/v1/auth"
REFRESH_COOKIE = "ss_refresh"
CSRF_COOKIE = "ss_csrf"
CSRF_HEADER = "X-CSRF-Token"


def _with_cookies(request: web.Request, pair: TokenPair, status: int) -> web.Response:
    """Token pair in the body, and for browsers the refresh token in an
    httpOnly cookie plus a readable CSRF cookie for the double-submit check."""
    response = json_response(token_pair_view(pair), status=status)
    set_session_cookies(response, request.app[SETTINGS], pair)
    return response


def set_session_cookies(response: web.StreamResponse, settings: Settings,
                        pair: TokenPair) -> None:
    """The browser's session: what a password sign-in sets (also used by the
    sign-in providers' callback)."""
    secure = settings.production
    response.set_cookie(
        REFRESH_COOKIE, pair.refresh_token, max_age=settings.refresh_token_ttl,
        path=PREFIX, httponly=True, secure=secure, samesite="Strict",
    )
    response.set_cookie(
        CSRF_COOKIE, secrets.token_urlsafe(24), max_age=settings.refresh_token_ttl,
        path="/", httponly=False, secure=secure, samesite="Strict",
    )


def _clear_cookies(response: web.StreamResponse) -> None:
    response.del_cookie(REFRESH_COOKIE, path=PREFIX)
    response.del_cookie(CSRF_COOKIE, path="/")


@routes.post(f"{PREFIX}/register", summary="Create an account", tags=TAGS, body=RegisterIn,
             response=AuthOut, status=201, auth=False, errors=[400, 409, 415, 429, 503])
async def register(request: web.Request) -> web.Response:
    """Creates the account, mails a verification link and signs the user in."""
    data = await body(request, RegisterIn)
    pair = await request.app[ACCOUNTS].register(
        email=str(data.email), password=data.password, display_name=data.display_name,
        client=client_info(request),
    )
    return _with_cookies(request, pair, 201)


@routes.post(f"{PREFIX}/login", summary="Sign in", tags=TAGS, body=LoginIn, response=AuthOut,
             auth=False, errors=[400, 401, 429, 503])
async def login(request: web.Request) -> web.Response:
    """Unknown email and wrong password both answer 401 `invalid_credentials`.
    Repeated failures are throttled per account and per IP (429). When more
    sign-ins wait for password hashing than the node's queue holds: 503
    `unavailable` with `Retry-After`."""
    data = await body(request, LoginIn)
    pair = await request.app[ACCOUNTS].login(
        email=data.email, password=data.password, client=client_info(request)
    )
    return _with_cookies(request, pair, 200)


@routes.post(f"{PREFIX}/refresh", summary="Rotate the refresh token", tags=TAGS,
             body=RefreshIn, response=AuthOut, auth=False, errors=[400, 401])
async def refresh(request: web.Request) -> web.Response:
    """Body `{refresh_token}`, or (browsers) the `ss_refresh` cookie with the
    `X-CSRF-Token` header equal to the `ss_csrf` cookie. A refresh token works
    once; presenting a used one revokes the whole session."""
    data = await body(request, RefreshIn, allow_empty=True)
    token = data.refresh_token
    if token is None:
        token = request.cookies.get(REFRESH_COOKIE)
        csrf_cookie = request.cookies.get(CSRF_COOKIE, "")
        csrf_header = request.headers.get(CSRF_HEADER, "")
        if not token:
            raise Unauthorized("Send refresh_token, or the refresh cookie.")
        if not csrf_cookie or not hmac.compare_digest(csrf_cookie, csrf_header):
            raise CsrfFailed("The X-CSRF-Token header must match the ss_csrf cookie.")
    pair = await request.app[SESSIONS].refresh(token, client_info(request))
    return _with_cookies(request, pair, 200)


@routes.post(f"{PREFIX}/logout", summary="Sign out this session", tags=TAGS, status=204,
             errors=[401])
async def logout(request: web.Request) -> web.Response:
    """Revokes the session at once, on every node; its sockets are closed."""
    claims = await authenticate(request)
    await request.app[SESSIONS].revoke(
        [claims.session_id], user_id=claims.user_id, client=client_info(request), reason="logout"
    )
    response = web.Response(status=204)
    _clear_cookies(response)
    return response


@routes.post(f"{PREFIX}/logout-all", summary="Sign out every session", tags=TAGS, status=204,
             errors=[401])
async def logout_all(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    await request.app[SESSIONS].revoke_all(
        claims.user_id, client=client_info(request), reason="logout_all"
    )
    response = web.Response(status=204)
    _clear_cookies(response)
    return response


@routes.get(f"{PREFIX}/sessions", summary="List my live sessions", tags=TAGS,
            query=PageQuery, response=SessionList, errors=[400, 401])
async def list_sessions(request: web.Request) -> web.Response:
    """Newest first, cursor-paginated."""
    claims = await authenticate(request)
    page = query(request, PageQuery)
    position = decode_cursor(page.cursor)
    if position is not None and not is_id(position.get("id")):
        raise ValidationFailed.field("cursor", "Invalid cursor.")
    sessions = await request.app[SESSIONS].list(
        claims.user_id, limit=page.limit + 1, before_id=position["id"] if position else None
    )
    more = len(sessions) > page.limit
    sessions = sessions[:page.limit]
    items = [session_view(s, current_session_id=claims.session_id) for s in sessions]
    next_cursor = encode_cursor({"id": sessions[-1]["_id"]}) if more else None
    return json_response({"items": items, "next_cursor": next_cursor})


@routes.delete(PREFIX + "/sessions/{id}", summary="Revoke one of my sessions", tags=TAGS,
               status=204, errors=[401, 404])
async def revoke_session(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    await request.app[SESSIONS].revoke_one(
        claims.user_id, path_id(request), client_info(request)
    )
    return web.Response(status=204)


@routes.post(f"{PREFIX}/verify-email", summary="Confirm an email address", tags=TAGS,
             body=TokenIn, response=PrivateUser, auth=False, errors=[400])
async def verify_email(request: web.Request) -> web.Response:
    """Takes the token from the mailed link; works once."""
    data = await body(request, TokenIn)
    user = await request.app[ACCOUNTS].verify_email(data.token)
    return json_response(private_user_view(user))


@routes.post(f"{PREFIX}/verify-email/resend", summary="Mail the verification link again",
             tags=TAGS, status=202, response=MessageOut, errors=[401, 429])
async def resend_verification(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    await request.app[ACCOUNTS].resend_verification(claims.user_id)
    return json_response({"message": "If your address is not verified yet, a mail is on its way."},
                         status=202)


@routes.post(f"{PREFIX}/password/forgot", summary="Mail a password reset link", tags=TAGS,
             body=ForgotPasswordIn, status=202, response=MessageOut, auth=False,
             errors=[400, 429])
async def forgot_password(request: web.Request) -> web.Response:
    """Answers 202 whether or not the email exists."""
    data = await body(request, ForgotPasswordIn)
    await request.app[ACCOUNTS].forgot_password(data.email, client_info(request))
    return json_response(
        {"message": "If an account uses this address, a reset link is on its way."}, status=202
    )


@routes.post(f"{PREFIX}/password/reset", summary="Set a new password with a reset token",
             tags=TAGS, body=ResetPasswordIn, status=204, auth=False, errors=[400, 503])
async def reset_password(request: web.Request) -> web.Response:
    """The token works once and expires; every session of the user is revoked."""
    data = await body(request, ResetPasswordIn)
    await request.app[ACCOUNTS].reset_password(
        token=data.token, new_password=data.new_password, client=client_info(request)
    )
    return web.Response(status=204)


@routes.post(f"{PREFIX}/password/change", summary="Change my password", tags=TAGS,
             body=ChangePasswordIn, status=204, errors=[400, 401, 429, 503])
async def change_password(request: web.Request) -> web.Response:
    """Every other session of the user is signed out (tokens refused, sockets
    closed); the calling session stays signed in."""
    claims = await authenticate(request)
    data = await body(request, ChangePasswordIn)
    await request.app[ACCOUNTS].change_password(
        claims, current_password=data.current_password, new_password=data.new_password,
        client=client_info(request),
    )
    return web.Response(status=204)
