"""The collector of a long-running process. A full collection pauses every
socket on the node for as long as it traverses the heap.

- What start-up built (modules, route tables, the skill vocabulary,
  connection pools) lives as long as the process, yet every full collection
  traversed it again. Frozen once the node (or the embedded database's
  process) has started, it is left out of every later collection: under the
  2-node fan-out benchmark a node's full collections took ~100–175 ms of CPU
  each before, ~40–95 ms after.
- A collection starts after 10,000 net new container objects instead of
  Python's 700: a busy node allocated past 700 about twelve times a second,
  and each tenth young collection looks at the middle generation, each tenth
  of those (and a quarter of the heap's growth) at everything. Under that
  benchmark full collections went from 2–3 to none in a 20 s run, and the
  collector's CPU down by half; cyclic garbage waits about a second longer
  to be freed. (docs/benchmarks.md, "Chat fan-out vs Node.js".)

Only ``skillshare serve`` and the database child freeze: a test process
that builds many apps must be able to collect them."""

from __future__ import annotations

import gc

from loguru import logger
from prometheus_client import CollectorRegistry, Gauge


YOUNG_GENERATION_THRESHOLD = 10_000


def freeze_startup_heap() -> int:
    """Collect start-up's garbage, move what survives out of the collector's
    reach, and collect less often from now on; returns how many objects are
    frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
    return gc.get_freeze_count()


def gc_gauges(registry: CollectorRegistry) -> None:
    """What the tuning left in place, read when scraped."""
    frozen = Gauge("skillshare_gc_frozen_objects",
                   "Objects frozen out of garbage collection after start-up",
                   registry=registry)
    frozen.set_function(gc.get_freeze_count)
    threshold = Gauge("skillshare_gc_young_threshold",
                      "Net new container objects that start a collection",
                      registry=registry)
    threshold.set_function(lambda: gc.get_threshold()[0])


def log_frozen(where: str, count: int) -> None:
    logger.info("{}: {} start-up objects frozen out of garbage collection", where, count)
