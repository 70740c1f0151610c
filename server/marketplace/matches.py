"""Matching people by skills: who offers what I want, and wants what I
offer. A mutual swap scores highest.

Skill names compare by ``skill_key`` (docs/marketplace.md). What a user
offers is their profile's ``skills_offered`` plus the tags of their visible
listings; what they want is ``skills_wanted``. The ``skill_index`` store
keeps those keys per user so candidates are found by index; the scores and
reasons are computed from the live profiles when the first page is asked
for; that ranking is kept in a ranking snapshot (``snapshots.py``) that
later pages read, so they never re-rank."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ai.service import SemanticService, safe_text
from ..ai.vectors import cosine
from ..clock import Clock
from ..errors import Unauthorized, ValidationFailed
from ..read_cache import MATCHES, ReadCache
from ..storage.ids import decode_cursor
from ..storage.listings import ListingStore
from ..storage.skill_index import MAX_MATCH_CANDIDATES, SkillIndexStore
from ..storage.users import ACTIVE, UserStore
from .people import active_users
from .results import Match, Page
from .snapshots import EXPIRED, RankingSnapshots, StoredRanking, is_snapshot_cursor
from .text import skill_key
from .vocabulary import Vocabulary, default_vocabulary

MUTUAL_BONUS = 10
THEY_TEACH_WEIGHT = 3
YOU_TEACH_WEIGHT = 2
RELATED_SKILL_WEIGHT = 1  # a related skill (vocabulary) instead of the same one
# With Gemini: an offered skill this similar to a wanted one (embeddings of
# the two names) is a match too, worth up to SEMANTIC_SKILL_WEIGHT points.
SEMANTIC_SKILL_WEIGHT = 2
MIN_SKILL_SIMILARITY = 0.6
MAX_SEMANTIC_PEOPLE = 500  # most recently indexed people also compared by embedding
MAX_RANKED = 1000  # people ranked (and kept in a snapshot) per first page


def _skills(entries: list[dict[str, Any]] | None) -> dict[str, str]:
    """key -> display name, first spelling wins."""
    out: dict[str, str] = {}
    for entry in entries or []:
        name = str(entry.get("name", "")).strip()
        key = skill_key(name)
        if key:
            out.setdefault(key, name)
    return out


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def reason_for(name: str, they_teach: list[str], you_teach: list[str]) -> str:
    if they_teach and you_teach:
        return (f"Skill swap: {name} can teach you {_join(they_teach)} and wants to learn "
                f"{_join(you_teach)} from you.")
    if they_teach:
        return f"{name} can teach you {_join(they_teach)}."
    return f"{name} wants to learn {_join(you_teach)}, which you offer."


class MatchService:
    def __init__(
        self, *, users: UserStore, listings: ListingStore, index: SkillIndexStore,
        snapshots: RankingSnapshots, clock: Clock, vocabulary: Vocabulary | None = None,
        semantic: SemanticService | None = None,
        on_change: Callable[[], None] | None = None,
        request_why: Callable[[str], None] | None = None,
        cache: ReadCache | None = None,
    ) -> None:
        self._cache = cache
        self._semantic = semantic
        self._on_change = on_change
        self._request_why = request_why
        self._vocabulary = vocabulary or default_vocabulary()
        self._users = users
        self._snapshots = snapshots
        self._listings = listings
        self._index = index
        self._clock = clock

    async def _offered(self, user: dict[str, Any], tags: list[str] | None = None
                       ) -> dict[str, str]:
        if tags is None:
            tags = (await self._listings.tags_by_owner([user["_id"]])).get(user["_id"], [])
        offered = _skills(user.get("skills_offered"))
        for tag in tags:
            key = skill_key(tag)
            if key:
                offered.setdefault(key, tag)
        return offered

    async def refresh(self, user_id: str) -> None:
        user = await self._users.get(user_id)
        if user is None or user.get("status") != ACTIVE:
            await self._index.remove(user_id)
            return
        await self.refresh_user(user)

    async def refresh_user(self, user: dict[str, Any]) -> None:
        """Re-index one user from their profile document (profile update hook)."""
        if user.get("status") != ACTIVE:
            await self._index.remove(user["_id"])
            return
        offered, wanted = await self._offered(user), _skills(user.get("skills_wanted"))
        await self._index.put(user["_id"], offered=list(offered), wanted=list(wanted),
                              now=self._clock.now(), names=self._embeddable(offered, wanted))
        self._changed()
        if self._on_change is not None:
            self._on_change()

    def _changed(self) -> None:
        """Someone's skills changed: every cached ranking may be stale."""
        if self._cache is not None:
            self._cache.changed(MATCHES)

    async def _skills_of(self, people: list[dict[str, Any]]
                         ) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
        """Each person's (offered, wanted) skills, key -> name; kept in the
        read cache until anyone's skills change (``_changed``)."""
        keys = [f"skills:{p['_id']}" for p in people]
        cached, version = (self._cache.get_many(MATCHES, keys) if self._cache
                           else ({}, 0))
        missing = [p for p, key in zip(people, keys, strict=True) if key not in cached]
        listing_tags = await self._listings.tags_by_owner([p["_id"] for p in missing]) \
            if missing else {}
        loaded = {
            f"skills:{p['_id']}": (await self._offered(p, listing_tags.get(p["_id"], [])),
                                   _skills(p.get("skills_wanted")))
            for p in missing}
        if self._cache is not None and loaded:
            self._cache.put_many(MATCHES, loaded, version)
        found = {**cached, **loaded}
        return {p["_id"]: found[key] for p, key in zip(people, keys, strict=True)}

    async def _check_indexed(self, user_id: str, offered: dict[str, str],
                             wanted: dict[str, str]) -> None:
        """Fix the caller's skill index entry if it is stale (others'
        rankings would miss them); checked once per person until anyone's
        skills change (a marker in the read cache), not on every ranking."""
        marker = f"indexed:{user_id}"
        if self._cache is not None and self._semantic is None:
            known, version = self._cache.get_many(MATCHES, [marker])
            if known:
                return
        if await self._index.put_if_changed(
                user_id, offered=list(offered), wanted=list(wanted),
                now=self._clock.now(), names=self._embeddable(offered, wanted)):
            self._changed()  # my entry was stale: others' rankings may miss me
        elif self._cache is not None and self._semantic is None:
            self._cache.put_many(MATCHES, {marker: True}, version)

    def _embeddable(self, offered: dict[str, str], wanted: dict[str, str]) -> list[str] | None:
        return _names(offered, wanted) if self._semantic is not None else None

    async def remove(self, user_id: str) -> None:
        await self._index.remove(user_id)
        self._changed()

    async def matches(self, user_id: str, *, limit: int, cursor: str | None) -> Page[Match]:
        me = await self._users.get_public(user_id)  # the read cache's copy, kept current
        if me is None:
            raise Unauthorized("This account is no longer active.")
        position = decode_cursor(cursor)
        if position is None and self._cache is not None and self._semantic is None:
            # Ranked and stored once per person, page size and window (a
            # snapshot write per first page otherwise); dropped with any
            # skill change on every node, like the rankings.
            window = self._snapshots.window()
            stored = await self._cache.read(
                MATCHES, ("first", user_id, limit, window),
                lambda: self._store_first(me, limit=limit, window=window))
            page = self._snapshots.first_page_of(stored, viewer_id=user_id)
        elif position is None:
            ranked = await self._rank(me)
            page = await self._snapshots.first_page(
                viewer_id=user_id, kind="matches", key="matches",
                ids=[r[0] for r in ranked], extras=[r[1] for r in ranked], limit=limit,
            )
        elif is_snapshot_cursor(position):
            page = await self._snapshots.page(position, viewer_id=user_id, kind="matches",
                                              key="matches", limit=limit)
        elif isinstance(position.get("s"), int):  # a (score, id) cursor from before snapshots
            raise ValidationFailed.field("cursor", EXPIRED)
        else:
            raise ValidationFailed.field("cursor", "Invalid cursor.")
        # People banned or deleted since the first page are gone; names are live.
        people = await active_users(self._users, page.ids)
        items = [
            _match(people[person_id], extra)
            for person_id, extra in zip(page.ids, page.extras, strict=True) if person_id in people
        ]
        if self._semantic is not None:
            await self._add_whys(items)
        return Page(items, page.next_cursor)

    async def _store_first(self, me: dict[str, Any], *, limit: int, window: int
                           ) -> StoredRanking:
        ranked = await self._rank(me)
        return await self._snapshots.store(
            viewer_id=me["_id"], kind="matches", key="matches", ids=[r[0] for r in ranked],
            extras=[r[1] for r in ranked], limit=limit, window=window)

    async def _add_whys(self, items: list[Match]) -> None:
        """Each item's cached "why"; missing ones are asked of the worker
        (written once, in the background: a later request shows them)."""
        prompts = [why_prompt(i.ranked["they_teach"], i.ranked["you_teach"]) for i in items]
        cached = await self._semantic.whys(prompts) if self._semantic else {}
        for item, prompt in zip(items, prompts, strict=True):
            item.explained, item.why = True, cached.get(prompt)
            if item.why is None and self._request_why is not None:
                self._request_why(prompt)

    def _expand(self, skills: dict[str, str]) -> list[str]:
        """Skill keys plus their synonyms and related skills (vocabulary)."""
        out: dict[str, None] = dict.fromkeys(skills)
        for key in skills:
            out.update(dict.fromkeys(sorted(self._vocabulary.same_skill(key))))
            out.update(dict.fromkeys(sorted(self._vocabulary.related_skills(key))))
        return list(out)

    def _meet(self, wanted: dict[str, str], offered: dict[str, str]
              ) -> tuple[list[str], list[str]]:
        """Offered names meeting a wanted skill — the same skill (by key or
        vocabulary synonym) first, else a related one — and which of them
        are only related."""
        names: list[str] = []
        related: list[str] = []
        for key in wanted:
            # Most pairs share nothing: ruled out by a set test before any list is built.
            same_keys = self._vocabulary.same_skill(key)
            if same_keys.isdisjoint(offered):
                related_keys = self._vocabulary.related_skills(key)
                if related_keys.isdisjoint(offered):
                    continue
                same, near = [], [n for k, n in offered.items() if k in related_keys]
            else:
                same, near = [n for k, n in offered.items() if k in same_keys], []
            for name in same + near:
                if name not in names:
                    names.append(name)
                    if not same:
                        related.append(name)
        return names, related

    def _reach(self, wanted: dict[str, str]) -> frozenset[str]:
        """Every skill key meeting one of ``wanted`` (the same skill or a related one)."""
        return frozenset().union(*(self._vocabulary.same_skill(key)
                                   | self._vocabulary.related_skills(key) for key in wanted))

    def _meets_any(self, wanted: dict[str, str], offered: dict[str, str],
                   verdicts: dict[str, bool]) -> bool:
        """Whether ``_meet(wanted, offered)`` finds anything; ``verdicts``
        keeps each wanted key's answer for the same ``offered``."""
        for key in wanted:
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = verdicts[key] = not (
                    self._vocabulary.same_skill(key).isdisjoint(offered)
                    and self._vocabulary.related_skills(key).isdisjoint(offered))
            if verdict:
                return True
        return False

    async def _candidate_ids(self, user_id: str, *, offered: list[str], wanted: list[str]
                             ) -> list[str]:
        """People offering one of ``wanted`` or wanting one of ``offered``
        (not ``user_id``). Who holds each skill is kept in the read cache
        and shared by everyone's rankings until anyone's skills change
        (``_changed``), so most first rankings query no candidates."""
        if self._cache is None:
            return [c["_id"] for c in await self._index.candidates(
                user_id, offered=offered, wanted=wanted)]
        found: dict[str, None] = {}
        for side, keys in (("offered", wanted), ("wanted", offered)):
            names = [f"holders:{side}:{key}" for key in keys]
            cached, version = self._cache.get_many(MATCHES, names)
            missing = [key for key, name in zip(keys, names, strict=True) if name not in cached]
            loaded = await self._index.holders(side, missing) if missing else {}
            if loaded:
                self._cache.put_many(MATCHES, {f"holders:{side}:{key}": tuple(ids)
                                               for key, ids in loaded.items()}, version)
            for key, name in zip(keys, names, strict=True):
                found.update(dict.fromkeys(cached[name] if name in cached else loaded[key]))
        found.pop(user_id, None)
        return list(found)[:MAX_MATCH_CANDIDATES]

    async def _rank(self, me: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Everyone matching ``me`` now, best first (ties by user id), as
        ``(user id, {score, mutual, they_teach, you_teach})``."""
        user_id = me["_id"]
        my_offered, my_wanted = (await self._skills_of([me]))[user_id]
        await self._check_indexed(user_id, my_offered, my_wanted)
        found = await self._candidate_ids(
            user_id, offered=self._expand(my_offered), wanted=self._expand(my_wanted))
        if self._semantic is not None:
            known = set(found)
            found += [c["_id"] for c in
                      await self._index.recent(user_id, limit=MAX_SEMANTIC_PEOPLE)
                      if c["_id"] not in known]
        people = list((await active_users(self._users, found)).values())
        profiles = await self._skills_of(people)
        vectors: dict[str, list[float]] = {}
        if self._semantic is not None:
            names = _names(my_offered, my_wanted)
            for offered, wanted in profiles.values():
                names += _names(offered, wanted)
            vectors = await self._semantic.vectors(names, user=user_id, where="matches")
        ranked: list[tuple[str, dict[str, Any]]] = []
        # Most candidates meet me on one side only: the other side is ruled
        # out by one set test (what my wanted skills reach), or by a verdict
        # per wanted key kept for this ranking, before ``_meet`` builds lists.
        reach = self._reach(my_wanted)
        meets_mine: dict[str, bool] = {}
        for person in people:
            offered, wanted = profiles[person["_id"]]
            they_teach, they_related = (self._meet(my_wanted, offered)
                                        if not reach.isdisjoint(offered) else ([], []))
            you_teach, you_related = (self._meet(wanted, my_offered)
                                      if self._meets_any(wanted, my_offered, meets_mine)
                                      else ([], []))
            bonus = 0
            if vectors:
                for names, near, side_wanted, side_offered in (
                        (they_teach, they_related, my_wanted, offered),
                        (you_teach, you_related, wanted, my_offered)):
                    for name, similarity in _similar(side_wanted, side_offered, vectors):
                        if name not in names:
                            names.append(name)
                            near.append(name)
                            bonus += round(SEMANTIC_SKILL_WEIGHT * similarity)
            if not they_teach and not you_teach:
                continue  # stale index entry
            mutual = bool(they_teach and you_teach)
            score = (THEY_TEACH_WEIGHT * (len(they_teach) - len(they_related))
                     + YOU_TEACH_WEIGHT * (len(you_teach) - len(you_related))
                     + RELATED_SKILL_WEIGHT * (len(they_related) + len(you_related))
                     + bonus + (MUTUAL_BONUS if mutual else 0))
            ranked.append((person["_id"], {
                "score": score, "mutual": mutual, "they_teach": they_teach,
                "you_teach": you_teach,
            }))
        ranked.sort(key=lambda r: (-r[1]["score"], r[0]))
        return ranked[:MAX_RANKED]


def why_prompt(they_teach: list[str], you_teach: list[str]) -> str:
    """What Gemini is asked for a match's "why": skill names only, never
    anyone's name, e-mail or messages."""
    parts = []
    if they_teach:
        parts.append(f"The other person can teach skills the learner wants: "
                     f"{', '.join(they_teach)}.")
    if you_teach:
        parts.append(f"The other person wants to learn skills the learner offers: "
                     f"{', '.join(you_teach)}.")
    return ("Two people on a skill-exchange platform were matched. " + " ".join(parts)
            + " In one short sentence (at most 25 words), say why this is a good match. "
              "Do not use names.")


def _names(offered: dict[str, str], wanted: dict[str, str]) -> list[str]:
    """The skill names that may be embedded: what is offered, then wanted."""
    return list(dict.fromkeys([*offered.values(), *wanted.values()]))


def _similar(wanted: dict[str, str], offered: dict[str, str],
             vectors: dict[str, list[float]]) -> list[tuple[str, float]]:
    """Offered names whose embedding is close to a wanted one's."""
    out = []
    for name in offered.values():
        best = max((cosine(vectors.get(safe_text(w)), vectors.get(safe_text(name)))
                    for w in wanted.values()), default=0.0)
        if best >= MIN_SKILL_SIMILARITY:
            out.append((name, best))
    return out


def _match(person: dict[str, Any], ranked: dict[str, Any]) -> Match:
    """One match as ranked on the first page, under the person's current name."""
    return Match(person=person, ranked=ranked,
                 reason=reason_for(person["display_name"], ranked["they_teach"],
                                   ranked["you_teach"]))
