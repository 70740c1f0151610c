"""``POST /api/v1/client-errors``: the web app's error boundary."""

from __future__ import annotations

import contextlib

from aiohttp import web

from ..client_errors import report_client_error
from ..errors import ApiError
from ..http.auth import authenticate
from ..http.client import client_ip
from ..http.parsing import body
from ..http.routes import Routes
from ..keys import LIMITER, SETTINGS
from ..logs import request_id_var
from ..schemas.client_errors import ClientErrorIn

routes = Routes()


@routes.post("/api/v1/client-errors", summary="Report an error the web app could not handle",
             tags=["ops"], body=ClientErrorIn, status=204, auth=False, errors=[400, 413, 415, 429])
async def client_error(request: web.Request) -> web.Response:
    """Uncaught errors and unhandled promise rejections, from the app's error
    boundary. No sign-in needed (a token, when sent, names the user); limited
    per IP (`SKILLSHARE_CLIENT_ERROR_LIMIT`). Logged with the request id and
    forwarded to Sentry when `SKILLSHARE_SENTRY_DSN` is set."""
    await request.app[LIMITER].hit("client_error", request.app[SETTINGS].client_error_limit,
                                   client_ip(request) or "-")
    report = await body(request, ClientErrorIn)
    user_id = None
    if request.headers.get("Authorization"):
        with contextlib.suppress(ApiError):  # an expired token does not lose the report
            user_id = (await authenticate(request)).user_id
    report_client_error(report, user_id=user_id, request_id=request_id_var.get())
    return web.Response(status=204)
