"""Real services for tests: the embedded database, redis-server processes
on free ports, and server node processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
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


class RedisProcess:
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def flushall(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.flushall()
        finally:
            client.close()


class NodeProcess:
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
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
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


class DatabaseProcess:
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
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
