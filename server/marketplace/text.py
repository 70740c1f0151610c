"""Normalisation rules shared by listings, search and matching (documented
in docs/marketplace.md): categories, tags, search tokens and skill keys."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal, TypeAlias, get_args

# The ids the API accepts (request and response models); CATEGORIES names each,
# in the same order (tests/marketplace/test_text.py).
Category: TypeAlias = Literal[
    "programming", "data", "design", "music", "languages", "business", "writing",
    "cooking", "fitness", "crafts", "science", "other",
]
ListingLevel: TypeAlias = Literal["all", "beginner", "intermediate", "advanced", "expert"]
ListingMode: TypeAlias = Literal["online", "in_person", "hybrid"]

CATEGORIES: dict[Category, str] = {
    "programming": "Programming & software",
    "data": "Data & AI",
    "design": "Design & visual arts",
    "music": "Music",
    "languages": "Languages",
    "business": "Business & finance",
    "writing": "Writing & communication",
    "cooking": "Cooking & food",
    "fitness": "Fitness & wellbeing",
    "crafts": "Crafts & DIY",
    "science": "Science & maths",
    "other": "Other",
}
LEVELS: tuple[ListingLevel, ...] = get_args(ListingLevel)
MODES: tuple[ListingMode, ...] = get_args(ListingMode)

MAX_TAGS = 10
MAX_TAG_CHARS = 30
MAX_QUERY_TOKENS = 8
# A trailing version number is dropped only if this much is left ("python3"
# -> "python", but "s3" and "es6" stay as they are).
MIN_STEM_AFTER_VERSION = 3

STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "i", "in", "into", "is", "it", "learn", "learning", "me", "my", "of", "on", "or", "teach", "teaching", "the", "to", "with", "you", "your"]
)
_WORD = re.compile(r"[a-z0-9]+(?:\+\+|#)?")
_VERSION_SUFFIX = re.compile(r"^(.*?[a-z+#])\s*v?\d+(?:\.\d+)*$")
_TAG_DROP = re.compile(r"[^a-z0-9+#.\-]")
_SKILL_DROP = re.compile(r"[^a-z0-9+#]")


def fold(text: str) -> str:
    """Lower case, accents removed, compatibility forms unified."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def strip_version(word: str) -> str:
    match = _VERSION_SUFFIX.match(word)
    if match and len(match.group(1).strip()) >= MIN_STEM_AFTER_VERSION:
        return match.group(1).strip()
    return word


def _stem(word: str) -> str:
    """Plural 's' off ("lessons" -> "lesson"), versions off ("python3")."""
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return strip_version(word)


def search_tokens(text: str) -> list[str]:
    """Distinct search tokens of a text, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(fold(text)):
        if word in STOPWORDS:
            continue
        seen.setdefault(_stem(word), None)
    return list(seen)


def normalise_tag(tag: str) -> str:
    """"  Machine Learning " -> "machine-learning"; "" when nothing is left."""
    value = "-".join(fold(tag).replace("_", " ").split())
    value = _TAG_DROP.sub("", value)
    value = re.sub(r"-{2,}", "-", value).strip("-.")
    return value[:MAX_TAG_CHARS].rstrip("-.")


def normalise_tags(tags: list[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        value = normalise_tag(tag)
        if value and value not in out:
            out.append(value)
    return out


def tag_tokens(tags: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        for token in search_tokens(tag.replace("-", " ")) + [tag]:
            seen.setdefault(token, None)
    return list(seen)


SKILL_KEY_CACHE_SIZE = 8192  # distinct skill names and tags kept folded (rankings fold every candidate's)


@lru_cache(maxsize=SKILL_KEY_CACHE_SIZE)
def skill_key(name: str) -> str:
    """The equality key of a skill name: case, accents, spaces and
    punctuation ignored, a trailing version number dropped.
    "Python", " python ", "Python 3", "python3" -> "python";
    "Node.js", "nodejs" -> "nodejs"; "C++" -> "c++"."""
    folded = strip_version(" ".join(fold(name).split()))
    return _SKILL_DROP.sub("", folded)
