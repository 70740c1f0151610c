"""The embedded SecantusDB (MongoDB wire protocol) in a child process of the
node, under the data dir, with credentials that change every start."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import secrets
import select
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from loguru import logger
from ..private_files import private_dir, secure_tree, write_private_file

EMBEDDED_HOST = "127.0.0.1"  # loopback only; SecantusDB 0.7 cannot listen on a Unix socket
EMBEDDED_DB_FOLDER = "db"
EMBEDDED_URL_FILE = "embedded-db.url"  # this start's URL with credentials, 0600
EMBEDDED_LOG_FILE = "embedded-db.log"  # the child's stderr (SecantusDB's own lines), 0600
CHILD_SCRIPT = Path(__file__).with_name("embedded_db_main.py")
START_TIMEOUT_S = 60.0  # WiredTiger recovery after a crash can take a while
STOP_TIMEOUT_S = 30.0  # then SIGKILL
NODE_USER = "skillshare"
AUTH_DB = "admin"
PASSWORD_BYTES = 32
# What the node needs (CRUD, indexes, transactions) and nothing more: no user
# administration, no shutdown, no fail points.
NODE_ROLES = ("readWriteAnyDatabase", "dbAdminAnyDatabase")


class EmbeddedDatabaseUnavailable(RuntimeError):
    """The embedded database's process could not start; the message is the
    one line an operator needs."""


class EmbeddedDatabaseBusy(EmbeddedDatabaseUnavailable):
    """Another process has the embedded database's directory open."""


WIREDTIGER_LOCK_FILE = "WiredTiger.lock"


def _busy(path: Path) -> EmbeddedDatabaseBusy:
    return EmbeddedDatabaseBusy(
        f"the embedded database in {path} is in use by another process "
        "(a running `skillshare serve`?); stop it first, or set "
        "SKILLSHARE_MONGO_URL to a database both can share"
    )


def _refuse_if_locked(path: Path) -> None:
    """WiredTiger holds an fcntl lock on its lock file while a process has the
    directory open. Asking first (and letting go at once) turns that into one
    line, instead of the library's own error lines."""
    lock_file = path / WIREDTIGER_LOCK_FILE
    if not lock_file.exists():
        return
    with open(lock_file, "rb+") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise _busy(path) from None
        fcntl.lockf(fh, fcntl.LOCK_UN)


class EmbeddedDatabase:
    """SecantusDB in a child process of this one (``embedded_db_main.py``)
    on a loopback port, with authentication required, so its query engine
    gets a core of its own instead of sharing the node's event loop.

    Every start creates a new random password for the node's database user;
    the URL carrying it is kept only in memory and in
    ``<data_dir>/embedded-db.url`` (0600, removed on stop), so other local
    processes can neither read nor write the data. ``restart()`` brings a
    dead child back on the same port with the same password, so clients
    holding the URL reconnect by themselves. The child exits when this
    process goes away, however it goes (see ``embedded_db_main``).

    ``roles`` and ``enable_test_commands`` exist for the test suite's shared
    server (fail points need ``root``); a node keeps the defaults."""

    def __init__(
        self, data_dir: Path, *, roles: Sequence[str] = NODE_ROLES,
        enable_test_commands: bool = False, port: int = 0,
        start_timeout: float = START_TIMEOUT_S, stop_timeout: float = STOP_TIMEOUT_S,
    ) -> None:
        if importlib.util.find_spec("secantus") is None:
            raise EmbeddedDatabaseUnavailable(
                "SKILLSHARE_MONGO_URL is unset and the embedded database is not "
                "installed: pip install 'skillshare[embedded]' or set SKILLSHARE_MONGO_URL"
            )
        private_dir(data_dir)
        self.path = private_dir(data_dir / EMBEDDED_DB_FOLDER)
        secure_tree(self.path)
        self.url_file = data_dir / EMBEDDED_URL_FILE
        self.log_file = data_dir / EMBEDDED_LOG_FILE
        self._roles = list(roles)
        self._enable_test_commands = enable_test_commands
        self._port = port
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        _refuse_if_locked(self.path)
        self._password = secrets.token_urlsafe(PASSWORD_BYTES)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        return (f"mongodb://{NODE_USER}:{quote(self._password, safe='')}@{EMBEDDED_HOST}:"
                f"{self._port}/?authSource={AUTH_DB}")

    def exit_code(self) -> int | None:
        """None while the child runs; its exit code (negative: the signal)
        once it is gone."""
        return None if self._proc is None else self._proc.poll()

    def launch(self) -> None:
        """Start the child (returns at once; ``wait_ready`` waits for it).
        Call from the thread that lives as long as the node (the event
        loop's): Linux's parent-death signal follows the forking thread."""
        with open(self.log_file, "ab") as log:
            os.chmod(self.log_file, 0o600)
            self._proc = subprocess.Popen(
                [sys.executable, str(CHILD_SCRIPT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, close_fds=True,
            )
        assert self._proc.stdin is not None
        config = {
            "host": EMBEDDED_HOST, "port": self._port, "path": str(self.path),
            "password": self._password, "user": NODE_USER, "auth_db": AUTH_DB,
            "roles": self._roles, "enable_test_commands": self._enable_test_commands,
            "parent_pid": os.getpid(), "stop_timeout": self._stop_timeout,
        }
        self._proc.stdin.write(json.dumps(config).encode() + b"\n")
        self._proc.stdin.flush()

    def wait_ready(self) -> None:
        """Block until the child listens; EmbeddedDatabaseUnavailable (or
        EmbeddedDatabaseBusy) with one line when it cannot."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], self._start_timeout)
        line = proc.stdout.readline() if ready else b""
        try:
            answer = json.loads(line) if line else {}
        except ValueError:
            answer = {}
        if "port" in answer:
            self._port = int(answer["port"])
            return
        self._kill()
        if answer.get("error") == "busy":
            raise _busy(self.path)
        reason = answer.get("message") or (
            f"no answer within {self._start_timeout:g} s" if not ready
            else f"it exited with code {proc.returncode}")
        raise EmbeddedDatabaseUnavailable(
            f"the embedded database in {self.path} could not start on "
            f"{EMBEDDED_HOST}:{self._port or 'a free port'}: {reason} (its log: {self.log_file})"
        )

    def start(self) -> str:
        """Launch and wait in the calling thread (tests, scripts)."""
        self.launch()
        self.wait_ready()
        return self.start_url()

    def start_url(self) -> str:
        """After ``wait_ready``: publish this start's URL and return it."""
        url = self.url
        write_private_file(self.url_file, f"{url}\n".encode())
        # The child's umask is 077; anyone embedding us with a looser one
        # still gets a private tree (the folder itself is 0700 in any case).
        secure_tree(self.path, warn=False)
        logger.info("embedded database started on {}:{} (pid {}; data in {}; URL with this "
                    "start's credentials in {})", EMBEDDED_HOST, self._port, self.pid,
                    self.path, self.url_file)
        return url

    def kill(self) -> None:
        """SIGKILL a child that stopped answering."""
        self._kill()

    def _kill(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        assert self._proc is not None
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the child has not closed its database
        within the stop timeout."""
        self.url_file.unlink(missing_ok=True)
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("embedded database (pid {}) did not stop within {:g} s; killing it",
                               proc.pid, self._stop_timeout)
                proc.kill()
                proc.wait()
        self._close_pipes()
        logger.info("embedded database stopped (pid {})", proc.pid)
