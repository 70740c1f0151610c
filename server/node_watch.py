"""Every node's heartbeat on the control bus, doubling as its canary.

A Redis subscriber can go deaf: the connection looks alive but delivers
nothing (python-socketio #1581, #826), and nothing in redis-py notices. So
each node publishes a heartbeat every ``bus_canary_interval`` seconds and
listens for its own: when none has come back within ``bus_canary_timeout``
the node counts it, reports ``bus`` as failing on ``/readyz`` and has the
bus re-subscribe on a fresh connection (again every timeout until it hears
itself). Other subscriptions register as a ``Channel`` with their own
canary (the Socket.IO fan-out: ``server/realtime/redis_manager.py``) and are
watched the same way, reported as ``fanout``. The same heartbeats tell every
node which peers are alive: the
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
from typing import Any, Protocol

from loguru import logger
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .bus import Bus
from .tasks import cancel_and_wait

HEARTBEAT_TOPIC = "node_heartbeat"
GOODBYE_TOPIC = "node_goodbye"
MAX_PEERS = 1000  # heartbeats from more distinct nodes than this are ignored


class Channel(Protocol):
    """A subscription with a canary of its own."""

    last_heard: float  # monotonic time its own canary last came back

    async def send_canary(self) -> None: ...

    def resubscribe(self) -> None: ...


@dataclass
class _Watched:
    channel: Channel
    deaf: bool = False
    last_resubscribe: float = 0.0


BUS_CHANNEL = "bus"


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
        self._channels: dict[str, _Watched] = {}
        self._task: asyncio.Task[None] | None = None
        self.deaf_total = Counter(
            "skillshare_bus_deaf_total",
            "Times this node stopped hearing its own canary on a channel and re-subscribed.",
            ["channel"], registry=registry,
        )
        self.resubscribes = Counter(
            "skillshare_bus_resubscribes_total",
            "Re-subscriptions after a missing canary (again every timeout while deaf).",
            ["channel"], registry=registry,
        )
        registry.register(_WatchCollector(self))
        bus.subscribe(HEARTBEAT_TOPIC, self._on_heartbeat)
        bus.subscribe(GOODBYE_TOPIC, self._on_goodbye)

    def watch(self, name: str, channel: Channel) -> None:
        """Watch another subscription (before ``start``)."""
        channel.last_heard = self._monotonic()
        self._channels[name] = _Watched(channel)

    def failing(self) -> list[str]:
        """Channels this node does not hear right now (``bus``, ``fanout``)."""
        deaf = [] if self.hearing else [BUS_CHANNEL]
        return deaf + sorted(n for n, w in self._channels.items() if w.deaf)

    def channel_hearing(self) -> dict[str, bool]:
        return {BUS_CHANNEL: self.hearing, **{n: not w.deaf for n, w in self._channels.items()}}

    async def start(self) -> None:
        self._last_heard = self._monotonic()
        for watched in self._channels.values():
            watched.channel.last_heard = self._last_heard
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
            for name, watched in self._channels.items():
                try:
                    await watched.channel.send_canary()
                except Exception as exc:
                    logger.debug("{}: canary not sent ({!r})", name, exc)
            self._check()
            for name, watched in self._channels.items():
                self._check_channel(name, watched)
            await asyncio.sleep(self._interval)

    def _check_channel(self, name: str, watched: _Watched) -> None:
        now = self._monotonic()
        silent = now - watched.channel.last_heard
        if silent <= self._timeout:
            if watched.deaf:
                watched.deaf = False
                logger.info("{}: canary heard again", name)
            return
        if not watched.deaf:
            watched.deaf = True
            self.deaf_total.labels(name).inc()
            logger.warning("{}: no canary back for {:.1f}s; re-subscribing", name, silent)
        if now - watched.last_resubscribe > self._timeout:
            watched.last_resubscribe = now
            self.resubscribes.labels(name).inc()
            watched.channel.resubscribe()

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
            self.deaf_total.labels(BUS_CHANNEL).inc()
            logger.warning("bus: no canary back for {:.1f}s; re-subscribing", now - self._last_heard)
        if now - self._last_resubscribe > self._timeout:
            self._last_resubscribe = now
            self.resubscribes.labels(BUS_CHANNEL).inc()
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
                                    "1 while this node hears its own canary on a channel, else 0.",
                                    labels=["channel"])
        for name, ok in self._watch.channel_hearing().items():
            hearing.add_metric([name], 1.0 if ok else 0.0)
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
