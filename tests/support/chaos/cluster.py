"""The system under chaos: node processes (``python -m server serve``), one
redis-server and the database in a process of its own, plus a log of every
fault injected so that what clients and probes saw can be held against it."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import DatabaseProcess, NodeProcess, RedisProcess, cluster_node_env

# Short presence timings so a soak sees several sweeps; the contract's bounds
# (docs/realtime.md "Presence timing") are what the soak holds them to.
NODE_TTL_S = 3.0
SWEEP_INTERVAL_S = 0.5
HEARTBEAT_INTERVAL_S = 0.5
ACCESS_TOKEN_TTL_S = 7200  # longer than any soak: no token expires mid-run
NODE_START_TIMEOUT_S = 90.0  # a loaded 2-core machine starts a node slowly


@dataclass
class Fault:
    """One injected fault. ``outage`` faults make 5xx answers legitimate
    while they last (the dependency is away); a killed node is not an outage
    for the nodes that stay up."""

    kind: str  # node_kill | redis_restart | db_pause
    target: str
    started: float
    ended: float | None = None
    outage: bool = False
    notes: dict[str, float] = field(default_factory=dict)

    def overlaps(self, start: float, end: float, *, grace: float) -> bool:
        stop = (self.ended if self.ended is not None else float("inf")) + grace
        return start <= stop and end >= self.started


class ChaosCluster:
    def __init__(self, workdir: Path, *, nodes: int, secret_key: str) -> None:
        self.workdir = workdir
        self.db = DatabaseProcess(workdir / "db")
        self.redis = RedisProcess(workdir)
        self.env = cluster_node_env(
            mongo_url=self.db.url, db=f"chaos_{uuid.uuid4().hex[:8]}", redis_url=self.redis.url,
            data_dir=workdir / "data", secret_key=secret_key, node_ttl=NODE_TTL_S,
            sweep=SWEEP_INTERVAL_S, presence_heartbeat_interval=str(HEARTBEAT_INTERVAL_S),
            access_token_ttl=str(ACCESS_TOKEN_TTL_S), log_level="WARNING",
        )
        self.nodes = [NodeProcess(self.env, log_path=workdir / f"node{i}.log") for i in range(nodes)]
        self.faults: list[Fault] = []

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> None:
        self.db.start()
        self.redis.start()
        for node in self.nodes:
            node.start(timeout=NODE_START_TIMEOUT_S)

    def stop(self) -> None:
        for node in self.nodes:
            node.terminate()
        self.redis.stop()
        self.db.stop()

    def node_alive(self, index: int) -> bool:
        proc = self.nodes[index].proc
        return proc is not None and proc.poll() is None

    def dead_nodes(self) -> list[int]:
        return [i for i in range(len(self.nodes)) if not self.node_alive(i)]

    def _begin(self, kind: str, target: str, *, outage: bool) -> Fault:
        fault = Fault(kind, target, time.monotonic(), outage=outage)
        self.faults.append(fault)
        return fault

    async def kill_node(self, index: int) -> Fault:
        fault = self._begin("node_kill", f"node{index}", outage=False)
        await asyncio.to_thread(self.nodes[index].kill)
        return fault

    async def restart_node(self, fault: Fault, index: int) -> None:
        await asyncio.to_thread(self.nodes[index].start, NODE_START_TIMEOUT_S)
        fault.ended = time.monotonic()

    async def restart_redis(self, down_s: float) -> Fault:
        """Kill redis-server; ``down_s`` later start a new, empty one on the
        same port."""
        fault = self._begin("redis_restart", "redis", outage=True)
        await asyncio.to_thread(self.redis.kill)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.redis.start)
        fault.ended = time.monotonic()
        return fault

    async def pause_database(self, seconds: float) -> Fault:
        fault = self._begin("db_pause", "database", outage=True)
        self.db.pause()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.db.resume()
            fault.ended = time.monotonic()
        return fault

    def logs_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- node{i} ---\n{n.log()[-chars:]}" for i, n in enumerate(self.nodes))
