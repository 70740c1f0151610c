"""The web app's error reports (POST /api/v1/client-errors)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import StrictModel
from .human_text import MultiLine

MAX_MESSAGE = 1000
MAX_STACK = 8000
MAX_URL = 2000


class ClientErrorIn(StrictModel):
    kind: Literal["error", "unhandledrejection"] = Field(
        description="An uncaught error, or a promise rejection nobody handled.")
    message: MultiLine = Field(min_length=1, max_length=MAX_MESSAGE)
    stack: str = Field("", max_length=MAX_STACK)
    url: str = Field("", max_length=MAX_URL, description="The page's address when it happened.")
