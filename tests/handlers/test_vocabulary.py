"""The skill vocabulary in search and matches, through the API (issue 14)."""

from __future__ import annotations

from server.marketplace.text import skill_key
from server.marketplace.vocabulary import default_vocabulary
from tests.support.market import create_listing, new_user, page_all


def skills(*names):
    return [{"name": n, "level": "intermediate"} for n in names]


async def test_guitar_finds_the_six_string_listing(client):
    ada = await new_user(client, "Ada")
    strum = await create_listing(
        client, ada, title="Strumming on a six-string: your first songs",
        description="Open chords on an acoustic instrument.", category="music", tags=[])
    blues = await create_listing(client, ada, title="Blues guitar licks", category="music",
                                 description="Bends and slides.", tags=["guitar"])
    await create_listing(client, ada, title="Python for beginners", tags=["python"])
    uke = await create_listing(client, ada, title="Ukulele in a weekend", category="music",
                               description="Four chords.", tags=["uke"])
    items = await page_all(client, "/api/v1/skills", q="guitar")
    ids = [i["id"] for i in items]
    assert ids[:2] == [blues["id"], strum["id"]]  # a synonym is the same skill; ties: newer
    assert uke["id"] in ids[2:]  # related skill, lower
    assert items[0]["score"] == items[1]["score"] > items[-1]["score"] > 0
    # paging over the expanded ranking keeps the snapshot guarantees
    paged = await page_all(client, "/api/v1/skills", q="guitar", limit="1")
    assert [i["id"] for i in paged] == ids


async def test_espanol_and_js_find_their_synonyms(client):
    ada = await new_user(client, "Ada")
    spanish = await create_listing(client, ada, title="Spanish grammar made simple",
                                   category="languages", tags=["spanish"])
    js = await create_listing(client, ada, title="Modern JavaScript", tags=["web"])
    assert [i["id"] for i in await page_all(client, "/api/v1/skills", q="español")] \
        == [spanish["id"]]
    assert js["id"] in [i["id"] for i in await page_all(client, "/api/v1/skills", q="JS")]


async def test_matches_through_synonyms_and_related_skills(client):
    me = await new_user(client, "Me", skills_offered=skills("Español"),
                        skills_wanted=skills("Guitar"))
    same = await new_user(client, "Same", skills_offered=skills("Six-string"))
    near = await new_user(client, "Near", skills_offered=skills("Ukulele"))
    swap = await new_user(client, "Swap", skills_offered=skills("acoustic guitar"),
                          skills_wanted=skills("Spanish"))
    await new_user(client, "Other", skills_offered=skills("Knitting"))
    items = await page_all(client, "/api/v1/matches", me["headers"])
    assert [i["user"]["id"] for i in items] == [swap["id"], same["id"], near["id"]]
    assert items[0]["mutual"] is True and items[0]["you_teach"] == ["Español"]
    assert items[1]["they_teach"] == ["Six-string"]
    assert items[2]["they_teach"] == ["Ukulele"]
    assert items[1]["score"] > items[2]["score"]


def test_skill_lookups_answer_from_the_loaded_vocabulary():
    """same_skill / related_skills (asked per pair of skills in every
    ranking) are tables built at load: a key is its own skill, its
    synonyms share one answer, related skills never include the same
    skill, and a key the vocabulary does not know is only itself."""
    vocabulary = default_vocabulary()
    guitar = vocabulary.same_skill(skill_key("guitar"))
    assert skill_key("six-string") in guitar
    assert vocabulary.same_skill(skill_key("six-string")) == guitar
    assert skill_key("ukulele") in vocabulary.related_skills(skill_key("guitar"))
    for key in (skill_key("guitar"), skill_key("python"), skill_key("espanol")):
        assert key in vocabulary.same_skill(key)
        assert not vocabulary.same_skill(key) & vocabulary.related_skills(key)
    assert vocabulary.same_skill("zz-unknown-skill") == frozenset({"zz-unknown-skill"})
    assert vocabulary.related_skills("zz-unknown-skill") == frozenset()
