"""Group commit benchmark: durable chat messages per second and ack latency
of one node on its embedded database (the default: SecantusDB in the node's
process, its own fresh data directory per case), with sends to a room
stored one insert per message (``SKILLSHARE_MESSAGE_BATCH_MAX=1``, the
reference) or batched (the default, 64). Not a test; results go to
docs/benchmarks.md ("Group commit").

    python loadtests/group_commit_bench.py                      # defaults below
    python loadtests/group_commit_bench.py --rates 400,3000 --batch-max 1,64 --runs 3

Load: ``--rooms`` group rooms of ``--members`` users, every member a sender
with one python-socketio socket, open loop: each socket sends at
``rate / sockets`` messages per second on a fixed schedule whatever the
acks do (a slow server queues sends, it does not slow the load down), the
send time kept on the client. Durable msgs/s = messages the node stored during the
measured window (its ``skillshare_messages_persisted_total``), per second;
``acked`` = ``ok`` acks the generator received in the window; node CPU-ms
per durable message from /proc; ack p50/p99 over the sends made in the window; ``failed`` =
error acks, ``unacked`` = sends of the window with no ack 10 s after it.
The node runs pinned to ``--node-cpu``, the load generator (one process) to
``--gen-cpu``; CPU from /proc over the window. Cases are interleaved run by
run, and each figure is the median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtests.realtime_bench import (  # noqa: E402
    DATA_KEY, SECRET, cpu_seconds, free_port, pct, setup_users, start_process, wait_port,
)
from datetime import UTC

ACK_GRACE_S = 10.0
BODY = "group commit benchmark message " + "x" * 50


def generator(assignments: list[dict], rate: float, duration: float, warmup: float, cpu: int,
              out: mp.Queue) -> None:
    os.sched_setaffinity(0, {cpu})
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_generate(assignments, rate, duration, warmup, out))


async def _generate(assignments: list[dict], rate: float, duration: float, warmup: float,
                    out: mp.Queue) -> None:
    import socketio

    clients = []
    deliveries = 0
    window = [float("inf"), float("-inf")]  # perf_counter bounds of the measured window

    def on_message(_data: dict) -> None:
        nonlocal deliveries
        deliveries += 1

    for a in assignments:
        c = socketio.AsyncClient(reconnection=False)
        c.on("message", on_message)
        await c.connect(a["url"], auth={"token": a["token"]}, transports=["websocket"])
        clients.append((c, a["room_id"]))
    out.put(("ready", None))
    interval = len(clients) / rate
    acks: list[tuple[float, float, bool]] = []  # (sent, acked, ok)
    scheduled: list[float] = []
    pending: set[asyncio.Task] = set()

    async def send_one(c: socketio.AsyncClient, room_id: str, sent_at: float) -> None:
        try:
            ack = await c.call("message:send", {"room_id": room_id, "client_id": str(uuid.uuid4()),
                                                "body": BODY}, timeout=duration + warmup + ACK_GRACE_S)
            ok = bool(ack.get("ok"))
        except Exception:  # noqa: BLE001 - a timeout counts as unacked
            return
        acks.append((sent_at, time.perf_counter(), ok))

    async def sender(index: int, c: socketio.AsyncClient, room_id: str, stop: float) -> None:
        next_at = start + interval * index / len(clients)  # phases spread over one interval
        while next_at < stop:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            scheduled.append(next_at)
            task = asyncio.create_task(send_one(c, room_id, next_at))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += interval

    start = time.perf_counter()
    window[0], window[1] = start + warmup, start + warmup + duration
    senders = [asyncio.create_task(sender(i, c, r, window[1])) for i, (c, r) in enumerate(clients)]
    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    deliveries_at_start = deliveries
    out.put(("measuring", None))
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    deliveries_in_window = deliveries - deliveries_at_start
    await asyncio.gather(*senders)
    if pending:
        await asyncio.wait(set(pending), timeout=ACK_GRACE_S)
    sent_in_window = sum(1 for t in scheduled if window[0] <= t < window[1])
    in_window = [(s, a, ok) for s, a, ok in acks if window[0] <= s < window[1]]
    out.put(("done", {
        "durable_in_window": sum(1 for _, a, ok in acks if ok and window[0] <= a < window[1]),
        "sent_in_window": sent_in_window,
        "failed": sum(1 for _, _, ok in in_window if not ok),
        "unacked": sent_in_window - len(in_window),
        "latencies_ms": [(a - s) * 1000 for s, a, ok in in_window if ok],
        "deliveries_in_window": deliveries_in_window,
    }))
    for c, _ in clients:
        await c.disconnect()


def run_case(args: argparse.Namespace, rate: float, batch_max: int, profile: str | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="gc-bench-"))
    node = None
    try:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
        env.update({
            "SKILLSHARE_ENV": "test", "SKILLSHARE_MONGO_DB": "bench", "SKILLSHARE_PORT": str(port),
            "SKILLSHARE_SECRET_KEY": SECRET, "SKILLSHARE_DATA_KEY": DATA_KEY,
            "SKILLSHARE_RATE_LIMITS": "off", "SKILLSHARE_LOG_LEVEL": "WARNING",
            "SKILLSHARE_PASSWORD_HASH_TIME_COST": "1", "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": "1024",
            "SKILLSHARE_DATA_DIR": str(work / "data"),  # the embedded database lives here
            "SKILLSHARE_MESSAGE_BATCH_MAX": str(batch_max),
        })
        node = start_process(["taskset", "-c", str(args.node_cpu), sys.executable, "-m", "server",
                              "serve"], env, work / "node.log")
        wait_port(port, timeout=60)
        url = f"http://127.0.0.1:{port}"
        assignments = asyncio.run(setup_users(url, args.rooms, args.members))
        for a in assignments:
            a["url"] = url
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        gen = ctx.Process(target=generator, args=(assignments, rate, args.duration, args.warmup,
                                                  args.gen_cpu, queue))
        gen.start()
        assert queue.get(timeout=120)[0] == "ready"
        assert queue.get(timeout=120)[0] == "measuring"
        spy = None
        if profile:
            spy = subprocess.Popen(["py-spy", "record", "-p", str(node.pid), "-o", profile,
                                    "-d", str(int(args.duration)), "-r", "100", "-f", "raw"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0 = {"node": cpu_seconds(node.pid), "generator": cpu_seconds(gen.pid)}
        stored0 = persisted(url)
        t0 = time.monotonic()
        time.sleep(args.duration - 0.2)
        cpu1 = {"node": cpu_seconds(node.pid), "generator": cpu_seconds(gen.pid)}
        stored1 = persisted(url)
        cpu_window = time.monotonic() - t0
        kind, result = queue.get(timeout=args.duration + args.warmup + ACK_GRACE_S + 120)
        assert kind == "done"
        gen.join(30)
        if spy is not None:
            spy.wait(60)
        lat = result["latencies_ms"]
        durable_per_s = (stored1 - stored0) / cpu_window
        node_cpu = (cpu1["node"] - cpu0["node"]) / cpu_window
        return {
            "rate": rate, "batch_max": batch_max,
            "durable_msgs_per_s": round(durable_per_s, 1),
            "node_cpu_ms_per_msg": round(1000 * node_cpu / max(durable_per_s, 1e-9), 3),
            "acked_msgs_per_s": round(result["durable_in_window"] / args.duration, 1),
            "offered_msgs_per_s": round(result["sent_in_window"] / args.duration, 1),
            "ack_p50_ms": round(pct(lat, 0.5), 1), "ack_p99_ms": round(pct(lat, 0.99), 1),
            "failed": result["failed"], "unacked": result["unacked"],
            "deliveries_per_s": round(result["deliveries_in_window"] / args.duration, 1),
            "cpu_pct": {k: round(100 * (cpu1[k] - cpu0[k]) / cpu_window, 1) for k in cpu0},
        }
    finally:
        if node is not None and node.poll() is None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
        shutil.rmtree(work, ignore_errors=True)


def service_case(args: argparse.Namespace, rate: float, batch_max: int) -> dict:
    """The same load straight into ``ChatService.send`` in one process
    (pinned to the node's core): the embedded database as a node opens it,
    the real stores, seq cache and group commit; only the Socket.IO edge and
    the fan-out (a no-op emitter) are left out. No load-generator process
    to starve: the sends are coroutines on the node's own loop."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_service_process, args=(vars(args), rate, batch_max, queue))
    proc.start()
    result = queue.get(timeout=args.duration + args.warmup + ACK_GRACE_S + 180)
    proc.join(30)
    return result


def _service_process(args: dict, rate: float, batch_max: int, out: mp.Queue) -> None:
    os.sched_setaffinity(0, {args["node_cpu"]})
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_service_load(args, rate, batch_max)))


