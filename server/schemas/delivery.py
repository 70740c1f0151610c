"""``delivery:report``: what a client got live and what it had to sync."""

from __future__ import annotations

from pydantic import Field, StrictInt, StrictStr

from .common import StrictModel

MAX_LIVE_PER_REPORT = 1_000_000
MAX_GAP_ROOMS = 20
MAX_SEQS_PER_ROOM = 500
MAX_SEQ = 2**53 - 1


class RoomGap(StrictModel):
    room_id: StrictStr = Field(min_length=1, max_length=64)
    seqs: list[StrictInt] = Field(default_factory=list, max_length=MAX_SEQS_PER_ROOM)
    unrecovered: list[StrictInt] = Field(default_factory=list, max_length=MAX_SEQS_PER_ROOM)


class DeliveryReport(StrictModel):
    live: StrictInt = Field(0, ge=0, le=MAX_LIVE_PER_REPORT)
    after_reconnect: StrictInt = Field(0, ge=0, le=MAX_LIVE_PER_REPORT)
    gaps: list[RoomGap] = Field(default_factory=list, max_length=MAX_GAP_ROOMS)
