"""Sign-in providers: request and response models."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .common import StrictModel


class ProviderOut(BaseModel):
    name: str
    display_name: str


class ProviderList(BaseModel):
    items: list[ProviderOut]


class CallbackQuery(BaseModel):
    """What the provider sends back (``error`` when the person cancelled)."""

    code: str | None = Field(None, max_length=4096)
    state: str | None = Field(None, max_length=512)
    error: str | None = Field(None, max_length=256)
    error_description: str | None = Field(None, max_length=1024)


class LinkOut(BaseModel):
    authorization_url: str = Field(description="Open this in the browser (same tab).")


class SetPasswordIn(StrictModel):
    new_password: str = Field(max_length=4096)
