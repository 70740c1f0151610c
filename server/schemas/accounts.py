"""Request and response bodies of ``/api/v1/auth`` and ``/api/v1/users``."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field, StrictBool, field_validator

from .common import StrictModel
from .human_text import MultiLine, SingleLine, clean_text

MAX_EMAIL = 254
MAX_DISPLAY_NAME = 80
MAX_BIO = 2000
MAX_LANGUAGES = 20
MAX_SKILLS = 50
MAX_SKILL_NAME = 60
# Passwords are length-checked by the service against the configured bounds;
# this cap only stops absurd bodies before hashing.
PASSWORD_HARD_CAP = 4096
MAX_TOKEN = 512

@functools.cache
def _time_zones() -> frozenset[str]:
    """The IANA zone names this machine knows (``ZoneInfo("America")``, a
    folder of the zone database, is not one of them)."""
    return frozenset(zoneinfo.available_timezones())


SkillLevel = Literal["beginner", "intermediate", "advanced", "expert"]


class RegisterIn(StrictModel):
    email: EmailStr = Field(max_length=MAX_EMAIL, examples=["ada@example.com"])
    password: str = Field(max_length=PASSWORD_HARD_CAP, examples=["correct horse battery"])
    display_name: SingleLine = Field(min_length=1, max_length=MAX_DISPLAY_NAME, examples=["Ada"])


class LoginIn(StrictModel):
    email: str = Field(min_length=1, max_length=MAX_EMAIL, examples=["ada@example.com"])
    password: str = Field(min_length=1, max_length=PASSWORD_HARD_CAP)


class RefreshIn(StrictModel):
    refresh_token: str | None = Field(None, max_length=MAX_TOKEN)


class TokenIn(StrictModel):
    token: str = Field(min_length=1, max_length=MAX_TOKEN)


class ForgotPasswordIn(StrictModel):
    email: str = Field(min_length=1, max_length=MAX_EMAIL)


class ResetPasswordIn(StrictModel):
    token: str = Field(min_length=1, max_length=MAX_TOKEN)
    new_password: str = Field(max_length=PASSWORD_HARD_CAP)


class ChangePasswordIn(StrictModel):
    current_password: str = Field(min_length=1, max_length=PASSWORD_HARD_CAP)
    new_password: str = Field(max_length=PASSWORD_HARD_CAP)


class Skill(StrictModel):
    name: SingleLine = Field(min_length=1, max_length=MAX_SKILL_NAME, examples=["Python"])
    level: SkillLevel = "beginner"


class PublicUser(BaseModel):
    id: str
    display_name: str
    bio: str = ""
    timezone: str = "UTC"
    languages: list[str] = []
    skills_offered: list[Skill] = []
    skills_wanted: list[Skill] = []
    created_at: datetime


class LinkedIdentity(BaseModel):
    """A sign-in provider linked to the account (docs/accounts.md)."""

    provider: str
    display_name: str
    email: str | None = None
    linked_at: datetime
    last_used_at: datetime | None = None


class PrivateUser(PublicUser):
    email: str
    email_verified: bool
    has_password: bool = Field(True, description="False for an account that signs in only "
                               "with providers (it may set one: POST /auth/password/set).")
    identities: list[LinkedIdentity] | None = Field(
        None, description="Linked sign-in providers (in GET /users/me).")
    role: Literal["user", "admin"] = "user"
    updated_at: datetime | None = None
    presence_visibility: Literal["contacts", "public"] = Field(
        "contacts", description="Who sees my presence: my contacts only, or anyone.")
    email_digest: bool = Field(
        True, description="Mail me a digest of unread messages and missed calls while I am away "
        "(at most one per SKILLSHARE_DIGEST_INTERVAL).")


class AuthOut(BaseModel):
    user: PrivateUser
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    current: bool = False


class SessionList(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None = None


class ProfilePatch(StrictModel):
    display_name: SingleLine | None = Field(None, min_length=1, max_length=MAX_DISPLAY_NAME)
    bio: MultiLine | None = Field(None, max_length=MAX_BIO)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    languages: list[str] | None = Field(None, max_length=MAX_LANGUAGES)
    skills_offered: list[Skill] | None = Field(None, max_length=MAX_SKILLS)
    skills_wanted: list[Skill] | None = Field(None, max_length=MAX_SKILLS)
    presence_visibility: Literal["contacts", "public"] | None = None
    email_digest: StrictBool | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None and value not in _time_zones():
            raise ValueError("must be an IANA time zone such as Europe/Paris")
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        cleaned = []
        for lang in value:
            lang = clean_text(lang.strip(), multiline=False)
            if not 1 <= len(lang) <= 35:
                raise ValueError("each language must be 1-35 printable characters")
            if lang not in cleaned:
                cleaned.append(lang)
        return cleaned


class MessageOut(BaseModel):
    message: str
