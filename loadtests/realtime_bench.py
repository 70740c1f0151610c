"""Real-time benchmark: history and sync from a 100,000-message room on the
embedded database, and message fan-out on one node and on two nodes with
Redis. Not a test; results go to docs/benchmarks.md ("Real-time").

    python loadtests/realtime_bench.py                  # everything, defaults
    python loadtests/realtime_bench.py --part history --messages 100000
    python loadtests/realtime_bench.py --part fanout --nodes 1,2 --duration 15

History: the room is seeded straight through ``MessageStore`` (bulk
inserts), then the same service calls the handlers make are timed: the
latest page, pages before/after a seq in the middle and at the start,
``room:sync`` pages, finding a cold room's last seq, the room-list summary.

Fan-out: node processes (``python -m server serve``) share one SecantusDB
server process and, for two nodes, one redis-server. Group rooms of
``--members`` users; one sender per room sends in a closed loop with
``--inflight`` unacked messages. Clients (python-socketio) run in
``--workers`` separate processes, spread round-robin over the nodes; the
receivers count ``message`` events. CPU is read from /proc for each server
process (node, database, redis) over the measurement window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLK_TCK = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret-key-" + "y" * 32
DATA_KEY = "bench-data-key-" + "z" * 32


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


# ---------------------------------------------------------------- history

async def history_bench(messages: int, repeat: int) -> dict:
    from pymongo import AsyncMongoClient
    from secantus import SecantusDBServer

    from server.bus import Bus
    from server.clock import Clock
    from server.realtime.chat import ChatService
    from server.realtime.notifier import Notifier
    from server.realtime.rooms import RoomService
    from server.realtime.sequences import SequenceCache
    from server.storage.fields import FieldCrypto
    from server.storage.messages import MessageStore, message_id
    from server.storage.read_markers import ReadMarkerStore
    from server.storage.rooms import RoomStore
    from server.storage.users import UserStore

    class NoEmit:
        async def emit(self, *a, **k):  # noqa: ANN002, ANN003
            return None

    path = tempfile.mkdtemp(prefix="rt-bench-db-")
    server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=path)
    server.start()
    client = AsyncMongoClient(server.uri, tz_aware=True)
    db = client["bench"]
    try:
        fields = FieldCrypto([DATA_KEY])  # as in production: bodies encrypted at rest
        store, rooms_store, markers = MessageStore(db, fields), RoomStore(db), ReadMarkerStore(db)
        await store.create_indexes()
        await rooms_store.create_indexes()
        now = datetime.now(UTC)
        room = await rooms_store.create_group(name="big", member_ids=["alice", "bob"],
                                              created_by="alice", now=now)
        rid = room["_id"]
        started = time.perf_counter()
        batch = 5000
        for lo in range(1, messages + 1, batch):
            await store.insert_many_unchecked([
                {"_id": message_id(rid, s), "room_id": rid, "seq": s,
                 "sender_id": "alice" if s % 2 else "bob", "client_id": str(uuid.uuid4()),
                 "body": f"message number {s} " + "x" * 40, "created_at": now}
                for s in range(lo, min(messages, lo + batch - 1) + 1)
            ])
        seed_s = time.perf_counter() - started
        await markers.advance(rid, "bob", messages - 500, now=now)

        def services() -> tuple[RoomService, ChatService]:
            seqs = SequenceCache(store)
            rooms = RoomService(rooms=rooms_store, messages=store, markers=markers,
                                users=UserStore(db, fields), sequences=seqs, clock=Clock(),
                                consent=None, notifier=Notifier(NoEmit()), bus=Bus())
            chat = ChatService(rooms=rooms, messages=store, markers=markers, sequences=seqs,
                               notifier=Notifier(NoEmit()), clock=Clock())
            return rooms, chat

        rooms, chat = services()
        mid = messages // 2
        cases = {
            "history: latest 50": lambda: chat.history("bob", rid, before_seq=None, after_seq=None, limit=50),
            "history: 50 before the middle": lambda: chat.history("bob", rid, before_seq=mid, after_seq=None, limit=50),
            "history: 100 after the start": lambda: chat.history("bob", rid, before_seq=None, after_seq=0, limit=100),
            "room:sync 100 from the middle": lambda: chat.sync("bob", rid, after_seq=mid, limit=100),
            "room:sync 500 near the end": lambda: chat.sync("bob", rid, after_seq=messages - 600, limit=500),
            "room list summary (unread 500)": lambda: rooms.list_for_user("bob", before_id=None, limit=20),
        }
        results = {}
        await chat.history("bob", rid, before_seq=None, after_seq=None, limit=1)  # warm
        for name, call in cases.items():
            samples = []
            for _ in range(repeat):
                t = time.perf_counter()
                await call()
                samples.append((time.perf_counter() - t) * 1000)
            results[name] = {"p50_ms": round(pct(samples, 0.5), 2), "p99_ms": round(pct(samples, 0.99), 2)}
        cold = []
        for _ in range(repeat):
            seqs = SequenceCache(store)
            t = time.perf_counter()
            assert await seqs.current(rid) == messages
            cold.append((time.perf_counter() - t) * 1000)
        results["last seq, cold cache"] = {"p50_ms": round(pct(cold, 0.5), 2), "p99_ms": round(pct(cold, 0.99), 2)}
        # One send (one insert) into the big room, for scale.
        sends = []
        for k in range(repeat):
            t = time.perf_counter()
            await chat.send("alice", rid, str(uuid.uuid4()), f"bench {k}")
            sends.append((time.perf_counter() - t) * 1000)
        results["message send (insert, warm cache)"] = {"p50_ms": round(pct(sends, 0.5), 2), "p99_ms": round(pct(sends, 0.99), 2)}
        return {"messages": messages, "seed_seconds": round(seed_s, 1), "cases": results}
    finally:
        await client.close()
        server.stop()
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- fan-out

def worker(assignments: list[dict], duration: float, warmup: float, inflight: int,
           out: mp.Queue) -> None:
    """One load-generator process: its share of the sockets."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_worker(assignments, duration, warmup, inflight, out))


