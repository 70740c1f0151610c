"""Call acks (``call:invite``, ``call:accept``, ``call:resume``)."""

from __future__ import annotations

from typing import Any

from ..calls.service import Invitation
from ..storage.calls import ACTIVE, CallRecord


def invitation_view(invitation: Invitation) -> dict[str, Any]:
    return {"call_id": invitation.call.id, "ice_servers": invitation.ice["ice_servers"],
            "ice_ttl": invitation.ice["ttl"], "ring_timeout": invitation.ring_timeout}


def acceptance_view(ice: dict[str, Any]) -> dict[str, Any]:
    return {"ice_servers": ice["ice_servers"], "ice_ttl": ice["ttl"]}


def resumed_call_view(call: CallRecord, *, user_id: str) -> dict[str, Any]:
    """``{state: "active", peer_away}`` while the call is on, else
    ``{state, reason, by}`` of the ended call."""
    if call.state == ACTIVE:
        return {"state": ACTIVE, "peer_away": call.other(user_id) in call.away}
    return {"state": call.state, "reason": call.reason, "by": call.ended_by}
