"""What the soak checks at the end, and the short report it prints.

Every acked message must have been shown to every member of its room exactly
once (live, through ``room:sync`` after a reconnect or a hole, or through the
final catch-up); the stored seqs of every room must be 1..N with nothing
stored that no sender got an ack for; no message may be broadcast twice;
no 5xx may come outside the outage windows (with a short grace for requests
in flight), and no node may stop answering outside its own downtime."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .clients import FINAL, LIVE, SYNC, ChatClient
from .cluster import Fault
from .probes import RestAnswer

# Lines a node writes only for a bug: a REST handler or a socket event
# handler raised something unexpected, or a task died unobserved.
UNEXPECTED_LOG_LINES = re.compile(
    r"unhandled error in |socket \S+ event .* failed$|Task exception was never retrieved",
    re.MULTILINE,
)
OUTAGE_GRACE_S = 3.0  # requests answered this soon after an outage still belong to it
LIVE_TARGET = 0.999  # of deliveries under normal load, live (docs/chaos.md, "Delivery ratio")
DISTURBED_MARGIN_S = 1.0  # a fault's window starts this early and ends this late


@dataclass
class SoakReport:
    seconds: float = 0.0
    nodes: int = 0
    users: int = 0
    rooms: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    acked: int = 0
    expected_deliveries: int = 0
    live: int = 0
    recovered: int = 0
    final_sync: int = 0
    lost: int = 0
    duplicates: int = 0
    seq_gaps: int = 0
    seq_duplicates: int = 0
    unacked_stored: int = 0
    ack_errors: Counter[str] = field(default_factory=Counter)
    refused: list[Any] = field(default_factory=list)
    rest_total: int = 0
    rest_5xx_in_outage: int = 0
    rest_5xx_outside: list[str] = field(default_factory=list)
    rest_failures_outside: list[str] = field(default_factory=list)
    rest_4xx: list[str] = field(default_factory=list)  # the probes only send valid requests
    rest_bad_errors: list[str] = field(default_factory=list)  # not the contract's error shape
    presence: dict[str, list[float]] = field(default_factory=dict)
    presence_bounds: str = ""
    unexpected_log_lines: list[str] = field(default_factory=list)
    presence_failures: list[str] = field(default_factory=list)
    recovery_failures: list[str] = field(default_factory=list)
    normal_expected: int = 0  # deliveries of messages sent and acked outside every fault window
    normal_live: int = 0
    disturbed_s: float = 0.0

    @property
    def live_ratio_normal(self) -> float:
        return self.normal_live / self.normal_expected if self.normal_expected else 0.0

    @property
    def delivered_ratio(self) -> float:
        shown = self.live + self.recovered + self.final_sync
        return shown / self.expected_deliveries if self.expected_deliveries else 0.0

    def problems(self) -> list[str]:
        found = [f"{self.lost} acked deliveries lost"] if self.lost else []
        if self.duplicates:
            found.append(f"{self.duplicates} duplicate deliveries or stored duplicates")
        if self.seq_gaps or self.seq_duplicates:
            found.append(f"seqs: {self.seq_gaps} gaps, {self.seq_duplicates} duplicates")
        if self.unacked_stored or self.sent != self.acked:
            found.append(f"sent {self.sent}, acked {self.acked}, stored unacked {self.unacked_stored}")
        if self.refused:
            found.append(f"sends refused: {self.refused[:3]}")
        if self.rest_5xx_outside:
            found.append(f"5xx outside outages: {self.rest_5xx_outside[:5]}")
        if self.rest_4xx:
            found.append(f"4xx to valid requests: {self.rest_4xx[:5]}")
        if self.rest_bad_errors:
            found.append(f"errors not in the contract's shape: {self.rest_bad_errors[:5]}")
        if self.rest_failures_outside:
            found.append(f"no answer outside outages: {self.rest_failures_outside[:5]}")
        if self.unexpected_log_lines:
            found.append(f"unexpected errors in node logs: {self.unexpected_log_lines[:5]}")
        if self.normal_expected and self.live_ratio_normal < LIVE_TARGET:
            found.append(f"live delivery under normal load {self.live_ratio_normal:.4%} "
                         f"({self.normal_live}/{self.normal_expected}) < {LIVE_TARGET:.1%}")
        return found + self.presence_failures + self.recovery_failures

    def lines(self) -> list[str]:
        faults = ", ".join(f"{n} {k}" for k, n in sorted(self.faults.items())) or "none"
        presence = "; ".join(
            f"{k}: max {max(v):.1f} s ({len(v)}x)" for k, v in sorted(self.presence.items()) if v
        ) or "not measured"
        return [
            f"chaos soak: {self.seconds:.0f} s, {self.nodes} nodes, {self.users} users, "
            f"{self.rooms} rooms; faults: {faults}",
            f"messages: sent {self.sent}, acked {self.acked}; deliveries to members "
            f"{self.expected_deliveries}: live {self.live}, recovered through sync "
            f"{self.recovered}, final sync {self.final_sync}; lost {self.lost}, "
            f"duplicates {self.duplicates}",
            f"delivery ratio: live under normal load {self.normal_live}/{self.normal_expected} = "
            f"{self.live_ratio_normal:.4%} (target {LIVE_TARGET:.1%}; {self.disturbed_s:.0f} s of "
            f"fault windows left out); after sync {self.live + self.recovered + self.final_sync}/"
            f"{self.expected_deliveries} = {self.delivered_ratio:.4%} (target 100%)",
            f"seqs: gaps {self.seq_gaps}, duplicates {self.seq_duplicates}, stored but never "
            f"acked {self.unacked_stored}; retried send acks: {dict(self.ack_errors) or 'none'}",
            f"rest: {self.rest_total} requests, 5xx in outage windows {self.rest_5xx_in_outage}, "
            f"5xx outside {len(self.rest_5xx_outside)}, unanswered outside outages "
            f"{len(self.rest_failures_outside)}, 4xx {len(self.rest_4xx)}",
            f"presence convergence: {presence}",
            f"  ({self.presence_bounds})",
        ]


def check_messages(report: SoakReport, clients: list[ChatClient],
                   stored: dict[str, list[dict[str, Any]]], members: dict[str, list[str]]) -> None:
    """``stored``: every room's messages as ``room:sync`` from seq 0 returns them."""
    acked = {m["id"]: m for c in clients for m in c.acked.values()}
    report.sent = sum(c.sent for c in clients)
    report.acked = sum(len(c.acked) for c in clients)
    for c in clients:
        report.ack_errors.update(c.ack_errors)
        report.refused.extend(c.refused)
        report.duplicates += sum(n - 1 for n in c.live_receipts.values() if n > 1)
    for messages in stored.values():
        seqs = [m["seq"] for m in messages]
        report.seq_duplicates += len(seqs) - len(set(seqs))
        top = max(seqs, default=0)
        report.seq_gaps += len(set(range(1, top + 1)) - set(seqs))
        keys = Counter((m["sender_id"], m["client_id"]) for m in messages)
        report.duplicates += sum(n - 1 for n in keys.values() if n > 1)
        report.unacked_stored += sum(1 for m in messages if m["id"] not in acked)
    by_id = {m["id"]: m for messages in stored.values() for m in messages}
    report.lost += sum(1 for mid in acked if mid not in by_id)  # acked but not stored
    by_user = {c.user_id: c for c in clients}
    for mid, message in acked.items():
        for member in members[message["room_id"]]:
            client = by_user.get(member)
            if client is None:
                continue
            report.expected_deliveries += 1
            shown = client.views[message["room_id"]].shown.get(message["seq"])
            if shown is None:
                report.lost += 1
            elif shown[0] != mid:
                report.duplicates += 1  # another message shown at this seq
            else:
                report.live += shown[1] == LIVE
                report.recovered += shown[1] == SYNC
                report.final_sync += shown[1] == FINAL
    for c in clients:
        report.duplicates += sum(len(v.conflicts) for v in c.views.values())


