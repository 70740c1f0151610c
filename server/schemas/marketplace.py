"""Request and response bodies of the skills marketplace and the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from ..marketplace.text import MAX_TAG_CHARS, MAX_TAGS, Category, ListingLevel, ListingMode
from .common import PageQuery, StrictModel
from .human_text import MultiLine, SingleLine

MAX_TITLE = 120
MIN_TITLE = 3
MAX_DESCRIPTION = 4000
MAX_REQUEST_MESSAGE = 1000
MAX_REVIEW_COMMENT = 2000
MAX_QUERY = 200
MAX_REASON = 500

RequestStatus = Literal["pending", "accepted", "declined", "cancelled", "completed"]


def _tags(value: list[str] | None) -> list[str] | None:
    if value is None:
        return value
    if len(value) > MAX_TAGS * 2:
        raise ValueError(f"at most {MAX_TAGS} tags")
    for tag in value:
        if len(tag) > MAX_TAG_CHARS * 2:
            raise ValueError(f"each tag is at most {MAX_TAG_CHARS} characters")
    return value


LISTING_EXAMPLE: JsonDict = {
    "title": "Python for data analysis",
    "description": "Pandas, notebooks and plotting, from your own data. Weekly 1-hour sessions.",
    "category": "programming",
    "tags": ["python", "pandas", "Data Science"],
    "level": "beginner",
    "mode": "online",
}


class ListingIn(StrictModel):
    """A new listing. Tags are normalised (see docs/marketplace.md): at most
    10 distinct tags of at most 30 characters each after normalisation."""

    model_config = ConfigDict(json_schema_extra={"examples": [LISTING_EXAMPLE]})

    title: SingleLine = Field(min_length=MIN_TITLE, max_length=MAX_TITLE)
    description: MultiLine = Field("", max_length=MAX_DESCRIPTION)
    category: Category
    tags: list[SingleLine] = Field(default_factory=list)
    level: ListingLevel = "all"
    mode: ListingMode = "online"

    _tag_list = field_validator("tags")(_tags)


class ListingPatch(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"title": "Python for data analysis (evenings)", "tags": ["python", "pandas"]},
    ]})

    title: SingleLine | None = Field(None, min_length=MIN_TITLE, max_length=MAX_TITLE)
    description: MultiLine | None = Field(None, max_length=MAX_DESCRIPTION)
    category: Category | None = None
    tags: list[SingleLine] | None = None
    level: ListingLevel | None = None
    mode: ListingMode | None = None

    _tag_list = field_validator("tags")(_tags)


class UserRef(BaseModel):
    id: str
    display_name: str


class Rating(BaseModel):
    average: float | None = Field(None, description="Mean rating 1-5, null when unrated")
    count: int = 0


class ListingOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "665f1c2e8b3e4a0012345678",
        "owner": {"id": "665f1c2e8b3e4a0012340000", "display_name": "Ada"},
        **{**LISTING_EXAMPLE, "tags": ["python", "pandas", "data-science"]},
        "status": "active", "rating": {"average": 4.5, "count": 2},
        "created_at": "2025-01-05T10:00:00.000Z", "updated_at": "2025-01-05T10:00:00.000Z",
    }]})

    id: str
    owner: UserRef
    title: str
    description: str
    category: Category
    tags: list[str]
    level: ListingLevel
    mode: ListingMode
    status: Literal["active", "hidden"] = "active"
    rating: Rating
    score: int | None = Field(None, description="Search relevance, when searching")
    created_at: datetime
    updated_at: datetime


class ListingPage(BaseModel):
    items: list[ListingOut]
    next_cursor: str | None = None


class ListingQuery(PageQuery):
    q: str | None = Field(None, max_length=MAX_QUERY, description="Words to search for")
    category: Category | None = None
    tag: str | None = Field(None, max_length=MAX_TAG_CHARS * 2)
    owner: str | None = Field(None, max_length=64, description="Owner user id")
    level: ListingLevel | None = None
    mode: ListingMode | None = None
    sort: Literal["relevance", "newest"] | None = Field(
        None, description="Default: relevance when `q` is given, else newest")


class CategoryOut(BaseModel):
    id: str
    name: str


class CategoryList(BaseModel):
    items: list[CategoryOut]


class RequestIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"message": "Hi! I'd love to learn pandas. Weekday evenings work for me."},
    ]})

    message: MultiLine = Field("", max_length=MAX_REQUEST_MESSAGE)


class ListingRef(BaseModel):
    id: str
    title: str


class RequestOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "665f1d008b3e4a0012349999",
        "listing": {"id": "665f1c2e8b3e4a0012345678", "title": "Python for data analysis"},
        "learner": {"id": "665f1c2e8b3e4a0012341111", "display_name": "Grace"},
        "teacher": {"id": "665f1c2e8b3e4a0012340000", "display_name": "Ada"},
        "message": "Hi! I'd love to learn pandas.", "status": "accepted",
        "room_id": "665f1d108b3e4a001234aaaa", "reviewed": False,
        "created_at": "2025-01-05T10:00:00.000Z", "updated_at": "2025-01-05T11:00:00.000Z",
    }]})

    id: str
    listing: ListingRef
    learner: UserRef
    teacher: UserRef
    message: str
    status: RequestStatus
    room_id: str | None = None
    reviewed: bool = False
    created_at: datetime
    updated_at: datetime


class RequestPage(BaseModel):
    items: list[RequestOut]
    next_cursor: str | None = None


class RequestQuery(PageQuery):
    role: Literal["incoming", "outgoing"] | None = Field(
        None, description="incoming: I teach; outgoing: I learn; omitted: both")
    status: RequestStatus | None = None


class ReviewIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"rating": 5, "comment": "Clear explanations and great exercises."},
    ]})

    rating: int = Field(ge=1, le=5)
    comment: MultiLine = Field("", max_length=MAX_REVIEW_COMMENT)


class ReviewOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "665f1e008b3e4a001234bbbb", "listing_id": "665f1c2e8b3e4a0012345678",
        "request_id": "665f1d008b3e4a0012349999",
        "reviewer": {"id": "665f1c2e8b3e4a0012341111", "display_name": "Grace"},
        "rating": 5, "comment": "Clear explanations and great exercises.",
        "created_at": "2025-01-06T10:00:00.000Z",
    }]})

    id: str
    listing_id: str
    request_id: str
    reviewer: UserRef
    rating: int
    comment: str
    created_at: datetime


class ReviewPage(BaseModel):
    items: list[ReviewOut]
    next_cursor: str | None = None


class MatchOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user": {"id": "665f1c2e8b3e4a0012340000", "display_name": "Ada"},
        "score": 17, "mutual": True,
        "they_teach": ["Python"], "you_teach": ["Spanish"],
        "reason": "Skill swap: Ada can teach you Python and wants to learn Spanish from you.",
    }]})

    user: UserRef
    score: int
    mutual: bool
    they_teach: list[str] = Field(description="Skills you want that they offer")
    you_teach: list[str] = Field(description="Skills they want that you offer")
    reason: str
    why: str | None = Field(
        None, description="With SKILLSHARE_AI_PROVIDER=gemini: a short explanation written "
                          "by Gemini from the skill names, once made (else absent or null)")


class MatchPage(BaseModel):
    items: list[MatchOut]
    next_cursor: str | None = None


class ReasonIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "Spam"}]})

    reason: MultiLine = Field("", max_length=MAX_REASON)


class RoleIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "admin"}]})

    role: Literal["user", "admin"]


class AdminUserOut(BaseModel):
    id: str
    display_name: str
    role: Literal["user", "admin"]
    status: Literal["active", "deleted", "banned"]


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "665f1f008b3e4a001234cccc", "action": "user.ban",
        "actor_id": "665f1c2e8b3e4a0012340001", "target": "665f1c2e8b3e4a0012341111",
        "ip": "203.0.113.7", "request_id": "3f2a9c0d1e2b3c4d5e6f7a8b",
        "at": "2025-01-06T10:00:00.000Z", "details": {"reason": "Spam"},
    }]})

    id: str
    action: str
    actor_id: str | None
    target: str | None
    ip: str | None
    request_id: str | None
    at: datetime
    details: dict[str, Any] = {}


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = None


class AuditQuery(PageQuery):
    action: str | None = Field(None, max_length=64, examples=["user.ban"])
    actor_id: str | None = Field(None, max_length=64)


class UserByEmailQuery(StrictModel):
    email: str = Field(..., min_length=3, max_length=320, examples=["ada@example.com"])


class AdminUserWithEmailOut(AdminUserOut):
    email: str | None


class AdminUserList(BaseModel):
    items: list[AdminUserWithEmailOut]
