"""Memory per idle socket: one node (its own process), the embedded database
in another, N authenticated websocket connections each joined to a group
room, idle (answering pings). Reports the node's RSS growth per socket; with
``--tracemalloc``, the top allocation sites of the growth (a snapshot diff
taken inside the node). ``--servers ours,ref`` measures the Node.js
Socket.IO reference of the fan-out runner (``loadtests/fanout/ref-server.mjs``,
its own fresh database process) the same way, with the same clients, one
after the other. Not a test; results go to docs/benchmarks.md ("Memory per
socket").

    python loadtests/socket_memory.py --sockets 2000,10000
    python loadtests/socket_memory.py --sockets 10000 --servers ours,ref --repeat 3
    python loadtests/socket_memory.py --sockets 2000 --tracemalloc 25

Clients are raw Engine.IO/Socket.IO over aiohttp websockets in ``--workers``
processes; by default they offer permessage-deflate, like browsers and the
official JS client (``ws``) do (``--no-deflate-offer`` to not).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtests.realtime_bench import (  # noqa: E402
    DATA_KEY,
    SECRET,
    free_port,
    start_database,
    start_process,
    wait_port,
)

USERS = 100
ROOM_SIZE = 10
FANOUT = ROOT / "loadtests" / "fanout"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(pid)


# ------------------------------------------------------------ inside the node

def serve_node(snapshot_dir: str, frames: int) -> None:
    """``python -m server serve`` with SIGUSR1 writing a tracemalloc
    snapshot (numbered) to ``snapshot_dir``."""
    import tracemalloc

    from server.cli import serve
    from server.config import Settings

    if frames:
        tracemalloc.start(frames)
    count = iter(range(1000))

    def dump(*_: object) -> None:
        n = next(count)
        if frames:
            import gc

            gc.collect()
            tracemalloc.take_snapshot().dump(f"{snapshot_dir}/snap{n}.bin")
        Path(f"{snapshot_dir}/snap{n}.done").write_text("")

    signal.signal(signal.SIGUSR1, dump)
    serve(Settings())


# ------------------------------------------------------------------- clients

async def _clients(assignments: list[dict], deflate: bool, queue: mp.Queue, stop: mp.Event) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        readers: list[asyncio.Future] = []

        async def answer_pings(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                    await ws.send_str("3")

        async def until(ws: aiohttp.ClientWebSocketResponse, prefix: str) -> str:
            """The next packet starting with ``prefix``, answering pings meanwhile."""
            while True:
                msg = await ws.receive_str()
                if msg == "2":
                    await ws.send_str("3")
                elif msg.startswith(prefix):
                    return msg

        async def one(a: dict) -> None:
            ws = await http.ws_connect(f"{a['url']}/socket.io/?EIO=4&transport=websocket",
                                       compress=15 if deflate else 0, heartbeat=None)
            opening = await ws.receive_str()
            assert opening.startswith("0{"), opening
            await ws.send_str("40" + json.dumps({"token": a["token"]}))
            await until(ws, "40")
            await ws.send_str("420" + json.dumps(["room:join", {"room_id": a["room_id"]}]))
            msg = await until(ws, "430")
            assert '"ok":true' in msg.replace(" ", ""), msg
            sockets.append(ws)
            # answer pings from now on: connecting 10,000 takes longer than a
            # ping timeout, and a socket that does not answer is closed
            readers.append(asyncio.ensure_future(answer_pings(ws)))

        sem = asyncio.Semaphore(50)

        async def limited(a: dict) -> None:
            async with sem:
                await one(a)

        await asyncio.gather(*(limited(a) for a in assignments))
        queue.put(("ready", len(sockets)))
        while not stop.is_set():
            await asyncio.sleep(0.5)
        queue.put(("open", sum(1 for ws in sockets if not ws.closed)))
        for r in readers:
            r.cancel()
        for ws in sockets:
            await ws.close()


def client_worker(assignments: list[dict], deflate: bool, queue: mp.Queue, stop: mp.Event) -> None:
    asyncio.run(_clients(assignments, deflate, queue, stop))


# -------------------------------------------------------------------- runner

async def setup_users(url: str) -> list[dict]:
    """USERS users in groups of ROOM_SIZE: (token, room_id) per user."""
    from loadtests.realtime_bench import setup_users as make_rooms

    return await make_rooms(url, USERS // ROOM_SIZE, ROOM_SIZE)


def snapshot(node_pid: int, snap_dir: Path, n: int) -> None:
    os.kill(node_pid, signal.SIGUSR1)
    deadline = time.monotonic() + 300
    while not (snap_dir / f"snap{n}.done").exists():
        assert time.monotonic() < deadline, "no snapshot"
        time.sleep(0.2)


def top_growth(snap_dir: Path, before: int, after: int, sockets: int, limit: int = 25) -> list[str]:
    import tracemalloc

    old = tracemalloc.Snapshot.load(str(snap_dir / f"snap{before}.bin"))
    new = tracemalloc.Snapshot.load(str(snap_dir / f"snap{after}.bin"))
    lines = []
    total = sum(s.size_diff for s in new.compare_to(old, "filename"))
    lines.append(f"traced growth: {total / sockets / 1024:.1f} KiB per socket")
    for stat in new.compare_to(old, "lineno")[:limit]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        lines.append(f"{stat.size_diff / sockets:8.0f} B/socket  {stat.count_diff / sockets:5.2f} "
                     f"blocks/socket  {where}")
    return lines


def connect_and_measure(pid: int, assignments: list[dict], workers: int, deflate: bool,
                        before: callable, after: callable) -> dict:
    """RSS of ``pid`` (and its children: none for either server) before the
    clients connect and 5 s after the last one joined its room."""
    before()
    rss0 = rss_kib(pid)
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    gens = [ctx.Process(target=client_worker, args=(assignments[w::workers], deflate, queue, stop))
            for w in range(workers)]
    t0 = time.monotonic()
    for g in gens:
        g.start()
    try:
        connected = sum(queue.get(timeout=900)[1] for _ in gens)
        connect_s = time.monotonic() - t0
        time.sleep(5)
        after()
        rss1 = rss_kib(pid)
    finally:
        stop.set()
    still_open = sum(queue.get(timeout=120)[1] for _ in gens)  # at the end: all of them, or say so
    for g in gens:
        g.join(60)
    return {"sockets": connected, "open_at_end": still_open, "deflate_offered": deflate,
            "rss_before_mib": round(rss0 / 1024, 1), "rss_after_mib": round(rss1 / 1024, 1),
            "kib_per_socket": round((rss1 - rss0) / max(still_open, 1), 1),
            "connect_s": round(connect_s, 1)}


def stop_all(procs: list) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except Exception:
                p.kill()


def measure_ours(n_sockets: int, workers: int, deflate: bool, frames: int) -> dict:
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="sock-mem-"))
    procs = []
    try:
        db, db_port = start_database(work)
        procs.append(db)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
        env.update({
            "SKILLSHARE_ENV": "test", "SKILLSHARE_MONGO_URL": f"mongodb://127.0.0.1:{db_port}",
            "SKILLSHARE_MONGO_DB": f"mem{n_sockets}", "SKILLSHARE_SECRET_KEY": SECRET,
            "SKILLSHARE_DATA_KEY": DATA_KEY, "SKILLSHARE_RATE_LIMITS": "off",
            "SKILLSHARE_LOG_LEVEL": "WARNING", "SKILLSHARE_PASSWORD_HASH_TIME_COST": "1",
            "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": "1024",
            "SKILLSHARE_SOCKET_MAX_PER_USER": str(n_sockets // USERS + 1),
            "SKILLSHARE_DATA_DIR": str(work / "data"), "SKILLSHARE_PORT": str(port)})
        node = start_process([sys.executable, str(Path(__file__).resolve()), "--serve-node",
                              str(work), "--tracemalloc", str(frames)], env,
                             work / f"node{n_sockets}.log")
        procs.append(node)
        wait_port(port, 300)
        url = f"http://127.0.0.1:{port}"
        users = asyncio.run(setup_users(url))
        assignments = [{**users[i % len(users)], "url": url} for i in range(n_sockets)]
        time.sleep(2)
        result = {"server": "ours", **connect_and_measure(
            node.pid, assignments, workers, deflate,
            lambda: snapshot(node.pid, work, 0), lambda: snapshot(node.pid, work, 1))}
        if frames:
            result["tracemalloc"] = top_growth(work, 0, 1, result["sockets"])
        return result
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)


REF_SECRET = "socket-memory-ref-secret-" + "r" * 32


def ref_token(user_id: str) -> str:
    """The reference server's own token: ``<user_id>.<HMAC-SHA256, base64url>``."""
    mac = hmac.new(REF_SECRET.encode(), user_id.encode(), hashlib.sha256).digest()
    return f"{user_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def measure_ref(n_sockets: int, workers: int, deflate: bool) -> dict:
    """The Node.js reference (fan-out runner's ref-server.mjs) with the same
    users-in-rooms layout, its own fresh database process."""
    import tempfile

    if not (FANOUT / "node_modules" / "socket.io").is_dir():
        raise SystemExit("loadtests/fanout/node_modules is missing: run `npm ci` there")
    work = Path(tempfile.mkdtemp(prefix="sock-mem-ref-"))
    procs = []
    try:
        db, db_port = start_database(work)
        procs.append(db)
        rooms, users = {}, []
        for _ in range(USERS // ROOM_SIZE):
            room_id = uuid.uuid4().hex
            members = [uuid.uuid4().hex for _ in range(ROOM_SIZE)]
            rooms[room_id] = {"type": "group", "member_ids": members}
            users += [{"token": ref_token(m), "room_id": room_id} for m in members]
        (work / "rooms.json").write_text(json.dumps(rooms))
        port = free_port()
        ref = start_process(["node", str(FANOUT / "ref-server.mjs"), "--port", str(port),
                             "--secret", REF_SECRET, "--rooms", str(work / "rooms.json"),
                             "--mongo", f"mongodb://127.0.0.1:{db_port}/", "--db", f"mem{n_sockets}"],
                            dict(os.environ), work / "ref.log")
        procs.append(ref)
        wait_port(port, 120)
        url = f"http://127.0.0.1:{port}"
        assignments = [{**users[i % len(users)], "url": url} for i in range(n_sockets)]
        time.sleep(2)
        return {"server": "ref", **connect_and_measure(ref.pid, assignments, workers, deflate,
                                                       lambda: None, lambda: None)}
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="2000,10000")
    parser.add_argument("--servers", default="ours", help="ours, ref (the Node.js reference) or ours,ref")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case (servers alternate)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-deflate-offer", action="store_true")
    parser.add_argument("--tracemalloc", type=int, default=0, help="frames to keep (0: off)")
    parser.add_argument("--serve-node", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.serve_node:
        serve_node(args.serve_node, args.tracemalloc)
        return
    servers = args.servers.split(",")
    results = []
    for n_sockets in (int(x) for x in args.sockets.split(",")):
        for i in range(args.repeat):
            for server in (servers if i % 2 == 0 else servers[::-1]):
                result = (measure_ours(n_sockets, args.workers, not args.no_deflate_offer, args.tracemalloc)
                          if server == "ours" else
                          measure_ref(n_sockets, args.workers, not args.no_deflate_offer))
                print(json.dumps(result, indent=2), flush=True)
                results.append(result)
        for server in servers:
            per = [r["kib_per_socket"] for r in results if r["server"] == server and r["sockets"] == n_sockets]
            if per:
                print(f"{n_sockets} sockets, {server}: median {statistics.median(per)} KiB per socket "
                      f"(runs: {per})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
