"""The embedded database in a process of its own: the node starts it,
starts it again when it dies, stops it on shutdown, and never leaves it
behind, and one line says why when it cannot start."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from pymongo import AsyncMongoClient

from server.storage.database import (
    EmbeddedDatabase,
    EmbeddedDatabaseUnavailable,
    open_database,
)
from server.storage.embedded_supervisor import EmbeddedSupervisor
from tests.support.services import ROOT, NodeProcess

LOW_COST = {"SKILLSHARE_PASSWORD_HASH_TIME_COST": "1", "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": "1024"}
PATIENCE_S = 60.0  # a deadline for waiting loops on a busy machine, not a speed target


def _database_children(parent: int) -> list[int]:
    """Live processes whose parent is ``parent`` running the embedded database."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == parent and b"embedded_db_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """``pid`` is still an embedded database process (not a zombie, and not
    a new process that got the number after it ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return state != "Z" and b"embedded_db_main" in cmdline


async def _eventually(check, what: str):
    deadline = time.monotonic() + PATIENCE_S
    while True:
        try:
            result = await check()
        except Exception as exc:
            result, error = None, exc
        else:
            error = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what} (last error: {error!r})")
        await asyncio.sleep(0.2)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}


async def test_the_database_runs_in_its_own_process_and_comes_back_after_sigkill(tmp_path):
    registry = CollectorRegistry()
    # root for ``fsync`` below; a node's user has no cluster actions.
    embedded = EmbeddedDatabase(tmp_path / "data", roles=("root",))
    embedded.launch()
    await asyncio.to_thread(embedded.wait_ready)
    client = AsyncMongoClient(embedded.start_url(), serverSelectionTimeoutMS=2000)
    supervisor = EmbeddedSupervisor(embedded, ping=lambda: client.admin.command("ping"),
                                    registry=registry)
    supervisor.start()
    try:
        db = client["skillshare_t"]
        await db["users"].insert_one({"_id": "u1", "email": "a@example.com"})
        # Like mongod's default write concern (j: false), an acknowledged
        # write reaches the journal file a moment later; ``fsync`` makes sure.
        await client.admin.command("fsync")
        (child,) = {embedded.pid} & set(_database_children(os.getpid()))
        assert child != os.getpid()

        os.kill(child, signal.SIGKILL)
        found = await _eventually(lambda: db["users"].find_one({"_id": "u1"}),
                                  "the database answers again")
        assert found == {"_id": "u1", "email": "a@example.com"}  # data intact
        assert embedded.pid in _database_children(os.getpid())
        assert embedded.pid != child
        assert registry.get_sample_value("skillshare_embedded_db_restarts_total",
                                         {"reason": "exited"}) == 1
        assert registry.get_sample_value("skillshare_embedded_db_up") == 1
        await db["users"].insert_one({"_id": "u2"})  # and takes writes
    finally:
        await supervisor.stop()
        await client.close()
        await asyncio.to_thread(embedded.stop)
    assert embedded.pid not in _database_children(os.getpid())


async def test_open_database_stops_its_database_process(tmp_path):
    session_database = set(_database_children(os.getpid()))
    async with open_database(mongo_url=None, db_name="skillshare_t",
                             data_dir=tmp_path / "data") as db:
        await db["users"].insert_one({"_id": "u1"})
        (child,) = set(_database_children(os.getpid())) - session_database
    assert not _alive(child)
    async with open_database(mongo_url=None, db_name="skillshare_t",
                             data_dir=tmp_path / "data") as db:  # closed cleanly: all there
        assert await db["users"].find_one({"_id": "u1"}) == {"_id": "u1"}


async def test_readyz_names_the_database_while_it_is_down_and_the_rest_keeps_serving(
    make_client, tmp_path,
):
    session_database = set(_database_children(os.getpid()))  # the suite's shared one
    client = await make_client(mongo_url=None, data_dir=tmp_path / "node")
    assert (await client.get("/readyz")).status == 200
    (child,) = set(_database_children(os.getpid())) - session_database
    lock_file = tmp_path / "node" / "db" / "WiredTiger.lock"
    # Holding WiredTiger's lock keeps every restart failing (as if another
    # process had the folder open), so "down" lasts as long as the test wants.
    with open(lock_file, "rb+") as held:
        os.kill(child, signal.SIGKILL)
        await _eventually(lambda: asyncio.to_thread(lambda: not _alive(child)), "child gone")
        fcntl.lockf(held, fcntl.LOCK_EX)

        async def not_ready():
            resp = await client.get("/readyz")
            return resp.status == 503 and await resp.json()

        body = await _eventually(not_ready, "/readyz answers 503")
        assert body["error"]["code"] == "unavailable"
        assert body["error"]["details"]["failing"] == ["database"]
        assert (await client.get("/healthz")).status == 200  # no database needed

        async def reported_down():
            return "skillshare_embedded_db_up 0.0" in await (await client.get("/metrics")).text()

        await _eventually(reported_down, "the metric says the database is down")
        fcntl.lockf(held, fcntl.LOCK_UN)

    async def ready():
        return (await client.get("/readyz")).status == 200

    await _eventually(ready, "/readyz answers 200 after the restart")
    resp = await client.post("/api/v1/auth/register", json={
        "email": "back@example.com", "password": "a long password", "display_name": "Back"})
    assert resp.status == 201


async def test_node_sigterm_stops_the_database_process(tmp_path):
    env = {**_clean_env(), **LOW_COST, "SKILLSHARE_DATA_DIR": str(tmp_path / "var")}
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        (child,) = _database_children(node.proc.pid)
        async with aiohttp.ClientSession() as http:
            assert (await http.get(f"{node.url}/readyz")).status == 200
    finally:
        assert node.terminate() == 0, node.log()
    assert not _alive(child), node.log()
    assert "embedded database stopped" in node.log()
    assert not (tmp_path / "var" / "embedded-db.url").exists()


async def test_a_served_node_freezes_its_startup_heap_out_of_collection(tmp_path):
    env = {**_clean_env(), **LOW_COST, "SKILLSHARE_DATA_DIR": str(tmp_path / "var")}
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        async with aiohttp.ClientSession() as http:
            metrics = await (await http.get(f"{node.url}/metrics")).text()
    finally:
        assert node.terminate() == 0, node.log()
    (frozen,) = [float(line.split()[1]) for line in metrics.splitlines()
                 if line.startswith("skillshare_gc_frozen_objects ")]
    assert frozen > 10_000, metrics  # modules, routes, pools: far more than a few
    assert "start-up objects frozen out of garbage collection" in node.log()
    (threshold,) = [float(line.split()[1]) for line in metrics.splitlines()
                    if line.startswith("skillshare_gc_young_threshold ")]
    assert threshold == 10_000, metrics


async def test_node_sigkill_leaves_no_database_process_behind(tmp_path):
    env = {**_clean_env(), **LOW_COST, "SKILLSHARE_DATA_DIR": str(tmp_path / "var")}
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        (child,) = _database_children(node.proc.pid)
    finally:
        node.proc.kill()
        node.proc.wait()
    try:
        await _eventually(lambda: asyncio.to_thread(lambda: not _alive(child)),
                          "the orphaned database process exits by itself")
    except AssertionError:
        os.kill(child, signal.SIGKILL)  # leave nothing behind when it fails
        raise
    # It closed its database: the next node opens the same folder.
    node.start()
    try:
        async with aiohttp.ClientSession() as http:
            assert (await http.get(f"{node.url}/readyz")).status == 200, node.log()
    finally:
        assert node.terminate() == 0, node.log()


async def test_a_port_in_use_is_one_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedDatabaseUnavailable) as refused:
            async with open_database(mongo_url=None, db_name="skillshare_t",
                                     data_dir=tmp_path / "data", embedded_port=port):
                pass
        message = str(refused.value)
        assert f"127.0.0.1:{port}" in message and "in use" in message.lower(), message
        assert "\n" not in message

        env = {**_clean_env(), **LOW_COST, "SKILLSHARE_DATA_DIR": str(tmp_path / "var"),
               "SKILLSHARE_EMBEDDED_DB_PORT": str(port)}
        result = subprocess.run([sys.executable, "-m", "server", "serve"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


async def test_a_database_process_that_stops_answering_is_replaced(tmp_path):
    registry = CollectorRegistry()
    embedded = EmbeddedDatabase(tmp_path / "data")
    embedded.launch()
    await asyncio.to_thread(embedded.wait_ready)
    client = AsyncMongoClient(embedded.start_url(), serverSelectionTimeoutMS=2000)
    supervisor = EmbeddedSupervisor(embedded, ping=lambda: client.admin.command("ping"),
                                    registry=registry, ping_timeout=0.5)
    supervisor.start()
    hung = embedded.pid
    try:
        os.kill(hung, signal.SIGSTOP)  # alive, but answers nothing
        await _eventually(lambda: client.admin.command("ping"),
                          "the database answers again")
        assert embedded.pid != hung and not _alive(hung)
        assert registry.get_sample_value("skillshare_embedded_db_restarts_total",
                                         {"reason": "unresponsive"}) == 1
    finally:
        await supervisor.stop()
        await client.close()
        await asyncio.to_thread(embedded.stop)


async def test_profiling_settings_take_effect_at_once_though_the_database_keeps_them_in_memory(
        tmp_path):
    """The child keeps each database's profiling settings in memory
    (``_keep_profile_settings_in_memory``): setting them still changes what
    the very next command records."""
    async with open_database(mongo_url=None, db_name="skillshare_t",
                             data_dir=tmp_path / "data") as db:
        assert (await db.command("profile", -1))["was"] == 0
        await db["users"].find_one({"_id": "before"})
        await db.command("profile", 2)
        await db["users"].find_one({"_id": "while-on"})
        await db.command("profile", 0)
        await db["users"].find_one({"_id": "after"})
        recorded = [e["command"].get("filter") async for e in db["system.profile"].find(
            {"op": "query"})]
    assert recorded == [{"_id": "while-on"}], recorded


def test_the_profiling_settings_secantusdb_reads_are_the_ones_kept_in_memory():
    """``embedded_db_main._keep_profile_settings_in_memory`` relies on
    ``set_profile`` being the only writer of the settings ``get_profile``
    reads (SecantusDB 0.7.0b3). If an upgrade changes either, re-read them,
    then update this."""
    from secantus import commands
    from secantus.storage import Storage

    fingerprints = {
        name: hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:16]
        for name, func in (("Storage.get_profile", Storage.get_profile),
                           ("Storage.set_profile", Storage.set_profile),
                           ("commands._maybe_record_profile", commands._maybe_record_profile))}
    assert fingerprints == {
        "Storage.get_profile": "375bae489145c215",
        "Storage.set_profile": "eb5d146a9d95ef0f",
        "commands._maybe_record_profile": "b42dfe93cf9ec0fc",
    }
    storage_source = inspect.getsource(Storage)
    assert storage_source.count("_cursor(_PROFILE_TABLE)") == 2  # one read, one write
