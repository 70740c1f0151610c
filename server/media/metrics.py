"""Prometheus metrics of the media relay, registered in a registry the caller
owns (the app's ``Metrics.registry``), so several relays never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from .candidates import REFUSAL_REASONS

MEDIA_KINDS = ("audio", "video")


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.active_calls = Gauge(
            "skillshare_relay_active_calls",
            "Calls with at least one peer connection on this node's media relay.",
            registry=registry,
        )
        self.peer_connections = Gauge(
            "skillshare_relay_peer_connections",
            "Server-side RTCPeerConnections owned by the media relay.",
            registry=registry,
        )
        self.offers = Counter(
            "skillshare_relay_offers_total",
            "Offers to the media relay by outcome (answered, capacity, full, invalid, unreachable: "
            "no candidate it may contact).",
            ["outcome"],
            registry=registry,
        )
        self.connection_losses = Counter(
            "skillshare_relay_connection_losses_total",
            "Relay peer connections that went failed or closed on their own.",
            registry=registry,
        )
        self.candidates_filtered = Counter(
            "skillshare_relay_candidates_filtered_total",
            "Remote ICE addresses the relay refused to contact, by reason (loopback, link_local, "
            "private, mdns, ...): candidates removed from offers and sources its ICE agents ignored.",
            ["reason"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS:
            self.candidates_filtered.labels(reason)
        frames = Counter(
            "skillshare_relay_frames_received_total",
            "Media frames the relay received from publishers, by kind.",
            ["kind"],
            registry=registry,
        )
        self._frames = {kind: frames.labels(kind) for kind in MEDIA_KINDS}

    def frame_received(self, kind: str) -> None:
        child = self._frames.get(kind)
        if child is not None:
            child.inc()
