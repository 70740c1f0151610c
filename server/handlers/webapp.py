"""The bundled web app: ``/`` and the pages the mailed links open."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..http.routes import Routes

routes = Routes()
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


def _page(name: str) -> web.FileResponse:
    response = web.FileResponse(WEB_ROOT / name)
    response.headers["Cache-Control"] = "no-cache"
    return response


@routes.get("/", summary="The web app", tags=["web"], auth=False)
async def index(request: web.Request) -> web.StreamResponse:
    return _page("index.html")


@routes.get("/requests/{id}", summary="The web app at one skill request (mailed links)",
            tags=["web"], auth=False)
async def request_page(request: web.Request) -> web.StreamResponse:
    """The app shell; it opens its Requests view at that request. The JSON
    API stays under /api/v1."""
    return _page("index.html")


@routes.get("/verify-email", summary="Page opened by the verification mail's link",
            tags=["web"], auth=False)
async def verify_email_page(request: web.Request) -> web.StreamResponse:
    """Confirms the address with a POST to /api/v1/auth/verify-email (the GET
    itself changes nothing, so link scanners cannot verify on a user's behalf)."""
    return _page("verify-email.html")


@routes.get("/reset-password", summary="Page opened by the password reset mail's link",
            tags=["web"], auth=False)
async def reset_password_page(request: web.Request) -> web.StreamResponse:
    return _page("reset-password.html")


def add_static(app: web.Application) -> None:
    app.router.add_static("/static/", WEB_ROOT / "static")