async def _service_load(args: dict, rate: float, batch_max: int) -> dict:
    from datetime import datetime

    from server.bus import Bus
    from server.clock import Clock
    from server.realtime.chat import ChatService
    from server.realtime.notifier import Notifier
    from server.realtime.rooms import RoomService
    from server.realtime.sequences import SequenceCache
    from server.storage.fields import FieldCrypto
    from server.storage.messages import MessageStore
    from server.storage.read_markers import ReadMarkerStore
    from server.storage.rooms import RoomStore
    from server.storage.users import UserStore

    class NoEmit:
        async def emit(self, *a, **k):  # noqa: ANN002, ANN003
            return None

    work = Path(tempfile.mkdtemp(prefix="gc-service-"))
    try:
        async with _database(work, retry_writes=args["retry_writes"] == "on") as db:
            fields = FieldCrypto([DATA_KEY])
            store, rooms_store, markers = MessageStore(db, fields), RoomStore(db), ReadMarkerStore(db)
            seqs = SequenceCache(store)
            rooms = RoomService(rooms=rooms_store, messages=store, markers=markers,
                                users=UserStore(db, fields), sequences=seqs, clock=Clock(),
                                consent=None, notifier=Notifier(NoEmit()), bus=Bus())
            chat = ChatService(rooms=rooms, messages=store, markers=markers, sequences=seqs,
                               notifier=Notifier(NoEmit()), clock=Clock(), max_batch=batch_max)
            senders = []
            for r in range(args["rooms"]):
                members = [f"u{r}-{m}" for m in range(args["members"])]
                room = await rooms_store.create_group(name=f"r{r}", member_ids=members,
                                                      created_by=members[0],
                                                      now=datetime.now(UTC))
                senders += [(m, room["_id"]) for m in members]
            done: list[tuple[float, float]] = []
            failed = 0
            pending: set[asyncio.Task] = set()

            async def send_one(user: str, room_id: str, sent_at: float) -> None:
                nonlocal failed
                try:
                    await chat.send(user, room_id, str(uuid.uuid4()), BODY)
                except Exception:  # noqa: BLE001 - counted
                    failed += 1
                    return
                done.append((sent_at, time.perf_counter()))

            interval = len(senders) / rate
            start = time.perf_counter()
            w0, w1 = start + args["warmup"], start + args["warmup"] + args["duration"]

            async def sender(index: int, user: str, room_id: str) -> None:
                next_at = start + interval * index / len(senders)
                while next_at < w1:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    task = asyncio.create_task(send_one(user, room_id, next_at))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    next_at += interval

            tasks = [asyncio.create_task(sender(i, u, r)) for i, (u, r) in enumerate(senders)]
            await asyncio.sleep(max(0.0, w0 - time.perf_counter()))
            cpu0, t0 = cpu_seconds(os.getpid()), time.perf_counter()
            await asyncio.sleep(max(0.0, w1 - time.perf_counter()))
            cpu1, t1 = cpu_seconds(os.getpid()), time.perf_counter()
            await asyncio.gather(*tasks)
            if pending:
                await asyncio.wait(set(pending), timeout=ACK_GRACE_S)
            in_window = [(s, a) for s, a in done if w0 <= s < w1]
            stored = sum(1 for _, a in done if t0 <= a < t1)
            lat = [(a - s) * 1000 for s, a in in_window]
            per_s = stored / (t1 - t0)
            cpu = (cpu1 - cpu0) / (t1 - t0)
            await chat.close()
            return {
                "rate": rate, "batch_max": batch_max, "durable_msgs_per_s": round(per_s, 1),
                "node_cpu_ms_per_msg": round(1000 * cpu / max(per_s, 1e-9), 3),
                "acked_msgs_per_s": round(per_s, 1), "offered_msgs_per_s": rate,
                "ack_p50_ms": round(pct(lat, 0.5), 1), "ack_p99_ms": round(pct(lat, 0.99), 1),
                "failed": failed, "unacked": int(rate * args["duration"]) - len(in_window) - failed,
                "deliveries_per_s": 0.0, "cpu_pct": {"node": round(100 * cpu, 1)},
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)


