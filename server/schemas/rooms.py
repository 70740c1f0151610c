"""Rooms, history and the Socket.IO event payloads of the real-time core."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from .common import DEFAULT_PAGE, MAX_PAGE, StrictModel
from .human_text import SingleLine

ID = Field(min_length=1, max_length=64)
MAX_SUBSCRIBE_IDS = 500
# Message ids hold seq in 10 digits (storage/messages.py), so no seq is higher;
# bigger client values would overflow the database's 64-bit integers.
MAX_SEQ = 10**10 - 1


class CreateRoom(StrictModel):
    type: Literal["direct", "group"]
    user_id: str | None = Field(None, min_length=1, max_length=64)
    name: SingleLine | None = Field(None, min_length=1, max_length=100)
    member_ids: list[str] | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _shape(self) -> CreateRoom:
        if self.type == "direct" and not self.user_id:
            raise ValueError("a direct room needs user_id")
        if self.type == "group" and not self.name:
            raise ValueError("a group room needs a name")
        return self


class MessageOut(BaseModel):
    id: str
    room_id: str
    seq: int
    sender_id: str
    body: str
    client_id: str
    created_at: str
    deleted: bool = Field(False, description="A tombstone: the sender's account was purged; "
                          "body is empty and sender_id is the deleted-user id.")


class RoomOut(BaseModel):
    id: str
    type: Literal["direct", "group"]
    name: str | None
    member_ids: list[str]
    created_by: str | None
    created_at: str


class RoomSummary(RoomOut):
    last_seq: int
    read_seq: int
    unread_count: int = Field(description="Messages from others after the read marker (capped at 999).")
    last_message: MessageOut | None


class RoomPage(BaseModel):
    items: list[RoomSummary]
    next_cursor: str | None


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    before_seq: int | None = Field(None, ge=1)
    after_seq: int | None = Field(None, ge=0)
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, max_length=512, description=(
        "A previous page's next_cursor: the next page in the same direction "
        "(replaces before_seq/after_seq)."))


class HistoryPage(BaseModel):
    items: list[MessageOut] = Field(description="In seq order, oldest first.")
    has_more: bool = Field(description="More in the direction asked (older, or newer with after_seq).")
    next_cursor: str | None = Field(description="The next page in the same direction; null when has_more is false.")
    last_seq: int


# --- Socket.IO payloads: unknown fields are ignored, types are strict ---

class SocketPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AuthRefresh(SocketPayload):
    token: StrictStr = Field(min_length=1, max_length=4096)


class RoomRef(SocketPayload):
    room_id: StrictStr = ID


class RoomSync(RoomRef):
    after_seq: StrictInt = Field(ge=0, le=MAX_SEQ)
    limit: StrictInt = Field(100, ge=1, le=500)


class MessageSend(RoomRef):
    client_id: StrictStr = Field(min_length=1, max_length=64)
    body: StrictStr = Field(max_length=16_000)


class MessageRead(RoomRef):
    seq: StrictInt = Field(ge=0)


class Typing(RoomRef):
    typing: StrictBool


class PresenceSubscribe(SocketPayload):
    user_ids: list[StrictStr] = Field(max_length=MAX_SUBSCRIBE_IDS)

    @model_validator(mode="after")
    def _ids(self) -> PresenceSubscribe:
        if any(not (0 < len(u) <= 64) for u in self.user_ids):
            raise ValueError("user ids are 1-64 characters")
        return self


class PresenceSet(SocketPayload):
    status: Literal["online", "away", "dnd"]
