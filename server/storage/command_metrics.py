"""Database commands seen by the node's driver, for operators: how many of
each command on each collection, and how long they took (driver's view:
the round trip, including time queued in the database).

A pymongo ``CommandListener`` on the node's client; a rise in one
command's count or time after a deploy points at the query that changed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo import monitoring

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# the commands worth a label of their own; the rest are counted as "other"
NAMED = frozenset({"find", "getMore", "insert", "update", "delete", "findAndModify",
                   "aggregate", "count", "distinct", "createIndexes", "ping",
                   "commitTransaction", "abortTransaction"})
# commands whose first field names a collection
ON_COLLECTION = frozenset({"find", "insert", "update", "delete", "findAndModify",
                           "aggregate", "count", "distinct", "createIndexes"})
MAX_IN_FLIGHT = 10_000  # started events kept for their outcome (a lost reply must not leak)


class CommandMetrics(monitoring.CommandListener):
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self._commands = Counter(
            "skillshare_db_commands", "Database commands sent by this node",
            ["command", "collection", "outcome"], registry=registry)
        self._seconds = Histogram(
            "skillshare_db_command_seconds", "Database command round trips (driver's view)",
            ["command"], buckets=BUCKETS, registry=registry)
        self._started: dict[tuple[int, int], tuple[str, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name if event.command_name in NAMED else "other"
        collection = event.command.get(event.command_name) if name in ON_COLLECTION else None
        if len(self._started) >= MAX_IN_FLIGHT:
            self._started.clear()
        self._started[(event.request_id, event.operation_id or 0)] = (
            name, collection if isinstance(collection, str) else "")

    def _done(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
              outcome: str) -> None:
        name, collection = self._started.pop((event.request_id, event.operation_id or 0),
                                             ("other", ""))
        self._commands.labels(name, collection, outcome).inc()
        self._seconds.labels(name).observe(event.duration_micros / 1e6)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event, "ok")

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event, "error")
