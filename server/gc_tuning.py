"""The collector of a long-running process: what start-up built (modules,
route tables, the skill vocabulary, connection pools) lives as long as the
process, yet every full collection traversed it again. Frozen once the node
(or the embedded database's process) has started, it is left out of every
later collection: under the 2-node fan-out benchmark a node's full
collections took ~100–175 ms of CPU each before, ~40–95 ms after
(docs/benchmarks.md, "Chat fan-out vs Node.js"), and each one is a pause
of every socket on the node.

Only ``skillshare serve`` and the database child freeze: a test process
that builds many apps must be able to collect them."""

from __future__ import annotations

import gc

from loguru import logger
from prometheus_client import CollectorRegistry, Gauge


def freeze_startup_heap() -> int:
    """Collect start-up's garbage, then move what survives out of the
    collector's reach; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def frozen_gauge(registry: CollectorRegistry) -> Gauge:
    gauge = Gauge("skillshare_gc_frozen_objects",
                  "Objects frozen out of garbage collection after start-up",
                  registry=registry)
    gauge.set_function(gc.get_freeze_count)
    return gauge


def log_frozen(where: str, count: int) -> None:
    logger.info("{}: {} start-up objects frozen out of garbage collection", where, count)
