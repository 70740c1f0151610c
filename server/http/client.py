"""Who is asking: the client's address (behind ``trusted_proxies`` hops of
``X-Forwarded-For``), user agent and request id."""

from __future__ import annotations

from aiohttp import web

from ..auth.sessions import ClientInfo
from ..keys import SETTINGS
from ..logs import request_id_var


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
