"""Blocks and group membership changes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from .common import StrictModel

MAX_ADD_MEMBERS = 50  # people one request may add to a group
UserId = Annotated[str, Field(min_length=1, max_length=64)]


class BlockOut(BaseModel):
    user_id: str
    display_name: str | None = Field(description="None once that account is gone.")
    created_at: str


class BlockPage(BaseModel):
    items: list[BlockOut]
    next_cursor: str | None = None


class AddMembers(StrictModel):
    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_ADD_MEMBERS)
