"""How an accepted call went, for the 95% target (docs/calls.md, "Call
outcomes and call:stats")."""

from __future__ import annotations

from ..storage.calls import CallRecord

# an accepted call that ends for one of these did not end by a person's choice
DROP_REASONS = frozenset({"disconnected", "connection_failed", "turn_failed", "ice_failed",
                          "relay_failed", "media_lost"})
SETUP_TARGET_MS = 10_000  # media flowing within this long counts as a successful set-up


def call_outcome(call: CallRecord, reason: str) -> str:
    """How an accepted call went, for the 95% target: ``success`` (both sides'
    media flowed within ``SETUP_TARGET_MS`` and it ended by a person's
    choice), ``dropped`` (it connected, then ended for a failure),
    ``setup_failed`` (a side reported media late or not at all, or it failed
    before any report) or ``unreported`` (a side never sent call:stats)."""
    dropped = reason in DROP_REASONS
    if len(call.setup_ok) == 2:
        return "dropped" if dropped else "success"
    if call.stats_from - call.setup_ok or dropped:
        return "setup_failed"
    return "unreported"
