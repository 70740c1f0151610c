"""Request and response bodies of ``/api/v1/auth`` and ``/api/v1/users``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field, field_validator

from .common import StrictModel

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

SkillLevel = Literal["beginner", "intermediate", "advanced", "expert"]


def _no_control_chars(value: str) -> str:
    if any(ord(c) < 32 for c in value):
        raise ValueError("must not contain control characters")
    return value


class RegisterIn(StrictModel):
    email: EmailStr = Field(max_length=MAX_EMAIL, examples=["ada@example.com"])
    password: str = Field(max_length=PASSWORD_HARD_CAP, examples=["correct horse battery"])
    display_name: str = Field(min_length=1, max_length=MAX_DISPLAY_NAME, examples=["Ada"])

    _name = field_validator("display_name")(_no_control_chars)


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
    name: str = Field(min_length=1, max_length=MAX_SKILL_NAME, examples=["Python"])
    level: SkillLevel = "beginner"

    _name = field_validator("name")(_no_control_chars)


class PublicUser(BaseModel):
    id: str
    display_name: str
    bio: str = ""
    timezone: str = "UTC"
    languages: list[str] = []
    skills_offered: list[Skill] = []
    skills_wanted: list[Skill] = []
    created_at: datetime


class PrivateUser(PublicUser):
    email: str
    email_verified: bool
    role: Literal["user", "admin"] = "user"
    updated_at: datetime | None = None
    presence_visibility: Literal["contacts", "public"] = Field(
        "contacts", description="Who sees my presence: my contacts only, or anyone.")


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
    display_name: str | None = Field(None, min_length=1, max_length=MAX_DISPLAY_NAME)
    bio: str | None = Field(None, max_length=MAX_BIO)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    languages: list[str] | None = Field(None, max_length=MAX_LANGUAGES)
    skills_offered: list[Skill] | None = Field(None, max_length=MAX_SKILLS)
    skills_wanted: list[Skill] | None = Field(None, max_length=MAX_SKILLS)
    presence_visibility: Literal["contacts", "public"] | None = None

    _name = field_validator("display_name")(lambda v: v if v is None else _no_control_chars(v))

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Europe/Paris") from None
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        cleaned = []
        for lang in value:
            lang = lang.strip()
            if not 1 <= len(lang) <= 35 or any(ord(c) < 32 for c in lang):
                raise ValueError("each language must be 1-35 printable characters")
            if lang not in cleaned:
                cleaned.append(lang)
        return cleaned


class MessageOut(BaseModel):
    message: str
