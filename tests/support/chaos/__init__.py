"""Chaos soak: a cluster of node processes, redis-server and the database
in its own process, chatting clients, and faults (SIGKILL a node, restart
Redis, SIGSTOP the database). ``python -m tests.support.chaos --help``."""

from .report import SoakReport
from .soak import SoakConfig, run_soak

__all__ = ["SoakConfig", "SoakReport", "run_soak"]
