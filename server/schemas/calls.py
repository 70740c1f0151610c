"""Calls: the ICE servers endpoint and the ``call:*`` event payloads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from .common import StrictModel

CALL_ID = Field(min_length=1, max_length=64)
REASON = Field(None, pattern=r"^[a-z][a-z_]{0,31}$",
               description="A short snake_case reason, e.g. hangup, declined, connection_failed.")
MAX_SETUP_MS = 10 * 60 * 1000


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceServers(BaseModel):
    ice_servers: list[IceServer]
    ttl: int = Field(description="Seconds the TURN credentials stay valid.")


class CallMedia(StrictModel):
    audio: StrictBool = True
    video: StrictBool = True


class CallInvite(StrictModel):
    user_id: StrictStr = Field(min_length=1, max_length=64)
    media: CallMedia = Field(default_factory=CallMedia)


class CallRef(StrictModel):
    call_id: StrictStr = CALL_ID
    reason: StrictStr | None = REASON


class CallSignal(StrictModel):
    call_id: StrictStr = CALL_ID
    to: StrictStr = Field(min_length=1, max_length=64)
    data: dict[str, Any]


class CallRelay(StrictModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)  # keep the SDP's CRLFs
    call_id: StrictStr = CALL_ID
    sdp: StrictStr


MAX_RTT_MS = 60_000
MAX_RECOVERY_MS = 10 * 60 * 1000
MAX_COUNTER = 2**40


class CallStats(StrictModel):
    """``kind`` "setup" (default): the outcome of setting the media up, counted
    once per participant and call. "interval": a periodic report while the
    call lasts. "recovered" / "lost": the media came back after an ICE restart
    or a relay move (``recovery_ms``), or could not be brought back."""

    call_id: StrictStr = CALL_ID
    kind: Literal["setup", "interval", "recovered", "lost"] = "setup"
    path: Literal["p2p", "turn", "relay"]
    connected: StrictBool
    setup_ms: StrictInt | None = Field(None, ge=0, le=MAX_SETUP_MS)
    recovery_ms: StrictInt | None = Field(None, ge=0, le=MAX_RECOVERY_MS)
    rtt_ms: StrictInt | None = Field(None, ge=0, le=MAX_RTT_MS)
    packets_lost: StrictInt | None = Field(None, ge=0, le=MAX_COUNTER)
    packets_received: StrictInt | None = Field(None, ge=0, le=MAX_COUNTER)
