"""``/api/v1/admin/nodes``: the cluster's live nodes as this node hears them
on the bus (server/node_watch.py). Admins only."""

from __future__ import annotations

from aiohttp import web

from ..http.auth import require_admin
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import NODE_WATCH
from ..schemas.nodes import NodeList
from ..views.nodes import node_view

routes = Routes()


@routes.get("/api/v1/admin/nodes", summary="Live nodes of the cluster", tags=["admin"],
            response=NodeList, errors=[403])
async def list_nodes(request: web.Request) -> web.Response:
    """Every node whose heartbeat this node heard within
    ``SKILLSHARE_BUS_CANARY_TIMEOUT``, oldest first; itself only while it
    hears its own."""
    await require_admin(request)
    watch = request.app[NODE_WATCH]
    items = [node_view(peer, own_node_id=watch.node_id, last_seen_s=watch.seconds_since(peer))
             for peer in watch.live_peers()]
    return json_response({"items": items, "hearing": watch.hearing})