async def _worker(assignments: list[dict], duration: float, warmup: float, inflight: int,
                  out: mp.Queue) -> None:
    import socketio

    received = 0
    latencies: list[float] = []
    sent = 0
    measuring = False
    clients = []

    def on_message(_data: dict) -> None:
        nonlocal received
        if measuring:
            received += 1

    for a in assignments:
        c = socketio.AsyncClient(reconnection=False)
        c.on("message", on_message)
        await c.connect(a["url"], auth={"token": a["token"]}, transports=["websocket"])
        clients.append((c, a))
    out.put(("ready", None))
    start_at = time.time() + 1.0
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stop_at = time.monotonic() + warmup + duration
    measure_from = time.monotonic() + warmup

    async def sender(c: socketio.AsyncClient, room_id: str) -> None:
        nonlocal sent
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            ack = await c.call("message:send", {"room_id": room_id, "client_id": str(uuid.uuid4()),
                                                "body": "benchmark message " + "x" * 60}, timeout=30)
            if measuring and ack.get("ok"):
                latencies.append((time.perf_counter() - t) * 1000)
                sent += 1

    tasks = [asyncio.create_task(sender(c, a["room_id"]))
             for c, a in clients if a["sender"] for _ in range(inflight)]
    await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
    measuring = True
    out.put(("measuring", time.time()))
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    measuring = False
    await asyncio.gather(*tasks, return_exceptions=True)
    for c, _ in clients:
        await c.disconnect()
    out.put(("done", {"received": received, "sent": sent, "latencies": latencies}))


def start_process(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)


def start_database(work: Path) -> tuple[subprocess.Popen, int]:
    """SecantusDB in a process of its own under ``work/db``, ready on the
    returned port; SIGTERM stops it cleanly."""
    port = free_port()
    db = start_process([sys.executable, "-c", (
        "import signal,time;from secantus import SecantusDBServer;"
        f"s=SecantusDBServer(host='127.0.0.1',port={port},storage_path={str(work / 'db')!r});"
        "s.start();signal.signal(signal.SIGTERM,lambda *a:(s.stop(),exit(0)));"
        "[time.sleep(1) for _ in iter(int,1)]")], dict(os.environ), work / "db.log")
    wait_port(port)
    return db, port


async def setup_users(url: str, rooms: int, members: int) -> list[dict]:
    import aiohttp

    assignments = []
    async with aiohttp.ClientSession() as http:
        async def register(i: int) -> dict:
            r = await http.post(f"{url}/api/v1/auth/register", json={
                "email": f"b{uuid.uuid4().hex[:10]}@example.com",
                "password": "benchmark password", "display_name": f"b{i}"})
            assert r.status == 201, await r.text()
            return await r.json()

        for r_index in range(rooms):
            users = [await register(r_index * members + m) for m in range(members)]
            for u in users[1:]:  # a group needs a relation with each member (consent)
                r = await http.post(f"{url}/api/v1/rooms", json={
                    "type": "direct", "user_id": users[0]["user"]["id"]},
                    headers={"Authorization": f"Bearer {u['access_token']}"})
                assert r.status in (200, 201), await r.text()
            resp = await http.post(f"{url}/api/v1/rooms", json={
                "type": "group", "name": f"room {r_index}",
                "member_ids": [u["user"]["id"] for u in users[1:]]},
                headers={"Authorization": f"Bearer {users[0]['access_token']}"})
            room = await resp.json()
            for m, u in enumerate(users):
                assignments.append({"token": u["access_token"], "room_id": room["id"], "sender": m == 0})
    return assignments


