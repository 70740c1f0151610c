"""Real-time metrics, added to the app's registry (``app[METRICS].registry``)."""

from __future__ import annotations

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..metrics import LATENCY_BUCKETS


class RealtimeMetrics:
    def __init__(self, registry: CollectorRegistry, *, bus_errors: Counter) -> None:
        self.connected = Gauge(
            "skillshare_socket_connected", "Sockets connected to this node.", registry=registry,
        )
        self.events = Counter(
            "skillshare_socket_events_total",
            "Socket.IO events by name and outcome (ok or the error code).",
            ["event", "outcome"], registry=registry,
        )
        self.ack_latency = Histogram(
            "skillshare_socket_ack_seconds", "Time from event received to ack, by event.",
            ["event"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.messages_persisted = Counter(
            "skillshare_messages_persisted_total", "Chat messages stored.", registry=registry,
        )
        self.message_batch_size = Histogram(
            "skillshare_message_batch_size",
            "Sends to one room stored together (group commit), per batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000), registry=registry,
        )
        self.message_batches_failed = Counter(
            "skillshare_message_batches_failed_total",
            "Batches of sends the database failed as a whole (each send acked unavailable).",
            registry=registry,
        )
        self.deliveries = Counter(
            "skillshare_socket_deliveries_total",
            "Server-to-client events delivered to local sockets, by event.",
            ["event"], registry=registry,
        )
        self.bus_errors = bus_errors
        self.fanout_channels = Gauge(
            "skillshare_fanout_channels",
            "Sharded fan-out channels (rooms with a local socket) this node subscribes to.",
            registry=registry,
        )
        self.fanout_received = Counter(
            "skillshare_fanout_received_total",
            "Fan-out messages this node read from Redis, by channel kind (room: sharded "
            "per-room channels; broadcast: the shared channel).", ["channel"], registry=registry,
        )
        self.refused = Counter(
            "skillshare_socket_refused_total", "Refused connections by code.", ["code"],
            registry=registry,
        )
        self.protocol_errors = Counter(
            "skillshare_socket_protocol_errors_total",
            "Connections closed for a protocol violation, by kind.", ["kind"],
            registry=registry,
        )
        self.slow_consumers = Counter(
            "skillshare_socket_slow_consumers_total",
            "Connections cut off because their unsent buffer passed the limit.",
            registry=registry,
        )

    def message_batch_failed(self, exc: BaseException) -> None:
        self.message_batches_failed.inc()
        logger.error("the database failed a batch of chat messages (acked unavailable): {!r}", exc)