def describe(answer: RestAnswer, faults: list[Fault], origin: float) -> str:
    """``node1 GET /x -> 503 at +41.2 s (3.4 s after redis_restart ended)``."""
    what = answer.status if answer.status is not None else answer.failure
    text = f"node{answer.node} {answer.path} -> {what} at +{answer.started - origin:.1f} s"
    ended = [f for f in faults if f.ended is not None and f.ended <= answer.started]
    if ended:
        last = max(ended, key=lambda f: f.ended or 0.0)
        text += f" ({answer.started - (last.ended or 0.0):.1f} s after {last.kind} {last.target} ended)"
    return text


def check_rest(report: SoakReport, answers: list[RestAnswer], faults: list[Fault],
               origin: float) -> None:
    report.rest_total = len(answers)
    outages = [f for f in faults if f.outage]
    for answer in answers:
        in_outage = any(f.overlaps(answer.started, answer.ended, grace=OUTAGE_GRACE_S)
                        for f in outages)
        if answer.status is not None and answer.status >= 400 and answer.error_code is None:
            report.rest_bad_errors.append(describe(answer, faults, origin))
        if answer.status is not None and 400 <= answer.status < 500:
            report.rest_4xx.append(describe(answer, faults, origin) + f" {answer.error_code}")
        if answer.status is not None and answer.status >= 500:
            if in_outage:
                report.rest_5xx_in_outage += 1
            else:
                report.rest_5xx_outside.append(describe(answer, faults, origin))
        elif answer.status is None and not in_outage:
            node_down = any(
                f.kind == "node_kill" and f.target == f"node{answer.node}"
                and f.overlaps(answer.started, answer.ended, grace=OUTAGE_GRACE_S)
                for f in faults
            )
            if not node_down:
                report.rest_failures_outside.append(describe(answer, faults, origin))


