"""The embedded database's own process, started by the node (``EmbeddedDatabase``)
so SecantusDB's query engine runs beside the node's event loop on another
core instead of inside it. Run as a script (``python embedded_db_main.py``): it
imports only the standard library and SecantusDB.

Protocol, all on the child's stdin/stdout so no secret ever shows in ``ps``:
the parent writes one JSON line (data folder, port, this start's password,
roles, parent pid); the child answers one JSON line, ``{"port": N}`` once it
listens or ``{"error": "busy"|"failed", "message": "..."}`` and exits 1.
Afterwards stdin stays open: end-of-file means the node is gone (stopped,
crashed or SIGKILLed), and the child shuts the database down cleanly and
exits. SIGTERM does the same; on Linux the kernel also sends SIGTERM when the
parent dies (``PR_SET_PDEATHSIG``), and the child checks every second that
its parent is still the node, so no child outlives its node. Stopping
takes at most the node's stop timeout (sent in the first line), after which
the kernel ends the process (``SIGALRM``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import signal
import sys
import threading
import time
from typing import Any

PR_SET_PDEATHSIG = 1
BUSY_HINTS = ("busy", "resource temporarily unavailable")


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGTERM when the parent dies; the stdin watch covers
    other systems (and the race before this call)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl
        sys.exit(0)


def _log(line: str) -> None:
    """One line on stderr: the node sends it to the database's log file."""
    sys.stderr.write(f"embedded database (pid {os.getpid()}): {line}\n")
    sys.stderr.flush()


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _provision_node_user(server: Any, *, user: str, auth_db: str, password: str,
                         roles: list[str]) -> None:
    """(Re)create the node's user with this start's password, straight into
    storage before the server listens: with authentication on from the first
    connection there is no window in which anyone gets in without it. The
    record has the shape SecantusDB's ``createUser`` writes."""
    from secantus.auth import SCRAM_SHA_256, derive_credentials

    record = {
        "_id": f"{auth_db}.{user}", "user": user, "db": auth_db,
        "credentials": derive_credentials(password, mechanism=SCRAM_SHA_256).to_doc(),
        "roles": [{"role": role, "db": auth_db} for role in roles],
        "mechanisms": [SCRAM_SHA_256],
    }
    server.storage.add_user(auth_db, user, record, replace=True)


def _keep_profile_settings_in_memory(storage: Any) -> None:
    """SecantusDB reads a database's profiling settings from WiredTiger on
    every command (a tenth of its CPU in the launch test). Only
    ``set_profile`` (the ``profile`` command) writes them, in this process,
    so they are read once and forgotten when set. A lock makes a read that
    misses and a concurrent set take turns, so no old value is kept.
    (tests/storage/test_embedded_db_process.py fingerprints both methods.)"""
    read, write = storage.get_profile, storage.set_profile
    known: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def get_profile(db: str) -> dict[str, Any]:
        settings = known.get(db)
        if settings is None:
            with lock:
                settings = known[db] = read(db)
        return dict(settings)

    def set_profile(db: str, **settings: Any) -> None:
        with lock:
            known.pop(db, None)
            write(db, **settings)

    storage.get_profile, storage.set_profile = get_profile, set_profile


def _start(config: dict[str, Any]) -> Any:
    from secantus import SecantusDBServer

    try:
        server = SecantusDBServer(
            host=config["host"], port=config["port"], storage_path=config["path"],
            require_auth=True, enable_test_commands=config["enable_test_commands"],
            # its sweep scans every document of each TTL collection under the
            # storage-wide lock; the node expires by index instead
            # (server/storage/embedded_expiry.py)
            ttl_sweep_seconds=0,
        )
    except Exception as exc:  # WiredTigerError; its module is SecantusDB's own
        if any(hint in str(exc).lower() for hint in BUSY_HINTS):
            _answer({"error": "busy", "message": str(exc)})
            sys.exit(1)
        raise
    _provision_node_user(server, user=config["user"], auth_db=config["auth_db"],
                         password=config["password"], roles=config["roles"])
    _keep_profile_settings_in_memory(server.storage)
    server.start()
    return server


def _stop(server: Any, auth_db: str, user: str) -> None:
    # SecantusDB 0.7's Storage.close() marks the store closed, then writes
    # its oplog counters through the *calling* thread's WiredTiger session,
    # which it refuses to open once closed ("failed to persist oplog meta
    # during close ... Storage is closed"). A read opens this thread's
    # session first, so that last write succeeds.
    server.storage.get_user(auth_db, user)
    # Blocks until its connection threads drain; WiredTiger closes cleanly.
    server.stop()


def main() -> int:
    # Ctrl-C in a terminal reaches the whole process group: the node decides
    # when its database stops, not the keyboard.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    config = json.loads(sys.stdin.readline())
    _die_with_parent(config["parent_pid"])
    os.umask(0o077)
    try:
        server = _start(config)
    except SystemExit:
        raise
    except Exception as exc:
        _answer({"error": "failed", "message": " ".join(f"{type(exc).__name__}: {exc}".split())})
        return 1
    _answer({"port": server.address[1]})
    # what start-up built lives as long as the process: out of every later
    # collection's traversal (server/gc_tuning.py says why)
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])

    def watch_parent() -> None:
        sys.stdin.read()  # returns at end-of-file: the node closed the pipe or died
        stop.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    while not stop.wait(1.0):
        if os.getppid() != config["parent_pid"]:  # reparented: the node is gone,
            break  # whether or not its death signal or the pipe's end got here
    # A clean stop takes a few seconds. Should one wedge, the kernel ends the
    # process when the node's own stop timeout has passed (SIGALRM, no
    # handler: it works whatever a thread holds), as the node would SIGKILL
    # it; an orphan has no node to do that. WiredTiger's journal recovers
    # an unclean exit at the next start.
    timeout = max(1, round(float(config.get("stop_timeout", 30.0))))
    signal.alarm(timeout)
    started = time.monotonic()
    _log(f"stopping the database (at most {timeout} s)")
    _stop(server, config["auth_db"], config["user"])
    _log(f"database stopped in {time.monotonic() - started:.1f} s")
    # Nothing is left to finish: leave without the interpreter's shutdown,
    # which would wait for any thread SecantusDB left behind.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
