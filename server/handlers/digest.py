"""The digest mail's unsubscribe link: ``GET`` shows a page with one button
(mail scanners that follow links change nothing), ``POST`` turns digests off.
No sign-in: the signed token in the link says whose digests they are."""

from __future__ import annotations

import html

from aiohttp import web

from ..errors import InvalidToken
from ..http.routes import Routes
from ..keys import DIGEST

routes = Routes()
TAGS = ["digest"]
PATH = "/api/v1/digest/unsubscribe"


def _page(title: str, body: str) -> web.Response:
    return web.Response(
        text=(f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
              f"<body style=\"font-family:sans-serif\"><h2>{html.escape(title)}</h2>{body}</body></html>"),
        content_type="text/html",
    )


@routes.get(PATH, summary="Unsubscribe page for the email digest", tags=TAGS, auth=False,
            html=True, errors=[400])
async def unsubscribe_page(request: web.Request) -> web.Response:
    token = request.query.get("token", "")
    if request.app[DIGEST].token_user(token) is None:
        raise InvalidToken("This unsubscribe link is not valid.")
    return _page("Unsubscribe from email digests",
                 "<p>You will get no more emails about unread messages and missed calls.</p>"
                 f"<form method=\"post\" action=\"{PATH}\"><input type=\"hidden\" name=\"token\" "
                 f"value=\"{html.escape(token)}\"><button type=\"submit\">Unsubscribe</button></form>")


@routes.post(PATH, summary="Turn the email digest off (the mailed link)", tags=TAGS, auth=False,
             html=True, errors=[400])
async def unsubscribe(request: web.Request) -> web.Response:
    """The token comes in the form (the page's button, RFC 8058 one-click)
    or the query string. Turning digests on again: ``PATCH /users/me``
    ``{"email_digest": true}``."""
    form = await request.post() if request.content_type == "application/x-www-form-urlencoded" else {}
    token = str(form.get("token") or request.query.get("token", ""))
    if not await request.app[DIGEST].unsubscribe(token):
        raise InvalidToken("This unsubscribe link is not valid.")
    return _page("Unsubscribed", "<p>You will get no more email digests. You can turn them on "
                                 "again in your profile.</p>")
