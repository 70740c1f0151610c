"""Every node's heartbeat on the control bus, doubling as its canary.

A Redis subscriber can go deaf: the connection looks alive but delivers
nothing (python-socketio #1581, #826), and nothing in redis-py notices. So
each node publishes a heartbeat every ``bus_canary_interval`` seconds and
listens for its own: when none has come back within ``bus_canary_timeout``
the node counts it, reports ``bus`` as failing on ``/readyz`` and has the
bus re-subscribe on a fresh connection (again every timeout until it hears
itself). The same heartbeats tell every node which peers are alive: the
``/metrics`` gauges and ``GET /api/v1/admin/nodes``. A node stopping cleanly
says goodbye, so its peers drop it at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .bus import Bus
from .tasks import cancel_and_wait

HEARTBEAT_TOPIC = "node_heartbeat"
GOODBYE_TOPIC = "node_goodbye"
MAX_PEERS = 1000  # heartbeats from more distinct nodes than this are ignored


@dataclass
class Peer:
    node_id: str
    host: str
    pid: int
    port: int
    started_at: float
    draining: bool
    last_seen: float  # monotonic


class NodeWatch:
    """Heartbeats out, heartbeats in; knows whether this node still hears the bus."""

    def __init__(self, bus: Bus, *, node_id: str, port: int, interval: float, timeout: float,
                 registry: CollectorRegistry, monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._bus = bus
        self.node_id = node_id
        self._port = port
        self._interval = interval
        self._timeout = timeout
        self._monotonic = monotonic
        self._started_at = wall_clock()
        self._host = socket.gethostname()
        self._seq = 0
        self._last_heard = monotonic()
        self._last_resubscribe = 0.0
        self.hearing = True
        self._publishing = True
        self.draining = False
        self._peers: dict[str, Peer] = {}
        self._task: asyncio.Task[None] | None = None
        self.deaf_total = Counter(
            "skillshare_bus_deaf_total",
            "Times this node stopped hearing its own bus canary and re-subscribed.",
            registry=registry,
        )
        registry.register(_WatchCollector(self))
        bus.subscribe(HEARTBEAT_TOPIC, self._on_heartbeat)
        bus.subscribe(GOODBYE_TOPIC, self._on_goodbye)

    async def start(self) -> None:
        self._last_heard = self._monotonic()
        self._task = asyncio.create_task(self._run(), name="node-watch")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
        try:
            await asyncio.wait_for(
                self._bus.publish(GOODBYE_TOPIC, {"node": self.node_id}, log_errors=False),
                self._interval)
        except Exception:
            logger.debug("node watch: goodbye not sent")

    def live_peers(self) -> list[Peer]:
        """Nodes heard within the timeout, this one included while it hears itself."""
        now = self._monotonic()
        for node_id in [n for n, p in self._peers.items() if now - p.last_seen > self._timeout]:
            del self._peers[node_id]
        return sorted(self._peers.values(), key=lambda p: p.started_at)

    def seconds_since(self, peer: Peer) -> float:
        return max(0.0, self._monotonic() - peer.last_seen)

    async def _run(self) -> None:
        while True:
            await self._beat()
            self._check()
            await asyncio.sleep(self._interval)

    async def _beat(self) -> None:
        self._seq += 1
        try:
            await self._bus.publish(HEARTBEAT_TOPIC, {
                "node": self.node_id, "seq": self._seq, "host": self._host, "pid": os.getpid(),
                "port": self._port, "started_at": self._started_at, "draining": self.draining,
            }, log_errors=False)
        except Exception as exc:
            if self._publishing:
                logger.warning("bus: heartbeat not published ({}); retrying every {:.1f}s",
                               type(exc).__name__, self._interval)
            self._publishing = False
        else:
            self._publishing = True

    def _check(self) -> None:
        now = self._monotonic()
        if now - self._last_heard <= self._timeout:
            return
        if self.hearing:
            self.hearing = False
            self.deaf_total.inc()
            logger.warning("bus: no canary back for {:.1f}s; re-subscribing", now - self._last_heard)
        if now - self._last_resubscribe > self._timeout:
            self._last_resubscribe = now
            self._bus.resubscribe()

    async def _on_heartbeat(self, payload: dict[str, Any]) -> None:
        node_id = payload.get("node")
        if not isinstance(node_id, str) or not node_id:
            return
        now = self._monotonic()
        if node_id == self.node_id:
            self._last_heard = now
            if not self.hearing:
                self.hearing = True
                logger.info("bus: canary heard again")
        if node_id not in self._peers and len(self._peers) >= MAX_PEERS:
            return
        self._peers[node_id] = Peer(
            node_id=node_id, host=str(payload.get("host", ""))[:255],
            pid=_int(payload.get("pid")), port=_int(payload.get("port")),
            started_at=_float(payload.get("started_at")), draining=bool(payload.get("draining")),
            last_seen=now,
        )

    async def _on_goodbye(self, payload: dict[str, Any]) -> None:
        node_id = payload.get("node")
        if isinstance(node_id, str) and node_id != self.node_id:
            self._peers.pop(node_id, None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


class _WatchCollector(Collector):
    def __init__(self, watch: NodeWatch) -> None:
        self._watch = watch

    def collect(self) -> Iterator[GaugeMetricFamily]:
        hearing = GaugeMetricFamily("skillshare_bus_hearing",
                                    "1 while this node hears its own bus canary, else 0.")
        hearing.add_metric([], 1.0 if self._watch.hearing else 0.0)
        yield hearing
        peers = self._watch.live_peers()
        nodes = GaugeMetricFamily("skillshare_cluster_nodes",
                                  "Nodes (this one included) heard on the bus within the timeout.")
        nodes.add_metric([], float(len(peers)))
        yield nodes
        seen = GaugeMetricFamily("skillshare_cluster_node_last_seen_seconds",
                                 "Seconds since each live node's last heartbeat.", labels=["node"])
        for peer in peers:
            seen.add_metric([peer.node_id], self._watch.seconds_since(peer))
        yield seen
