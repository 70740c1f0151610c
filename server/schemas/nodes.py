"""``GET /api/v1/admin/nodes``: the nodes heard on the bus."""

from __future__ import annotations

from pydantic import BaseModel, Field


class NodeOut(BaseModel):
    node_id: str = Field(examples=["3f2a9c0d41be"])
    self: bool = Field(description="This is the node that answered.")
    host: str = Field(description="The node's host name.")
    pid: int
    port: int = Field(description="The port the node listens on.")
    started_at: str = Field(description="ISO 8601 UTC.")
    last_seen_s: float = Field(description="Seconds since its last heartbeat.")
    draining: bool = Field(description="Shutting down: takes no new sockets.")


class NodeList(BaseModel):
    items: list[NodeOut]
    hearing: bool = Field(description="Whether the answering node hears its own bus canary.")
