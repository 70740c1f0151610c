"""Cross-cutting HTTP behaviour, outermost first: request id and metrics,
security headers and CORS, and the one place where errors become the
contract's envelope."""

from __future__ import annotations

import re
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from loguru import logger

from .edge_errors import to_api_error
from .errors import (
    ApiError,
    BadRequest,
    HttpError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from .http.client import client_ip
from .http.responses import json_response
from .keys import LIMITER, METRICS, SETTINGS
from .logs import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
API_PREFIX = "/api/"
STATIC_PREFIXES = ("/static/", "/docs/static/")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)
CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID, X-CSRF-Token"
CORS_ALLOW_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"
CORS_MAX_AGE = "600"

KEPT_HTTP_HEADERS = ("Allow",)
_HTTP_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest, 404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _SANE_REQUEST_ID.match(incoming) else secrets.token_hex(12)
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        metrics = request.app[METRICS]
        route = _route_label(request)
        metrics.http_requests.labels(route, request.method, str(status)).inc()
        metrics.http_latency.labels(route, request.method).observe(elapsed)
        request_id_var.reset(token)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    allowed = origin is not None and (origin in settings.cors_origins or "*" in settings.cors_origins)
    if request.method == "OPTIONS" and allowed and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
    else:
        response = await handler(request)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    # Static assets revalidate (Last-Modified); everything else is personal.
    static = request.path.startswith(STATIC_PREFIXES)
    headers.setdefault("Cache-Control", "no-cache" if static else "no-store")
    if settings.production:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if allowed:
        assert origin is not None
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"
        headers.add("Vary", "Origin")
    return response


def error_response(error: ApiError) -> web.Response:
    body = {"error": error.to_dict(request_id_var.get())}
    return json_response(body, status=error.status, headers=error.headers)


def _client_gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_class = _HTTP_ERRORS.get(exc.status)
        error = HttpError(exc.status, exc.reason) if error_class is None else error_class()
        # aiohttp's own headers that a client needs (405 lists what is allowed)
        error.headers = {h: exc.headers[h] for h in KEPT_HTTP_HEADERS if h in exc.headers}
        return error_response(error)
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and _client_gone(request):
            # Gone before its body was read: not a server error, and nobody
            # to answer (aiohttp drops the response quietly).
            logger.info("client went away during {} {}", request.method, request.path)
            return error_response(BadRequest("The connection closed before the body was read."))
        return error_response(to_api_error(
            exc, where=f"{request.method} {request.path}",
            tags={"request_id": request_id_var.get() or "-", "route": _route_label(request)},
        ))


@web.middleware
async def api_rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A coarse per-IP ceiling on the REST API; finer limits live with the
    actions they protect."""
    if request.path.startswith(API_PREFIX):
        await request.app[LIMITER].hit("api", request.app[SETTINGS].api_limit, client_ip(request) or "-")
    return await handler(request)


MIDDLEWARES = [request_context, security_headers, errors, api_rate_limit]
