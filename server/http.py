"""HTTP edge helpers shared by every handler module: a route table that
keeps OpenAPI metadata, JSON body/query parsing into pydantic models,
authentication, and who-is-asking information."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from .auth.sessions import ClientInfo
from .auth.tokens import AccessClaims
from .errors import (
    BadRequest,
    Forbidden,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from .keys import ACCOUNTS, SESSIONS, SETTINGS
from .logs import request_id_var

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
CLAIMS = web.RequestKey("claims", AccessClaims)


@dataclass(slots=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: list[str]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    errors: list[int] = field(default_factory=list)
    description: str | None = None
    html: bool = False  # a browser page: its own errors are text/html pages
    also: list[int] = field(default_factory=list)  # other success statuses, same response


class Routes:
    """Like ``web.RouteTableDef``, plus what the OpenAPI document needs."""

    def __init__(self) -> None:
        self.specs: list[RouteSpec] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tags: list[str],
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        auth: bool = True,
        errors: list[int] | None = None,
        description: str | None = None,
        html: bool = False,
        also: list[int] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.specs.append(RouteSpec(
                method, path, handler, summary, tags, body, query, response, status, auth,
                errors or [], description or (handler.__doc__ or "").strip() or None, html,
                also or [],
            ))
            return handler
        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)

    def add_to(self, app: web.Application) -> None:
        for spec in self.specs:
            app.router.add_route(spec.method, spec.path, spec.handler)


def json_response(data: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC),
        status=status, content_type="application/json", **kwargs,
    )


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    details = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()) if part != "__root__")
        details.append({"field": loc or "body", "message": err.get("msg", "Invalid value.")})
    return details


def parse_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc)) from None


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    if not request.body_exists:
        if allow_empty:
            return {}
        raise BadRequest("A JSON body is required.")
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    raw = await request.read()
    if not raw.strip() and allow_empty:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not valid JSON.") from None


async def body(request: web.Request, model: type[M], *, allow_empty: bool = False) -> M:
    return parse_model(model, await read_json(request, allow_empty=allow_empty))


def query(request: web.Request, model: type[M]) -> M:
    return parse_model(model, dict(request.query))


async def authenticate(
    request: web.Request, *, verified_email_for: str | None = None
) -> AccessClaims:
    """The caller's claims. ``verified_email_for`` names an action the
    operator may require a verified email for (403 ``email_not_verified``)."""
    claims = request.get(CLAIMS)
    if claims is None:
        claims = await _authenticate(request)
    if verified_email_for is not None:
        await request.app[ACCOUNTS].require_verified(claims.user_id, verified_email_for)
    return claims


async def _authenticate(request: web.Request) -> AccessClaims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an access token: Authorization: Bearer <token>.")
    claims = await request.app[SESSIONS].authenticate(token.strip())
    request[CLAIMS] = claims
    return claims


async def require_admin(request: web.Request) -> AccessClaims:
    claims = await authenticate(request)
    if claims.role != "admin":
        raise Forbidden("Administrators only.")
    return claims


def client_ip(request: web.Request) -> str | None:
    hops = request.app[SETTINGS].trusted_proxies
    forwarded = request.headers.get("X-Forwarded-For")
    if hops and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return request.remote


def client_info(request: web.Request) -> ClientInfo:
    return ClientInfo(
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent"),
        request_id=request_id_var.get(),
    )


def path_id(request: web.Request, name: str = "id") -> str:
    value = request.match_info[name]
    if len(value) > 64:
        raise ValidationFailed.field(name, "Invalid id.")
    return value
