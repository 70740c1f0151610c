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
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "serve"], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT,
            )
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
def running_nodes(env: dict[str, str], log_dir: Path, count: int) -> Iterator[list[NodeProcess]]:
    """``count`` node processes with the same settings (one cluster), each
    logging to ``log_dir/node<i>.log``; every one started is stopped after."""
    started: list[NodeProcess] = []
    try:
        for index in range(count):
            node = NodeProcess(env, log_path=log_dir / f"node{index}.log")
            node.start()
            started.append(node)
        yield started
    finally:
        for node in started:
            node.terminate()


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


CLUSTER_BUS_OFFSET = 10000  # a cluster node also listens on port + 10000


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterProcess:
    """A real Redis Cluster of our own: ``masters`` redis-servers with
    ``--cluster-enabled yes`` on free ports (each with ``replicas`` replicas),
    joined by ``redis-cli --cluster create``. ``kill_master(i)`` SIGKILLs a
    master; its replica takes over after ``NODE_TIMEOUT_MS``."""

    NODE_TIMEOUT_MS = 2000

    def __init__(self, workdir: Path, *, masters: int = 3, replicas: int = 1) -> None:
        self.workdir = workdir
        self.count = masters * (1 + replicas)
        self.replicas = replicas
        self.nodes: list[RedisProcess] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes) + "/"

    def start(self) -> None:
        binary = shutil.which("redis-cli")
        if binary is None:
            raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
        for i in range(self.count):
            node_dir = self.workdir / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            node = RedisProcess(node_dir)
            node.port = _free_cluster_port()
            node.proc = subprocess.Popen(
                [node.binary, "--bind", "127.0.0.1", "--port", str(node.port), "--save", "",
                 "--appendonly", "no", "--dir", str(node_dir), "--loglevel", "warning",
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.nodes.append(node)
        for node in self.nodes:
            wait_for_port(node.port, proc=node.proc)
        subprocess.run(
            [binary, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )
        self.wait_ok()
        self._wait_replicas_synced()

    def _wait_replicas_synced(self, timeout: float = 30.0) -> None:
        """A replica that has not synced once cannot be promoted."""
        deadline = time.monotonic() + timeout
        wanted = self.count - self.count // (1 + self.replicas)
        while time.monotonic() < deadline:
            synced = sum("master_link_status:up" in self._info(n, "info", "replication")
                         for n in self.nodes)
            if synced >= wanted:
                return
            time.sleep(0.2)
        raise TimeoutError("the cluster's replicas did not sync")

    def _info(self, node: RedisProcess, *command: str) -> str:
        out = subprocess.run(["redis-cli", "-p", str(node.port), *command],
                             capture_output=True, text=True, timeout=5)
        return out.stdout

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and knows all slots."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
            if all("cluster_state:ok" in self._info(n, "cluster", "info") for n in live):
                return
            time.sleep(0.2)
        raise TimeoutError("the Redis cluster did not become ok")

    def masters(self) -> list[RedisProcess]:
        live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        return [n for n in live if "role:master" in self._info(n, "info", "replication")]

    def master_of(self, key: str) -> RedisProcess:
        """The live master serving ``key``'s slot."""
        masters = self.masters()
        slot = int(self._info(masters[0], "cluster", "keyslot", key).strip())
        for node in masters:
            for row in self._info(node, "cluster", "nodes").splitlines():
                if "myself" not in row:
                    continue
                for part in row.split()[8:]:
                    lo, _, hi = part.partition("-")
                    if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                        return node
        raise LookupError(f"no live master serves the slot of {key!r}")

    def wait_failover(self, masters: int, timeout: float = 30.0) -> None:
        """After a master was killed: until ``masters`` live masters (a
        replica promoted) and the cluster is ok again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.masters()) >= masters:
                self.wait_ok(max(1.0, deadline - time.monotonic()))
                return
            time.sleep(0.2)
        raise TimeoutError("no replica took over")

    def kill(self, node: RedisProcess) -> None:
        node.kill()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


class RedisSentinelProcess:
    """A Redis master, one replica and one real ``redis-server --sentinel``
    watching them (quorum 1, down after ``DOWN_AFTER_MS``), on free ports.
    ``kill_master()`` SIGKILLs the current master; the sentinel promotes the
    replica."""

    DOWN_AFTER_MS = 1000
    SERVICE = "mymaster"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.master = RedisProcess(workdir / "master")
        self.replica = RedisProcess(workdir / "replica")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.SERVICE}/0"

    def _redis(self, node: RedisProcess, *extra: str) -> None:
        node.workdir.mkdir(parents=True, exist_ok=True)
        node.proc = subprocess.Popen(
            [node.binary, "--bind", "127.0.0.1", "--port", str(node.port), "--save", "",
             "--appendonly", "no", "--dir", str(node.workdir), "--loglevel", "warning", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(node.port, proc=node.proc)

    def start(self) -> None:
        self._redis(self.master)
        self._redis(self.replica, "--replicaof", "127.0.0.1", str(self.master.port))
        config = self.workdir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} {self.DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.SERVICE} 5000\n"
        )
        self.proc = subprocess.Popen(
            [self.master.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)
        deadline = time.monotonic() + 30
        while "master_link_status:up" not in _cli(self.replica.port, "info", "replication"):
            if time.monotonic() > deadline:
                raise TimeoutError("the replica did not sync")
            time.sleep(0.1)
        while "num-slaves" not in _cli(self.port, "sentinel", "master", self.SERVICE) or \
                _cli(self.port, "sentinel", "replicas", self.SERVICE).strip() == "":
            if time.monotonic() > deadline:
                raise TimeoutError("the sentinel does not know the replica")
            time.sleep(0.1)

    def master_port(self) -> int:
        out = _cli(self.port, "sentinel", "get-master-addr-by-name", self.SERVICE).split()
        return int(out[1])

    def kill_master(self) -> None:
        self.master.kill()

    def wait_promoted(self, timeout: float = 30.0) -> None:
        """Until the sentinel names the replica as master."""
        deadline = time.monotonic() + timeout
        while self.master_port() != self.replica.port:
            if time.monotonic() > deadline:
                raise TimeoutError("the sentinel did not promote the replica")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in (self.proc,):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.proc = None
        self.master.kill()
        self.replica.kill()


def _cli(port: int, *command: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True,
                          text=True, timeout=5).stdout
