"""Operations: health, readiness, metrics, the OpenAPI document and the
API docs page."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from aiohttp import web
from loguru import logger

from ..errors import Unavailable
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import DB, DRAIN, METRICS, NODE_WATCH, REDIS, ROUTE_SPECS, SETTINGS
from ..openapi import build_openapi

routes = Routes()
READINESS_TIMEOUT_S = 2.0

def _swagger_ui_static() -> Path:
    """The static Swagger UI 5.x inside the swagger-ui-py package (found
    without importing it: only its files are served)."""
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is missing: pip install swagger-ui-py")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


DOCS_STATIC = _swagger_ui_static()
DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Skill Share API</title>
<link rel="icon" href="/docs/static/favicon-32x32.png">
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>"""
DOCS_INIT_JS = (
    "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui', "
    "deepLinking: true});"
)
_VERSION = "1.0.0"


@routes.get("/healthz", summary="Liveness", tags=["ops"], auth=False)
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check(name: str, probe: Awaitable[Any]) -> str | None:
    try:
        await asyncio.wait_for(probe, READINESS_TIMEOUT_S)
    except Exception as exc:
        logger.warning("readiness: {} is not answering: {!r}", name, exc)
        return name
    return None


@routes.get("/readyz", summary="Readiness", tags=["ops"], auth=False, errors=[503])
async def readyz(request: web.Request) -> web.Response:
    """200 when the database (and Redis, when configured) answer and the node
    hears its own bus canary and is not draining; else 503 naming what fails."""
    probes: dict[str, Awaitable[Any]] = {"database": request.app[DB].command("ping")}
    redis = request.app[REDIS]
    if redis is not None:
        probes["redis"] = redis.ping()
    failed = [f for f in await asyncio.gather(*(_check(n, p) for n, p in probes.items())) if f]
    failed.extend(request.app[NODE_WATCH].failing())
    if request.app[DRAIN].draining:
        failed.append("draining")
    if failed:
        return json_response(
            {"error": {"code": Unavailable.code, "message": f"Not ready: {', '.join(failed)}.",
                       "details": {"failing": failed}, "request_id": None}},
            status=503,
        )
    return json_response({"status": "ready", "checks": {name: "ok" for name in probes}})


@routes.get("/metrics", summary="Prometheus metrics", tags=["ops"], auth=False)
async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


@routes.get("/openapi.json", summary="This API, as OpenAPI 3.1", tags=["ops"], auth=False)
async def openapi(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    document = build_openapi(
        request.app[ROUTE_SPECS], version=_VERSION, server_url=settings.public_url
    )
    return json_response(document)


@routes.get("/docs", summary="Human-readable API documentation", tags=["ops"], auth=False)
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html")


async def docs_init(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_INIT_JS, content_type="application/javascript")


def add_static(app: web.Application) -> None:
    """Swagger UI 5.x from its PyPI package swagger-ui-py (no CDN)."""
    app.router.add_get("/docs/init.js", docs_init)
    app.router.add_static("/docs/static/", DOCS_STATIC)