@asynccontextmanager
async def _database(work: Path, *, retry_writes: bool):
    """The embedded database as ``open_database`` opens it for a node
    (pymongo's default ``retryWrites=true``), or the same with retryable
    writes off (``--retry-writes off``: what that costs the embedded
    database, see docs/benchmarks.md)."""
    from pymongo import AsyncMongoClient

    from server.storage.database import EmbeddedDatabase, open_database
    from server.storage.schema import create_all_indexes

    if retry_writes:
        async with open_database(mongo_url=None, db_name="bench", data_dir=work) as db:
            yield db
        return
    embedded = EmbeddedDatabase(work)
    url = await asyncio.to_thread(embedded.start)
    client: AsyncMongoClient = AsyncMongoClient(url, tz_aware=True, uuidRepresentation="standard",
                                                retryWrites=False)
    try:
        db = client["bench"]
        await create_all_indexes(db)
        yield db
    finally:
        await client.close()
        await asyncio.to_thread(embedded.stop)


def persisted(url: str) -> float:
    """The node's own count of stored messages (its /metrics), so that a
    starved load generator cannot make the node look slower than it is."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("skillshare_messages_persisted_total "):
                return float(line.split()[1])
    raise RuntimeError("skillshare_messages_persisted_total missing from /metrics")


def median_case(results: list[dict]) -> dict:
    out = dict(results[0])
    for key in ("durable_msgs_per_s", "node_cpu_ms_per_msg", "acked_msgs_per_s", "offered_msgs_per_s", "ack_p50_ms", "ack_p99_ms",
                "failed", "unacked", "deliveries_per_s"):
        out[key] = statistics.median(r[key] for r in results)
    out["cpu_pct"] = {k: statistics.median(r["cpu_pct"][k] for r in results)
                      for k in results[0]["cpu_pct"]}
    out["runs"] = [{k: r[k] for k in ("durable_msgs_per_s", "node_cpu_ms_per_msg", "ack_p50_ms",
                                      "ack_p99_ms", "cpu_pct")}
                   for r in results]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--rates", default="400,2000", help="offered msgs/s, comma-separated")
    parser.add_argument("--batch-max", default="1,64", help="SKILLSHARE_MESSAGE_BATCH_MAX values")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--node-cpu", type=int, default=0)
    parser.add_argument("--gen-cpu", type=int, default=1)
    parser.add_argument("--profile-dir", help="py-spy profiles of the node (first run only)")
    parser.add_argument("--mode", choices=("sockets", "service"), default="sockets",
                        help="sockets: a node and python-socketio clients; service: "
                             "ChatService.send in one process (no load generator to starve)")
    parser.add_argument("--retry-writes", choices=("on", "off"), default="on",
                        help="service mode: pymongo retryable writes (on, as a node runs today)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.gen_cpu})  # this process polls too: keep it off the node's core
    rates = [float(r) for r in args.rates.split(",")]
    batches = [int(b) for b in args.batch_max.split(",")]
    cases: dict[tuple[float, int], list[dict]] = {}
    for run in range(args.runs):
        for rate in rates:
            for batch in batches:
                profile = None
                if args.profile_dir and run == 0:
                    Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
                    profile = str(Path(args.profile_dir) / f"node-rate{int(rate)}-batch{batch}.txt")
                result = (run_case(args, rate, batch, profile) if args.mode == "sockets"
                          else service_case(args, rate, batch))
                print(json.dumps({"run": run + 1, **result}), file=sys.stderr, flush=True)
                cases.setdefault((rate, batch), []).append(result)
    report = {
        "machine": f"{os.cpu_count()} CPUs (shared), Python {sys.version.split()[0]}",
        "mode": args.mode, "retry_writes": args.retry_writes, "rooms": args.rooms, "members": args.members, "duration_s": args.duration,
        "runs": args.runs, "cases": [median_case(r) for r in cases.values()],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
