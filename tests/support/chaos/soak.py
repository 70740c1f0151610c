"""The chaos soak: users chatting at a steady rate on a cluster while nodes
are killed, Redis is restarted and the database is paused, over and over;
then a check that nothing acked was lost or duplicated (see report.py)."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.realtime import open_group, register_user

from .clients import ChatClient, ClientFailure
from .cluster import HEARTBEAT_INTERVAL_S, NODE_TTL_S, SWEEP_INTERVAL_S, ChaosCluster, Fault
from .probes import RestProbe, wait_presence
from .report import (
    SoakReport,
    check_live_ratio,
    check_logs,
    check_messages,
    check_rest,
    disturbed_windows,
)

# The contract's outer presence bound (a node dying: offline within 30 s);
# docs/realtime.md gives node_ttl + sweep_interval for the configured timings.
PRESENCE_BOUND_S = 30.0
RECOVERY_TIMEOUT_S = 90.0  # everyone reconnected, caught up and acked again
DRAIN_TIMEOUT_S = 120.0
DB_PAUSE_S = 5.0
REDIS_DOWN_S = 2.0  # between killing redis-server and starting the new one
ROOM_SIZE = 3


@dataclass(frozen=True)
class SoakConfig:
    duration_s: float = 60.0
    nodes: int = 3
    users: int = 12
    send_interval_s: float = 1.0  # per user: ~users/interval messages per second in all
    burst: int = 3  # sends a user has in flight at once (same room)
    quiet_s: float = 3.0  # steady chat between faults
    seed: int = 8
    overlap: bool = False  # also: a node killed while the database is paused


class Soak:
    def __init__(self, config: SoakConfig, cluster: ChaosCluster,
                 log: Callable[[str], None]) -> None:
        self.config = config
        self.cluster = cluster
        self.log = log
        self.rng = random.Random(config.seed)
        self.report = SoakReport(nodes=config.nodes, users=config.users, presence_bounds=(
            f"documented: a dead node's users offline within node_ttl + sweep = "
            f"{NODE_TTL_S + SWEEP_INTERVAL_S:.1f} s (contract: 30 s), other changes within 2 s, "
            f"after a Redis restart at the next heartbeat ({HEARTBEAT_INTERVAL_S} s)"))
        self.clients: list[ChatClient] = []
        self.watcher: ChatClient | None = None
        self.members: dict[str, list[str]] = {}
        self.recovered_at: list[float] = []  # monotonic times the soak saw everyone recovered

    # -- set-up --------------------------------------------------------------
    async def populate(self) -> tuple[str, str]:
        urls = self.cluster.urls
        users = [await register_user(urls[i % len(urls)], f"soak{i}")
                 for i in range(self.config.users)]
        watcher = await register_user(urls[0], "watcher")
        n = len(users)
        groups = [[users[(i + k) % n] for k in range(ROOM_SIZE)] for i in range(0, n, 2)]
        rooms_of: dict[str, list[str]] = {u["id"]: [] for u in users}
        for index, group in enumerate(groups):
            room = await open_group(urls[index % len(urls)], group[0], group[1:], f"soak {index}")
            self.members[room["id"]] = [u["id"] for u in group]
            for u in group:
                rooms_of[u["id"]].append(room["id"])
        # The watcher shares a room with everyone, so it may see their presence.
        everyone = await open_group(urls[0], watcher, users, "everyone")
        for i, u in enumerate(users):
            self.clients.append(ChatClient(
                name=f"soak{i}", user_id=u["id"], token=u["access_token"],
                rooms=rooms_of[u["id"]], urls=urls, home=i % len(urls),
                send_interval=self.config.send_interval_s, rng=random.Random(self.rng.random()),
                burst=self.config.burst,
            ))
        self.watcher = ChatClient(name="watcher", user_id=watcher["id"],
                                  token=watcher["access_token"], rooms=[everyone["id"]],
                                  urls=urls, home=0, send_interval=None,
                                  rng=random.Random(self.rng.random()))
        self.report.rooms = len(groups)
        return watcher["access_token"], everyone["id"]

    # -- waiting for the system ----------------------------------------------
    def _everyone(self) -> list[ChatClient]:
        assert self.watcher is not None
        return [*self.clients, self.watcher]

    async def _recovered(self, after: str) -> None:
        """Every client connected and caught up, every sender acked again
        and every member got a live message since now (fan-out works again),
        and presence showing everyone online; else a recovery failure."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._all_ready(started), RECOVERY_TIMEOUT_S)
        except TimeoutError:
            stuck = [c.name for c in self._everyone() if not c.ready.is_set()
                     or (c in self.clients and min(c.last_ack_at, c.last_live_at) <= started)]
            self.report.recovery_failures.append(f"no recovery after {after}: {stuck}")
            raise
        await self._presence("", {c.user_id: "online" for c in self.clients})
        self.recovered_at.append(time.monotonic())
        self.log(f"  recovered after {after} in {time.monotonic() - started:.1f} s")

    async def _all_ready(self, since: float) -> None:
        while True:
            if all(c.ready.is_set() for c in self._everyone()) and all(
                    c.last_ack_at > since and c.last_live_at > since for c in self.clients):
                return
            await asyncio.sleep(0.1)

    async def _presence(self, what: str, expected: dict[str, str],
                        since: float | None = None) -> None:
        """How long until the cluster answers ``expected`` for these users,
        counted from ``since`` (default now); beyond the contract's bound it
        is a failure."""
        assert self.watcher is not None
        since = time.monotonic() if since is None else since
        try:
            await wait_presence(self.watcher, expected,
                                timeout=PRESENCE_BOUND_S - (time.monotonic() - since))
        except TimeoutError as exc:
            self.report.presence_failures.append(f"{what or 'everyone online'}: {exc}")
            return
        if what:
            self.report.presence.setdefault(what, []).append(time.monotonic() - since)

    async def _live_offline_events(self, users: list[str], since: float, connects: int) -> None:
        """The watcher, subscribed and connected throughout, got a live
        ``offline`` event for each of ``users`` (not only the snapshot)."""
        watcher = self.watcher
        assert watcher is not None
        deadline = since + PRESENCE_BOUND_S
        missing = set(users)
        while missing and time.monotonic() < deadline and watcher.connects == connects:
            missing -= {e["user_id"] for t, e in watcher.presence_events
                        if t >= since and e.get("status") == "offline"}
            await asyncio.sleep(0.1)
        if missing and watcher.connects == connects:
            self.report.presence_failures.append(
                f"no live offline presence event for {sorted(missing)} within {PRESENCE_BOUND_S} s")

    # -- faults --------------------------------------------------------------
    async def kill_node(self, index: int) -> None:
        victims = [c for c in self.clients if c.node_url == self.cluster.urls[index]]
        held = victims[: max(1, len(victims) // 2)] if victims else []
        for c in held:
            c.hold()  # these stay away: their users must go offline
        assert self.watcher is not None
        connects = self.watcher.connects
        fault = await self.cluster.kill_node(index)
        self.log(f"  SIGKILL node{index} ({len(victims)} clients, {len(held)} held away)")
        if held:
            await self._presence("node kill: offline", {c.user_id: "offline" for c in held},
                                 since=fault.started)
            await self._live_offline_events([c.user_id for c in held], fault.started, connects)
        await self.cluster.restart_node(fault, index)
        released = time.monotonic()
        for c in held:
            c.release()
        await self._presence("node kill: back online after reconnecting",
                             {c.user_id: "online" for c in held}, since=released)
        await self._recovered(f"node{index} kill")

    async def restart_redis(self) -> None:
        fault = await self.cluster.restart_redis(REDIS_DOWN_S)
        self.log(f"  redis-server killed, started again {REDIS_DOWN_S:.0f} s later")
        await self._presence("redis restart: everyone online again",
                             {c.user_id: "online" for c in self.clients}, since=fault.ended)
        await self._recovered("redis restart")

    async def pause_database(self) -> Fault:
        self.log(f"  database SIGSTOP for {DB_PAUSE_S:.0f} s")
        fault = await self.cluster.pause_database(DB_PAUSE_S)
        await self._recovered("database pause")
        return fault

    async def kill_node_during_database_pause(self) -> None:
        """Two faults at once: a node dies with writes stuck in the paused
        database (they may land after it is gone); it restarts once the
        database is back."""
        index = self.rng.randrange(self.config.nodes)
        self.log(f"  database SIGSTOP for {DB_PAUSE_S:.0f} s, node{index} SIGKILLed meanwhile")
        pause = asyncio.create_task(self.cluster.pause_database(DB_PAUSE_S))
        await asyncio.sleep(DB_PAUSE_S / 2)
        fault = await self.cluster.kill_node(index)
        await pause
        await self.cluster.restart_node(fault, index)
        await self._recovered(f"node{index} kill during a database pause")

    # -- the run -------------------------------------------------------------
    async def run(self) -> SoakReport:
        started = time.monotonic()
        token, room_id = await self.populate()
        probe = RestProbe(self.cluster.urls, token=token, room_id=room_id)
        for c in self._everyone():
            c.start()
        probe.start()
        try:
            await self._recovered("start")
            actions = [self.kill_node, self.restart_redis, self.pause_database]
            if self.config.overlap:
                actions.append(self.kill_node_during_database_pause)
            cycle = 0
            while cycle == 0 or time.monotonic() - started < self.config.duration_s:
                for step, action in enumerate(actions):
                    await asyncio.sleep(self.config.quiet_s)
                    if action == self.kill_node:
                        await self.kill_node((cycle + 1) % self.config.nodes)
                    else:
                        await action()
                    self.report.faults[action.__name__] += 1
                    if step == len(actions) - 1:
                        cycle += 1
            await asyncio.sleep(self.config.quiet_s)
            await self._finish()
        except (TimeoutError, ClientFailure) as exc:
            # Recorded in report.recovery_failures; the rest cannot be judged.
            self.report.recovery_failures.append(f"soak stopped early: {exc!r}")
        finally:
            await probe.stop()
            for c in self._everyone():
                await c.stop()
        check_rest(self.report, probe.answers, self.cluster.faults, started)
        check_live_ratio(self.report, self.clients, disturbed_windows(
            started, self.cluster.faults, self.recovered_at))
        check_logs(self.report, {f"node{i}": n.log() for i, n in enumerate(self.cluster.nodes)})
        self.report.seconds = time.monotonic() - started
        return self.report

    async def _finish(self) -> None:
        for c in self.clients:
            c.sending = False
        try:
            await asyncio.wait_for(asyncio.gather(*(c.drained() for c in self.clients)),
                                   DRAIN_TIMEOUT_S)
        except TimeoutError:
            self.report.recovery_failures.append(
                f"sends still unacked after {DRAIN_TIMEOUT_S} s: "
                f"{[c.name for c in self.clients if c.pending]}")
        await asyncio.sleep(1.0)  # the last broadcasts land
        for c in self.clients:
            await c.final_sync()
        stored = {room_id: await self._stored(room_id) for room_id in self.members}
        check_messages(self.report, self.clients, stored, self.members)

    async def _stored(self, room_id: str) -> list[dict[str, Any]]:
        reader = next(c for c in self.clients if room_id in c.views)
        messages: list[dict[str, Any]] = []
        while True:
            ack = await reader.conn.call("room:sync", {"room_id": room_id,
                                                       "after_seq": len(messages), "limit": 500})
            messages.extend(ack["messages"])
            if not ack["has_more"] or not ack["messages"]:
                return messages


async def run_soak(config: SoakConfig, workdir: Path, *,
                   log: Callable[[str], None] = print) -> SoakReport:
    """Start the cluster in ``workdir``, run the soak, stop everything.
    Node logs stay in ``workdir`` (node<i>.log)."""
    cluster = ChaosCluster(workdir, nodes=config.nodes, secret_key=secrets.token_urlsafe(32))
    await asyncio.to_thread(cluster.start)
    try:
        return await Soak(config, cluster, log).run()
    finally:
        await asyncio.to_thread(cluster.stop)


__all__ = ["ClientFailure", "SoakConfig", "SoakReport", "run_soak"]
