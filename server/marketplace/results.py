"""What the marketplace services return: stored documents with the active
people they name, and pages of them. The views in
``server/views/marketplace.py`` turn them into reply bodies. The read cache
keeps listings as cards (a ``Named`` without people), shared between
requests, so each carries ``rendered``: the views keep there what they made
of the document (per view function), and a cached listing is rendered once,
not on every hit (20 listings: ~0.6 ms of a core here, against ~0.03 ms to
serialise an already rendered page); the people it names are added on each
request, so a new name shows without dropping the card."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Named:
    """A listing, skill request or review document, and the active users it
    names by id (owner, learner and teacher, reviewer). Someone missing from
    ``people`` was deleted or banned since."""

    doc: dict[str, Any]
    people: dict[str, dict[str, Any]]
    score: int | None = None  # a listing's relevance score in a ranked search
    rendered: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def shown(self, people: dict[str, dict[str, Any]], score: int | None = None) -> Named:
        """The same document (and what was rendered of it) with these people."""
        return Named(self.doc, people, score, self.rendered)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    rendered: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(slots=True)
class Match:
    """Someone to swap skills with, as ranked on the first page (``ranked``:
    score, mutual, they_teach, you_teach), under their current name."""

    person: dict[str, Any]
    ranked: dict[str, Any]
    reason: str
    explained: bool = False  # AI explanations are on: ``why`` is shown (None until written)
    why: str | None = None  # the AI's one-line reason, once cached
