"""SKILLSHARE_AI_PROVIDER=gemini: the real google-genai client against a
local server speaking the Gemini REST API (tests/support/gemini.py).
Everything but Gemini is real: the app, the embedded database, the worker."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from server.config import ConfigError, load_settings
from server.keys import DB, EMBEDDER
from tests.support.gemini import API_KEY, FakeGemini
from tests.support.market import create_listing, new_user, page_all

TIMEOUT = 0.5


def skills(*names):
    return [{"name": n, "level": "intermediate"} for n in names]


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    server = FakeGemini()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def ai_client(make_client, gemini):
    async def factory(**overrides):
        values = {"ai_provider": "gemini", "gemini_api_key": API_KEY,
                  "gemini_base_url": gemini.url, "ai_timeout": TIMEOUT, **overrides}
        return await make_client(**values)
    return factory


async def drain(client) -> None:
    """Let the embedding worker finish what is pending now."""
    while await client.app[EMBEDDER].run_once():
        pass


async def metric(client, name: str, **labels: str) -> float:
    text = await (await client.get("/metrics")).text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def guitar_shop(client):
    ada = await new_user(client, "Ada Lovelace")
    tele = await create_listing(client, ada, title="Telecaster twang: country licks",
                                description="Chicken picking and hybrid picking.",
                                category="music", tags=["country"])
    strum = await create_listing(client, ada, title="Strumming on a six-string",
                                 description="Open chords.", category="music", tags=[])
    await create_listing(client, ada, title="Python for beginners", tags=["python"])
    return ada, tele, strum


def test_gemini_without_a_key_fails_start_up_with_one_line():
    with pytest.raises(ConfigError) as err:
        load_settings(ai_provider="gemini", gemini_api_key="")
    assert str(err.value) == ("SKILLSHARE_GEMINI_API_KEY is required when "
                              "SKILLSHARE_AI_PROVIDER=gemini")


async def test_local_default_finds_no_semantic_only_listing(make_client):
    client = await make_client()
    _, tele, strum = await guitar_shop(client)
    ids = [i["id"] for i in await page_all(client, "/api/v1/skills", q="guitar")]
    assert strum["id"] in ids and tele["id"] not in ids
    assert EMBEDDER in client.app and client.app[EMBEDDER] is None


async def test_search_blends_embeddings_stored_with_the_listing(ai_client, gemini):
    client = await ai_client()
    _, tele, strum = await guitar_shop(client)
    await drain(client)
    stored = await client.app[DB]["listings"].find_one({"_id": tele["id"]})
    assert len(stored["embedding"]) == 64 and stored["embed_pending"] is False
    assert gemini.calls("batchEmbedContents") >= 1

    items = await page_all(client, "/api/v1/skills", q="guitar")
    ids = [i["id"] for i in items]
    assert ids[:2] == [strum["id"], tele["id"]]  # vocabulary + similarity, then similarity
    assert len(ids) == 2  # Python: neither words nor meaning
    paged = await page_all(client, "/api/v1/skills", q="guitar", limit="1")
    assert [i["id"] for i in paged] == ids  # ranking snapshot as before

    # nothing pending: the worker sends nothing more
    sent = len(gemini.bodies)
    await drain(client)
    assert len(gemini.bodies) == sent


async def test_an_edit_is_embedded_again_and_identical_texts_only_once(ai_client, gemini):
    client = await ai_client()
    ada = await new_user(client, "Ada")
    first = await create_listing(client, ada, title="Jamon carving", tags=["food"],
                                 category="cooking", description="Slicing.")
    await create_listing(client, ada, title="Jamon carving", tags=["food"],
                         category="cooking", description="Slicing.")
    await drain(client)
    texts = [b for b in gemini.bodies if "Jamon carving" in b]
    assert len(texts) == 1 and texts[0].count("Jamon carving") == 1  # cached by content hash
    resp = await client.patch(f"/api/v1/skills/{first['id']}", json={"description": "Knives."},
                              headers=ada["headers"])
    assert resp.status == 200
    await drain(client)
    assert any("Knives." in b for b in gemini.bodies)
    stored = await client.app[DB]["listings"].find_one({"_id": first["id"]})
    assert stored["embed_pending"] is False


@pytest.mark.parametrize("mode", ["429", "500", "hang"])
async def test_provider_failures_rank_locally_and_are_counted(ai_client, gemini, mode):
    client = await ai_client()
    _, tele, strum = await guitar_shop(client)
    await drain(client)
    gemini.mode = mode
    resp = await client.get("/api/v1/skills", params={"q": "guitar lessons"})
    assert resp.status == 200
    ids = [i["id"] for i in (await resp.json())["items"]]
    assert strum["id"] in ids and tele["id"] not in ids  # the local ranking
    assert await metric(client, "skillshare_ai_fallbacks_total", where="search") == 1
    outcome = {"429": "rate_limited", "500": "server_error", "hang": "timeout"}[mode]
    assert await metric(client, "skillshare_ai_calls_total", op="query", outcome=outcome) == 1


async def test_a_bad_key_ranks_locally(ai_client, gemini):
    client = await ai_client(gemini_api_key="not-the-key")
    _, tele, strum = await guitar_shop(client)
    resp = await client.get("/api/v1/skills", params={"q": "guitar"})
    assert resp.status == 200
    ids = [i["id"] for i in (await resp.json())["items"]]
    assert strum["id"] in ids and tele["id"] not in ids
    assert await metric(client, "skillshare_ai_calls_total", op="query", outcome="auth") == 1
    me = await new_user(client, "Me", skills_wanted=skills("Guitar"))
    resp = await client.get("/api/v1/matches", headers=me["headers"])
    assert resp.status == 200


async def test_budgets_bound_the_calls_per_user(ai_client, gemini):
    client = await ai_client(ai_user_limit="1/hour")
    await guitar_shop(client)
    for q in ("guitar", "country guitar"):
        resp = await client.get("/api/v1/skills", params={"q": q})
        assert resp.status == 200
    assert await metric(client, "skillshare_ai_calls_total", op="query", outcome="budget") == 1
    assert sum(1 for b in gemini.bodies if "country guitar" in b) == 0


async def test_matches_blend_similar_skills_and_carry_a_cached_why(ai_client, gemini):
    client = await ai_client()
    me = await new_user(client, "Me", skills_wanted=skills("Guitar"),
                        skills_offered=skills("Cooking"))
    tele = await new_user(client, "Tele", skills_offered=skills("Telecaster"))
    same = await new_user(client, "Same", skills_offered=skills("Six-string"),
                          skills_wanted=skills("Jamon"))
    await new_user(client, "Other", skills_offered=skills("Knitting"))
    await drain(client)
    items = await page_all(client, "/api/v1/matches", me["headers"])
    assert [i["user"]["id"] for i in items] == [same["id"], tele["id"]]
    assert items[1]["they_teach"] == ["Telecaster"]
    assert items[0]["mutual"] is True and items[0]["you_teach"] == ["Cooking"]
    assert all(i.get("why") is None for i in items)  # asked for, written in the background
    await drain(client)
    items = await page_all(client, "/api/v1/matches", me["headers"])
    assert all(i["why"].startswith("Their skills fit") for i in items)
    calls = gemini.calls("generateContent")
    await page_all(client, "/api/v1/matches", me["headers"])
    await drain(client)
    assert gemini.calls("generateContent") == calls  # generated once


async def test_no_email_name_or_message_reaches_gemini(ai_client, gemini):
    client = await ai_client()
    learner = await new_user(client, "Zebulon Quintavalle", skills_wanted=skills("Guitar"),
                             skills_offered=skills("Spanish"),
                             bio="Reach me at zebulon.private@example.org")
    teacher = await new_user(client, "Philippa Marchbanks", skills_offered=skills("Guitar"),
                             skills_wanted=skills("Español"))
    listing = await create_listing(client, teacher, title="Telecaster twang", tags=["guitar"],
                                   category="music", description="Country licks.")
    secret = "my phone is 0123 secret-request-text"
    resp = await client.post(f"/api/v1/skills/{listing['id']}/requests",
                             json={"message": secret}, headers=learner["headers"])
    assert resp.status == 201, await resp.text()
    await client.get("/api/v1/skills", params={"q": f"guitar {learner['email']}"},
                     headers=learner["headers"])
    await drain(client)
    await page_all(client, "/api/v1/matches", learner["headers"])
    await page_all(client, "/api/v1/matches", teacher["headers"])
    await drain(client)
    assert gemini.bodies, "the test must exercise the provider"
    sent = "\n".join(gemini.bodies).lower()
    assert "telecaster twang" in sent  # listing text is what goes
    forbidden = [learner["email"], teacher["email"], "zebulon", "quintavalle", "philippa",
                 "marchbanks", "secret-request-text", "zebulon.private@example.org"]
    for word in forbidden:
        assert word.lower() not in sent, word
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", sent)


async def test_data_from_before_gemini_is_back_filled(make_client, ai_client, gemini):
    local = await make_client()
    ada = await new_user(local, "Ada", skills_offered=skills("Telecaster"))
    listing = await create_listing(local, ada, title="Country licks", category="music",
                                   tags=["telecaster"], description="Twang.")
    # as stored before this change: no embedding fields, no skill names in the index
    await local.app[DB]["listings"].update_one({"_id": listing["id"]},
                                               {"$unset": {"embed_pending": ""}})
    assert "names" not in await local.app[DB]["skill_index"].find_one({"_id": ada["id"]})

    client = await ai_client()  # same database, now with Gemini
    await client.app[EMBEDDER].backfill()
    await drain(client)
    stored = await client.app[DB]["listings"].find_one({"_id": listing["id"]})
    assert stored["embedding"] and stored["embed_pending"] is False
    entry = await client.app[DB]["skill_index"].find_one({"_id": ada["id"]})
    assert entry["names"] == ["Telecaster"] and entry["embed_pending"] is False
    me = await new_user(client, "Me", skills_wanted=skills("Guitar"))
    items = await page_all(client, "/api/v1/matches", me["headers"])
    assert [i["user"]["id"] for i in items] == [ada["id"]]