def check_logs(report: SoakReport, logs: dict[str, str]) -> None:
    for name, text in logs.items():
        for match in UNEXPECTED_LOG_LINES.finditer(text):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            report.unexpected_log_lines.append(f"{name}: {text[start:end if end >= 0 else None]}")


def disturbed_windows(origin: float, faults: list[Fault],
                      recovered_at: list[float]) -> list[tuple[float, float]]:
    """When delivery is not judged as "normal load": the start-up until
    everyone first caught up, and each fault from its start (less a margin)
    until the soak next saw everyone connected, caught up and receiving live
    again (plus a margin). Monotonic times."""
    windows = [(origin, recovered_at[0] if recovered_at else float("inf"))]
    for fault in faults:
        end = fault.ended if fault.ended is not None else fault.started
        after = [r for r in recovered_at if r >= end]
        windows.append((fault.started - DISTURBED_MARGIN_S,
                        (after[0] if after else float("inf")) + DISTURBED_MARGIN_S))
    return windows


def check_live_ratio(report: SoakReport, clients: list[ChatClient],
                     windows: list[tuple[float, float]]) -> None:
    """The live share of deliveries of messages sent and acked under normal
    load: outside every window of ``disturbed_windows``. Every member that is
    a soak client counts (the sender too: its own message comes back live)."""
    report.disturbed_s = sum(min(end, 1e12) - start for start, end in windows if end > start)
    times = {mid: t for c in clients for mid, t in c.send_times.items()}
    acked = {m["id"]: m for c in clients for m in c.acked.values()}
    for mid, message in acked.items():
        sent, ack = times.get(mid, (0.0, float("inf")))
        if any(sent <= end and ack >= start for start, end in windows):
            continue
        for client in clients:
            view = client.views.get(message["room_id"])
            if view is None:
                continue
            report.normal_expected += 1
            shown = view.shown.get(message["seq"])
            report.normal_live += shown is not None and shown[0] == mid and shown[1] == LIVE
