"""Real services for tests: the embedded database, redis-server processes
on free ports, and server node processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def cluster_node_env(
    *, mongo_url: str, db: str, redis_url: str, data_dir: Path, secret_key: str,
    node_ttl: float, sweep: float = 0.5, **extra: str,
) -> dict[str, str]:
    """Environment for a ``NodeProcess`` in a multi-node test: shared
    database and Redis, cheap password hashing, generous limits and short
    presence timings (the contract's bounds are checked as deadlines)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
    env.update({
        "SKILLSHARE_ENV": "test", "SKILLSHARE_MONGO_URL": mongo_url, "SKILLSHARE_MONGO_DB": db,
        "SKILLSHARE_REDIS_URL": redis_url, "SKILLSHARE_SECRET_KEY": secret_key,
        # every node reads what the others encrypted
        "SKILLSHARE_DATA_KEY": "cluster-data-key-" + "d" * 32,
        "SKILLSHARE_DATA_DIR": str(data_dir), "SKILLSHARE_PASSWORD_HASH_TIME_COST": "1",
        "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": "1024", "SKILLSHARE_REGISTER_LIMIT": "10000/hour",
        "SKILLSHARE_API_LIMIT": "100000/minute", "SKILLSHARE_LOG_LEVEL": "INFO",
        "SKILLSHARE_PRESENCE_HEARTBEAT_INTERVAL": "0.5",
        "SKILLSHARE_PRESENCE_SWEEP_INTERVAL": str(sweep),
        "SKILLSHARE_PRESENCE_NODE_TTL": str(node_ttl),
    })
    env.update({f"SKILLSHARE_{k.upper()}": v for k, v in extra.items()})
    return env


class ChildProcess:
    """A service process a test owns: stopped with SIGTERM (SIGKILL when it
    does not exit in time) or killed outright, then forgotten."""

    proc: subprocess.Popen | None = None

    def _terminate(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class RedisProcess(ChildProcess):
    """A redis-server of our own on a free port; stop, start and kill it at will."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        self._terminate(timeout=10)

    def flushall(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.flushall()
        finally:
            client.close()


TURN_CONFIG = ROOT / "config" / "turnserver.conf"
#: Longest allocation lifetime the test coturn grants to a client asking for
#: one (``max-allocate-lifetime``): short, so allocations must be refreshed
#: within a test. (Chromium asks for none and gets coturn's default 600 s.)
TEST_TURN_ALLOCATION_LIFETIME_S = 6
#: Relay ports each test coturn may use (its own range above a free port).
TEST_TURN_RELAY_PORTS = 40


class TurnProcess(ChildProcess):
    """A real coturn ``turnserver`` of our own, on free loopback ports.

    It reads the kit's ``config/turnserver.conf`` (``use-auth-secret`` and
    everything else) and overrides only what a test must: loopback listening
    and relay addresses, ports, loopback peers allowed (every peer is on
    127.0.0.1 here; production denies them), no TLS (no certificate here),
    no CLI, the shared secret, a short allocation lifetime and its own
    (verbose) log, pid and database files under ``workdir``.
    """

    def __init__(self, workdir: Path, *, secret: str,
                 allocation_lifetime_s: int = TEST_TURN_ALLOCATION_LIFETIME_S) -> None:
        binary = shutil.which("turnserver")
        if binary is None:
            raise RuntimeError("turnserver is not installed (apt-get install coturn)")
        self.binary = binary
        self.workdir = workdir
        self.secret = secret
        self.allocation_lifetime_s = allocation_lifetime_s
        self.port = free_port()
        self.min_relay_port = _free_port_range(TEST_TURN_RELAY_PORTS)
        self.log_path = workdir / "turnserver.log"
        self.proc: subprocess.Popen | None = None

    def urls(self, *, transport: str | None = None) -> list[str]:
        suffix = f"?transport={transport}" if transport else ""
        return [f"turn:127.0.0.1:{self.port}{suffix}"]

    def command(self) -> list[str]:
        return [
            self.binary, "-c", str(TURN_CONFIG),
            "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
            "--listening-port", str(self.port),
            "--min-port", str(self.min_relay_port),
            "--max-port", str(self.min_relay_port + TEST_TURN_RELAY_PORTS - 1),
            "--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1",
            "--no-tls", "--no-dtls", "--no-cli",
            "--static-auth-secret", self.secret,
            f"--max-allocate-lifetime={self.allocation_lifetime_s}",
            "--userdb", str(self.workdir / "turndb"),
            "--pidfile", str(self.workdir / "turnserver.pid"),
            "--log-file", str(self.log_path), "--simple-log", "--no-stdout-log", "--verbose",
        ]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(), cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        self._terminate(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _free_port_range(count: int) -> int:
    """The first of ``count`` consecutive UDP ports free right now on
    127.0.0.1 (tried from a free port upwards)."""
    for _ in range(50):
        first = free_port()
        if first + count > 65535:
            continue
        socks = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free UDP ports on 127.0.0.1")


class NodeProcess(ChildProcess):
    """``python -m server serve`` in its own process, like production."""

    def __init__(self, env: dict[str, str], *, log_path: Path) -> None:
        self.port = int(env.get("SKILLSHARE_PORT") or free_port())
        self.env = {**os.environ, **env, "SKILLSHARE_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"], cwd=ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.port, timeout=timeout, proc=self.proc)

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM; the exit code (SIGKILL after ``timeout``)."""
        return self._terminate(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


DATABASE_CHILD = """
import signal, sys, threading
from secantus import SecantusDBServer
server = SecantusDBServer(host="127.0.0.1", port=int(sys.argv[1]), storage_path=sys.argv[2])
server.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
server.stop()
"""


@contextlib.contextmanager
def one_node(*, mongo_url: str, redis_process: RedisProcess, workdir: Path, secret_key: str,
             node_ttl: float, **extra: str) -> Iterator[NodeProcess]:
    """One node process on a database of its own and ``redis_process`` (started
    again if a test stopped it); ``extra`` settings as for ``cluster_node_env``."""
    if redis_process.proc is None or redis_process.proc.poll() is not None:
        redis_process.start()
    env = cluster_node_env(mongo_url=mongo_url, db=f"n_{uuid.uuid4().hex[:10]}",
                           redis_url=redis_process.url, data_dir=workdir / "data",
                           secret_key=secret_key, node_ttl=node_ttl, **extra)
    proc = NodeProcess(env, log_path=workdir / "node.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.terminate()


class DatabaseProcess(ChildProcess):
    """The embedded database (SecantusDB) in a child process of its own, so a
    test can pause it (SIGSTOP) and resume it (SIGCONT) under running nodes."""

    def __init__(self, workdir: Path) -> None:
        self.path = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DATABASE_CHILD, str(self.port), str(self.path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM and wait: WiredTiger must close before the directory goes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self._terminate(timeout=30)
