"""Prometheus metrics of calls (``call:stats`` and the state machine), plus
a sampler of the process CPU spent while this node relays media."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from ..tasks import cancel_and_wait

PATHS = ("p2p", "turn", "relay")
SETUP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60)
CPU_SAMPLE_INTERVAL_S = 1.0
RELAY_NOT_FOUND, RELAY_NOT_PARTICIPANT, RELAY_NOT_ACTIVE = "not_found", "not_participant", "not_active"
RELAY_REFUSALS = (RELAY_NOT_FOUND, RELAY_NOT_PARTICIPANT, RELAY_NOT_ACTIVE)
ENDED_REASONS = ("hangup", "cancelled", "declined", "rejected", "missed", "disconnected",
                 "connection_failed")
CALL_OUTCOMES = ("success", "dropped", "setup_failed", "unreported")
SETUP_RESULTS = ("ok", "slow", "failed")
RECONNECT_LABELS = (("socket", "away"), ("socket", "resumed"), ("socket", "expired"),
                    ("media", "recovered"), ("media", "lost"))


class CallMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "skillshare_calls_started_total", "Calls invited (ringing).", registry=registry)
        self.ended = Counter(
            "skillshare_calls_ended_total",
            "Calls that ended, by reason (hangup, cancelled, rejected, missed, disconnected, ...).",
            ["reason"], registry=registry)
        self.connected = Counter(
            "skillshare_calls_connected_total",
            "Calls whose media connected, by path, as reported by call:stats.",
            ["path"], registry=registry)
        self.failed = Counter(
            "skillshare_calls_failed_total",
            "Calls whose media did not connect, by the path last tried (call:stats).",
            ["path"], registry=registry)
        self.setup = Histogram(
            "skillshare_call_setup_seconds",
            "From media start to connected, as reported by call:stats.",
            ["path"], buckets=SETUP_BUCKETS, registry=registry)
        self.relay_forwards = Counter(
            "skillshare_call_relay_forwards_total",
            "Relay offers sent to the node owning the call's relay, by outcome.",
            ["outcome"], registry=registry)
        self.relay_refused = Counter(
            "skillshare_call_relay_refused_total",
            "call:relay offers refused before reaching a media relay, by reason "
            "(not_found, not_participant, not_active: the call is ringing or over).",
            ["reason"], registry=registry)
        self.relay_cpu = Counter(
            "skillshare_relay_cpu_seconds_total",
            "Process CPU seconds (user+system) spent while this node's relay had at least "
            "one call; an upper bound of the relay's own cost.",
            registry=registry)
        self.accepted = Counter(
            "skillshare_calls_accepted_total", "Calls accepted by the callee (call attempts).",
            registry=registry)
        self.outcomes = Counter(
            "skillshare_call_outcomes_total",
            "Accepted calls when they end, by outcome: success (both sides' media flowed within "
            "10 s, ended by a person), dropped, setup_failed, unreported.",
            ["outcome"], registry=registry)
        self.setups = Counter(
            "skillshare_call_setups_total",
            "call:stats set-up reports by result: ok (media within 10 s), slow, failed.",
            ["result"], registry=registry)
        self.reconnects = Counter(
            "skillshare_call_reconnects_total",
            "Reconnection events: kind socket (outcome away, resumed, expired) and kind media "
            "(ICE restart or relay move reported by the SDK: recovered, lost).",
            ["kind", "outcome"], registry=registry)
        self.recovery = Histogram(
            "skillshare_call_recovery_seconds", "How long media took to come back (call:stats recovered).",
            buckets=SETUP_BUCKETS, registry=registry)
        self.relay_moves = Counter(
            "skillshare_call_relay_moves_total",
            "Relayed calls whose relay node was gone and that moved to this node's relay.",
            registry=registry)
        self.media_reports = Counter(
            "skillshare_call_media_reports_total",
            "Periodic call:stats reports during calls, by path and whether media was connected.",
            ["path", "connected"], registry=registry)
        self.rtt = Histogram(
            "skillshare_call_rtt_seconds", "Round-trip time of the selected ICE pair (periodic call:stats).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2), registry=registry)
        for outcome in CALL_OUTCOMES:
            self.outcomes.labels(outcome)
        for result in SETUP_RESULTS:
            self.setups.labels(result)
        for kind, outcome in RECONNECT_LABELS:
            self.reconnects.labels(kind, outcome)
        for reason in RELAY_REFUSALS:
            self.relay_refused.labels(reason)
        for path in PATHS:
            self.connected.labels(path)
            self.failed.labels(path)
            self.setup.labels(path)
        for reason in ENDED_REASONS:  # exported from the start (dashboards and rules use them)
            self.ended.labels(reason)


class RelayCpuSampler:
    """Adds the process CPU time of each sampling interval during which the
    relay had calls to ``skillshare_relay_cpu_seconds_total``. aiortc runs
    in this process's threads, so per-call attribution is not available;
    divide by the active relayed calls gauge for a per-call estimate."""

    def __init__(self, counter: Counter, active_calls: Callable[[], int], *,
                 interval: float = CPU_SAMPLE_INTERVAL_S,
                 cpu: Callable[[], float] = time.process_time) -> None:
        self._counter = counter
        self._active_calls = active_calls
        self._interval = interval
        self._cpu = cpu
        self._task: asyncio.Task[None] | None = None

    def sample(self, last_cpu: float, was_active: bool) -> tuple[float, bool]:
        now_cpu, active = self._cpu(), self._active_calls() > 0
        if was_active or active:
            self._counter.inc(max(0.0, now_cpu - last_cpu))
        return now_cpu, active

    async def _run(self) -> None:
        last, active = self._cpu(), self._active_calls() > 0
        while True:
            await asyncio.sleep(self._interval)
            last, active = self.sample(last, active)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-cpu-sampler")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