def fanout_bench(nodes: int, rooms: int, members: int, inflight: int, workers: int,
                 duration: float, warmup: float) -> dict:
    from secantus import SecantusDBServer  # noqa: F401  (the DB runs in its own process)

    work = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        db, db_port = start_database(work)
        procs.append(db)
        redis_proc = None
        redis_url = None
        if nodes > 1:
            rport = free_port()
            redis_proc = start_process(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                        "--save", "", "--appendonly", "no"], dict(os.environ),
                                       work / "redis.log")
            procs.append(redis_proc)
            wait_port(rport)
            redis_url = f"redis://127.0.0.1:{rport}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
        env.update({"SKILLSHARE_ENV": "test", "SKILLSHARE_MONGO_URL": f"mongodb://127.0.0.1:{db_port}",
                    "SKILLSHARE_MONGO_DB": "bench", "SKILLSHARE_SECRET_KEY": SECRET,
                    "SKILLSHARE_DATA_KEY": DATA_KEY,
                    "SKILLSHARE_RATE_LIMITS": "off", "SKILLSHARE_LOG_LEVEL": "WARNING",
                    "SKILLSHARE_PASSWORD_HASH_TIME_COST": "1", "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": "1024",
                    "SKILLSHARE_DATA_DIR": str(work / "data")})
        if redis_url:
            env["SKILLSHARE_REDIS_URL"] = redis_url
        node_procs, urls = [], []
        for i in range(nodes):
            port = free_port()
            p = start_process([sys.executable, "-m", "server", "serve"],
                              {**env, "SKILLSHARE_PORT": str(port)}, work / f"node{i}.log")
            procs.append(p)
            node_procs.append(p)
            wait_port(port)
            urls.append(f"http://127.0.0.1:{port}")
        assignments = asyncio.run(setup_users(urls[0], rooms, members))
        for i, a in enumerate(assignments):
            a["url"] = urls[i % nodes]
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        shares = [assignments[w::workers] for w in range(workers)]
        gens = [ctx.Process(target=worker, args=(share, duration, warmup, inflight, queue))
                for share in shares]
        for g in gens:
            g.start()
        for _ in gens:
            assert queue.get(timeout=120)[0] == "ready"
        for _ in gens:
            assert queue.get(timeout=120)[0] == "measuring"
        servers = {"node": node_procs, "database": [db]} | ({"redis": [redis_proc]} if redis_proc else {})
        servers["load_generator"] = gens  # measured to show it is not the limit
        cpu0 = {k: sum(cpu_seconds(p.pid) for p in ps) for k, ps in servers.items()}
        t0 = time.monotonic()
        time.sleep(duration - 0.5)  # the generators still run; read CPU before they exit
        cpu1 = {k: sum(cpu_seconds(p.pid) for p in ps) for k, ps in servers.items()}
        cpu_window = time.monotonic() - t0
        results = [queue.get(timeout=duration + warmup + 120) for _ in gens]
        elapsed = min(time.monotonic() - t0, duration)
        for g in gens:
            g.join(30)
        received = sum(r[1]["received"] for r in results)
        sent = sum(r[1]["sent"] for r in results)
        lat = [x for r in results for x in r[1]["latencies"]]
        cpu = {k: (cpu1[k] - cpu0[k]) / cpu_window for k in cpu0}  # cores
        per_s = received / elapsed
        return {
            "nodes": nodes, "rooms": rooms, "members": members, "inflight": inflight,
            "duration_s": duration, "messages_acked_per_s": round(sent / elapsed, 1),
            "deliveries_per_s": round(received / elapsed, 1),
            "ack_p50_ms": round(pct(lat, 0.5), 2), "ack_p99_ms": round(pct(lat, 0.99), 2),
            "cpu_core_pct": {k: round(100 * v, 1) for k, v in cpu.items()},
            "cpu_s_per_1000_deliveries": {k: round(1000 * v / max(per_s, 1e-9), 3)
                                          for k, v in cpu.items()},
        }
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["history", "fanout", "all"], default="all")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--nodes", default="1,2")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict = {"machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"}
    if args.part in ("history", "all"):
        report["history"] = asyncio.run(history_bench(args.messages, args.repeat))
        print(json.dumps(report["history"], indent=2), flush=True)
    if args.part in ("fanout", "all"):
        report["fanout"] = []
        for n in [int(x) for x in args.nodes.split(",")]:
            r = fanout_bench(n, args.rooms, args.members, args.inflight, args.workers,
                             args.duration, args.warmup)
            report["fanout"].append(r)
            print(json.dumps(r, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
