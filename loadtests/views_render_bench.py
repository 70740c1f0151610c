"""What a cached ``GET /skills`` page (20 listings) costs to answer, since
services return domain data and the views render it (server/views).

Before: the read cache held rendered dicts and orjson serialised their
datetimes. Now: it holds ``Page[Named]``; the first answer renders it (and
keeps the body on the page, ``Page.rendered``), later hits serialise that.
Four numbers, microseconds per page, median of 7 runs of 2,000 pages each:
``before hit`` (serialise the old cached dicts), ``hit`` (serialise a page
rendered before), ``before render`` (the old listing_view, datetimes left to
orjson, then serialise: a cache miss before), ``render`` (a fresh page:
render, then serialise: a cache miss now).

    taskset -c 1 .venv/bin/python loadtests/views_render_bench.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import datetime, UTC

import orjson

from server.marketplace.results import Named, Page
from server.views.marketplace import listing_view, page_view, rating_view, user_ref_view

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC  # what json_response uses
PAGES, RUNS = 2000, 7
UTC = UTC


def _docs() -> list[dict]:
    return [{"_id": f"665f1c2e8b3e4a00123400{i:02d}", "owner_id": "o1",
             "title": "Python for beginners", "description": "x" * 300, "category": "tech",
             "tags": ["python", "code"], "level": "all", "mode": "online", "status": "active",
             "rating_sum": 9, "rating_count": 2,
             "created_at": datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
             "updated_at": datetime(2026, 1, 2, 3, 4, 6, 456000, tzinfo=UTC)} for i in range(20)]


def _page() -> Page[Named]:
    owner = {"_id": "o1", "display_name": "Ada"}
    return Page([Named(d, {"o1": owner}) for d in _docs()], "cursor")


def _old_listing_view(doc: dict, users: dict) -> dict:
    """server/marketplace/views.py listing_view before server/views."""
    return {"id": doc["_id"], "owner": user_ref_view(doc["owner_id"], users),
            "title": doc["title"], "description": doc["description"],
            "category": doc["category"], "tags": doc["tags"], "level": doc["level"],
            "mode": doc["mode"], "status": doc["status"], "rating": rating_view(doc),
            "score": None, "created_at": doc["created_at"], "updated_at": doc["updated_at"]}


def _median_us(run: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(PAGES):
            run()
        times.append((time.perf_counter() - started) / PAGES * 1e6)
    return statistics.median(times)


def main() -> None:
    rendered = page_view(_page(), listing_view)
    before = {"items": [{**item, "created_at": doc["created_at"], "updated_at": doc["updated_at"]}
                        for item, doc in zip(rendered["items"], _docs(), strict=True)],
              "next_cursor": "cursor"}
    hit_page = _page()
    page_view(hit_page, listing_view)
    fresh = _page()

    def render() -> bytes:  # the memo emptied first: every page renders anew
        fresh.rendered.clear()
        for item in fresh.items:
            item.rendered.clear()
        return orjson.dumps(page_view(fresh, listing_view), option=OPTIONS)

    docs, owners = _docs(), {"o1": {"_id": "o1", "display_name": "Ada"}}

    def old_render() -> bytes:
        return orjson.dumps({"items": [_old_listing_view(d, owners) for d in docs],
                             "next_cursor": "cursor"}, option=OPTIONS)

    print(f"before hit    {_median_us(lambda: orjson.dumps(before, option=OPTIONS)):.1f} us")
    hit = _median_us(lambda: orjson.dumps(page_view(hit_page, listing_view), option=OPTIONS))
    print(f"hit           {hit:.1f} us")
    print(f"before render {_median_us(old_render):.1f} us")
    print(f"render        {_median_us(render):.1f} us")


if __name__ == "__main__":
    main()
