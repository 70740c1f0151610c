"""The skill vocabulary shipped with the project (``data/skill_vocabulary.txt``):
synonyms (the same skill under other words) and related skills (close
neighbours). Search expands a query with it and matches compare skills
through it (docs/marketplace.md, "Skill vocabulary").

A *term* is a tuple of search tokens (``search_tokens``), so "Six-string"
is ``("six", "string")``; a term is found in a text when all its tokens
are. A *concept* is one line of the file: its synonyms, and the terms it
is related to. Relations are made symmetric on load."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from .text import search_tokens, skill_key

Term = tuple[str, ...]
VOCABULARY_FILE = "skill_vocabulary.txt"
_NONE: frozenset[str] = frozenset()


@dataclass(slots=True)
class Concept:
    synonyms: list[Term]
    related: list[Term] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueryUnit:
    """One thing the searcher asked for: a query token, or a concept the
    query named. Scored once, by its best-matching term."""
    synonyms: tuple[Term, ...]
    related: tuple[Term, ...] = ()


class Vocabulary:
    def __init__(self, lines: list[str]) -> None:
        self._concepts: list[Concept] = []
        self._by_term: dict[Term, list[int]] = {}
        self._by_key: dict[str, list[int]] = {}
        pending: list[tuple[int, list[Term]]] = []
        raw_keys: list[set[str]] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            left, _, right = line.partition("|")
            synonyms = _terms(left)
            if not synonyms:
                continue
            index = len(self._concepts)
            self._concepts.append(Concept(synonyms))
            raw_keys.append({skill_key(part) for part in left.split(",")} - {""})
            for term in synonyms:
                self._by_term.setdefault(term, []).append(index)
            pending.append((index, _terms(right)))
        for index, related in pending:
            for term in related:
                self._relate(index, term)
        raw_keys.extend(set() for _ in range(len(self._concepts) - len(raw_keys)))
        self._keys: list[frozenset[str]] = [
            frozenset({_key(t) for t in c.synonyms} | spelled)
            for c, spelled in zip(self._concepts, raw_keys, strict=True)
        ]
        self._related_keys: list[frozenset[str]] = [
            frozenset(_key(t) for t in c.related) for c in self._concepts
        ]
        for index, keys in enumerate(self._keys):
            for key in keys:
                self._by_key.setdefault(key, []).append(index)
        # Rankings ask for these per pair of skills compared: answered from
        # tables built once (the vocabulary never changes after loading).
        self._same: dict[str, frozenset[str]] = {}
        self._related: dict[str, frozenset[str]] = {}
        for key, indexes in self._by_key.items():
            same = {key}.union(*(self._keys[i] for i in indexes))
            self._same[key] = frozenset(same)
            self._related[key] = frozenset(
                set().union(*(self._related_keys[i] for i in indexes)) - same)

    def _relate(self, index: int, term: Term) -> None:
        concept = self._concepts[index]
        if term not in concept.related and term not in concept.synonyms:
            concept.related.append(term)
        others = self._by_term.get(term)
        if others is None:  # a related term with no line of its own
            others = [len(self._concepts)]
            self._concepts.append(Concept([term]))
            self._by_term[term] = others
        for other in others:
            back = self._concepts[other]
            for synonym in concept.synonyms[:1]:
                if synonym not in back.related and synonym not in back.synonyms:
                    back.related.append(synonym)

    @property
    def size(self) -> int:
        return len(self._concepts)

    def units(self, tokens: list[str]) -> list[QueryUnit]:
        """The query as units: each concept one of its terms names, plus
        each token no concept covers."""
        present = set(tokens)
        covered: set[str] = set()
        found: list[int] = []
        for term, indexes in self._by_term.items():
            if set(term) <= present:
                covered.update(term)
                found.extend(i for i in indexes if i not in found)
        units = [QueryUnit(tuple(self._concepts[i].synonyms), tuple(self._concepts[i].related))
                 for i in sorted(found)]
        units.extend(QueryUnit(((t,),)) for t in tokens if t not in covered)
        return units

    def same_skill(self, key: str) -> frozenset[str]:
        """Skill keys naming the same skill as ``key`` (itself included)."""
        found = self._same.get(key)
        return found if found is not None else frozenset((key,))

    def related_skills(self, key: str) -> frozenset[str]:
        """Skill keys of skills related to ``key`` (not the same skill)."""
        return self._related.get(key, _NONE)


def _terms(text: str) -> list[Term]:
    out: list[Term] = []
    for part in text.split(","):
        term = tuple(search_tokens(part))
        if term and term not in out:
            out.append(term)
    return out


def _key(term: Term) -> str:
    return skill_key("".join(term))


def unit_tokens(units: list[QueryUnit]) -> list[str]:
    """Every token a matching listing must have at least one of."""
    seen: dict[str, None] = {}
    for unit in units:
        for term in unit.synonyms + unit.related:
            for token in term:
                seen.setdefault(token, None)
    return list(seen)


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    text = resources.files(__package__).joinpath("data", VOCABULARY_FILE).read_text("utf-8")
    return Vocabulary(text.splitlines())
