"""nDCG@10 of listing search on the labelled set (labelled_set.py), for
today's ranking before issue 14 (token overlap 3/2/1), the local default
(skill vocabulary), BM25 (bm25s) and, given an embedder, the semantic blend.

Reproduce the table in docs/marketplace.md:
    .venv/bin/python -m tests.marketplace.ranking_quality
(the Gemini row runs the real client against tests/support/gemini.py)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from server.marketplace.listings import (
    TAG_WEIGHT,
    TEXT_WEIGHT,
    TITLE_WEIGHT,
    rank_lexical,
    searchable,
)
from server.marketplace.text import MAX_QUERY_TOKENS, search_tokens
from server.marketplace.vocabulary import default_vocabulary
from tests.marketplace.labelled_set import LISTINGS, QUERIES, query_text

K = 10
Ranker = Callable[[str], list[str]]


def corpus() -> list[dict[str, Any]]:
    """The listings as the store keeps them; ids in creation order."""
    docs = []
    for n, (name, (title, description, category, tags)) in enumerate(LISTINGS.items()):
        fields = {"title": title, "description": description, "tags": tags}
        docs.append({"_id": f"{n:04d}", "name": name, "category": category,
                     **searchable(fields)})
    return docs


def _names(docs: list[dict[str, Any]], ranked_ids: list[str]) -> list[str]:
    by_id = {d["_id"]: d["name"] for d in docs}
    return [by_id[i] for i in ranked_ids]


def ranker_today(docs: list[dict[str, Any]]) -> Ranker:
    """The ranking before issue 14: listings sharing a query token, each
    token 3 in the title, else 2 in the tags, else 1 in the text."""
    def rank(query: str) -> list[str]:
        tokens = search_tokens(query)[:MAX_QUERY_TOKENS]
        scored = []
        for d in docs:
            if not set(tokens) & set(d["tokens"]):
                continue
            score = sum(TITLE_WEIGHT if t in d["title_tokens"] else TAG_WEIGHT
                        if t in d["tag_tokens"] else TEXT_WEIGHT if t in d["tokens"] else 0
                        for t in tokens)
            scored.append((score, d["_id"]))
        return _names(docs, [i for _, i in sorted(scored, reverse=True)])
    return rank


def ranker_local(docs: list[dict[str, Any]]) -> Ranker:
    """The local default: the service's own ranking (vocabulary expansion)."""
    vocabulary = default_vocabulary()

    def rank(query: str) -> list[str]:
        units = vocabulary.units(search_tokens(query)[:MAX_QUERY_TOKENS])
        return _names(docs, [i for _, i in rank_lexical(docs, units)])
    return rank


def ranker_bm25(docs: list[dict[str, Any]], *, expand: bool) -> Ranker:
    """BM25 (bm25s, Lucene variant) over title+tags+description tokens
    (title counted three times, tags twice, like the field weights),
    optionally with the vocabulary's synonyms and related terms added to
    the query."""
    import bm25s

    vocabulary = default_vocabulary()
    texts = [d["title_tokens"] * TITLE_WEIGHT + d["tag_tokens"] * TAG_WEIGHT + d["tokens"]
             for d in docs]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenization.Tokenized(*_vocab_ids(texts)), show_progress=False)
    ids_of = _vocab_ids(texts)[1]

    def rank(query: str) -> list[str]:
        tokens = search_tokens(query)[:MAX_QUERY_TOKENS]
        if expand:
            terms = {t for u in vocabulary.units(tokens) for term in u.synonyms + u.related
                     for t in term}
            tokens = list(dict.fromkeys(tokens + sorted(terms)))
        known = [ids_of[t] for t in tokens if t in ids_of]
        if not known:
            return []
        scores = retriever.get_scores(known)
        order = sorted(((s, d["_id"]) for s, d in zip(scores, docs, strict=True) if s > 0), reverse=True)
        return _names(docs, [i for _, i in order])
    return rank


Embed = Callable[[list[str]], Awaitable[list[list[float]]]]


async def ranker_semantic(docs: list[dict[str, Any]], embed: Embed) -> Ranker:
    """The Gemini blend as the service ranks: vocabulary score plus
    similarity points; ``embed(texts)`` gives unit vectors (queries are
    embedded up front, so the ranker itself is synchronous)."""
    from server.ai.vectors import normalise
    from server.marketplace.listings import embedding_text

    vocabulary = default_vocabulary()
    texts = [embedding_text({"title": t, "description": d, "tags": g})
             for t, d, _, g in LISTINGS.values()]
    vectors = await embed(texts)
    embedded = [{**doc, "embedding": normalise(v)} for doc, v in zip(docs, vectors, strict=True)]
    queries = [query_text(q) for q in QUERIES]
    query_vectors = dict(zip(queries, [normalise(v) for v in await embed(queries)], strict=True))

    def rank(query: str) -> list[str]:
        units = vocabulary.units(search_tokens(query)[:MAX_QUERY_TOKENS])
        ranked = rank_lexical(embedded, units, query_vectors[query])
        return _names(docs, [i for _, i in ranked])
    return rank


def _vocab_ids(texts: list[list[str]]) -> tuple[list[list[int]], dict[str, int]]:
    ids: dict[str, int] = {}
    encoded = [[ids.setdefault(t, len(ids)) for t in text] for text in texts]
    return encoded, ids


def ndcg_at_k(ranked: list[str], grades: dict[str, int], k: int = K) -> float:
    dcg = sum((2 ** grades.get(name, 0) - 1) / math.log2(n + 2)
              for n, name in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(n + 2) for n, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def mean_ndcg(rank: Ranker) -> float:
    total = sum(ndcg_at_k(rank(query_text(q)), grades) for q, grades in QUERIES.items())
    return total / len(QUERIES)


def table() -> dict[str, float]:
    docs = corpus()
    return {
        "today (token overlap 3/2/1)": mean_ndcg(ranker_today(docs)),
        "local default (vocabulary)": mean_ndcg(ranker_local(docs)),
        "BM25 (bm25s), query as typed": mean_ndcg(ranker_bm25(docs, expand=False)),
        "BM25 (bm25s) + vocabulary expansion": mean_ndcg(ranker_bm25(docs, expand=True)),
    }


async def gemini_row() -> float:
    """The blend with the real google-genai client against the test server."""
    from server.ai.gemini import GeminiClient, GeminiConfig
    from tests.support.gemini import API_KEY, FakeGemini

    server = FakeGemini()
    await server.start()
    client = GeminiClient(GeminiConfig(api_key=API_KEY, embed_model="gemini-embedding-001",
                                       model="gemini-2.5-flash", base_url=server.url,
                                       timeout=5))
    try:
        return mean_ndcg(await ranker_semantic(corpus(), client.embed))
    finally:
        await client.close()
        await server.close()


if __name__ == "__main__":
    import asyncio

    rows = {**table(), "Gemini blend (google-genai, test server)": asyncio.run(gemini_row())}
    for name, value in rows.items():
        print(f"| {name} | {value:.3f} |")
