"""The cluster's nodes, as ``GET /admin/nodes`` lists them."""

from __future__ import annotations

from typing import Any

from ..node_watch import Peer
from . import epoch_view


def node_view(peer: Peer, *, own_node_id: str, last_seen_s: float) -> dict[str, Any]:
    return {
        "node_id": peer.node_id, "self": peer.node_id == own_node_id, "host": peer.host,
        "pid": peer.pid, "port": peer.port, "started_at": epoch_view(peer.started_at),
        "last_seen_s": round(last_seen_s, 3), "draining": peer.draining,
    }
