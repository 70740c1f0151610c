"""Search quality on the labelled set (labelled_set.py): nDCG@10 of the
local default beats today's ranking; BM25 is measured next to it."""

from __future__ import annotations

from tests.marketplace.labelled_set import LISTINGS, QUERIES
from tests.marketplace.ranking_quality import (
    corpus,
    mean_ndcg,
    ranker_local,
    gemini_row,
    ranker_today,
    table,
)


def test_labelled_set_is_consistent():
    for grades in QUERIES.values():
        assert set(grades) <= set(LISTINGS)
    assert len(LISTINGS) >= 30 and len(QUERIES) >= 20


def test_local_default_beats_todays_ranking():
    docs = corpus()
    today, local = mean_ndcg(ranker_today(docs)), mean_ndcg(ranker_local(docs))
    assert local > today + 0.2, (today, local)


def test_guitar_finds_the_six_string_listing_first():
    rank = ranker_local(corpus())
    assert rank("guitar")[:3] and "strum" in rank("guitar")[:3]
    assert ranker_today(corpus())("guitar").count("strum") == 0  # the example


async def test_gemini_blend_through_the_test_server():
    """The Gemini row: the real client against tests/support/gemini.py
    (whose embeddings follow the vocabulary plus a few words of its own,
    so this measures the plumbing and the blend, not Google's model)."""
    docs = corpus()
    gemini = await gemini_row()
    assert gemini >= mean_ndcg(ranker_local(docs)) - 0.05
    assert gemini > mean_ndcg(ranker_today(docs))


def test_bm25_is_measured():
    results = table()
    assert set(results) >= {"BM25 (bm25s), query as typed", "BM25 (bm25s) + vocabulary expansion"}
    assert all(0 <= v <= 1 for v in results.values())
