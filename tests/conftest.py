"""Shared fixtures: one embedded database server per test session (each
test gets its own database in it), redis-server processes of our own, and
app/client factories."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.clock import Clock
from server.config import Settings
from server.keys import ROUTE_SPECS
from server.logs import configure_logging
from tests.support.response_contract import ResponseContract
from tests.support.services import RedisProcess
from tests.support.smtp import SmtpServer

TEST_SECRET = "test-secret-key-" + "x" * 32

configure_logging(os.environ.get("SKILLSHARE_TEST_LOG_LEVEL", "WARNING"), json_lines=False)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` (scripts/test.sh): the suite's own split,
    tests/support/scheduling.py."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.support.scheduling import SuiteScheduling

    return SuiteScheduling(config, log)


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    """``SKILLSHARE_TEST_MONGO_URL`` if set, else an embedded SecantusDB."""
    external = os.environ.get("SKILLSHARE_TEST_MONGO_URL")
    if external:
        yield external
        return
    from server.storage.database import EmbeddedDatabase

    with tempfile.TemporaryDirectory(prefix="skillshare-db-") as path:
        # The node's own class (authentication on, URL with credentials);
        # root and fail points for tests that inject database errors.
        database = EmbeddedDatabase(Path(path), roles=("root",), enable_test_commands=True)
        url = database.start()
        try:
            yield url
        finally:
            database.stop()


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One redis-server for the session; tests that stop or kill it must
    start it again (``redis_url`` checks)."""
    proc = RedisProcess(tmp_path_factory.mktemp("redis"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def redis_url(redis_process: RedisProcess) -> str:
    if redis_process.proc is None or redis_process.proc.poll() is not None:
        redis_process.start()
    redis_process.flushall()
    return redis_process.url


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_settings(mongo_url: str, db_name: str, tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "test",
            "mongo_url": mongo_url,
            "mongo_db": db_name,
            "data_dir": tmp_path / "data",
            "secret_key": [TEST_SECRET],
            "password_hash_time_cost": 1,
            "password_hash_memory_kib": 1024,
            "public_url": "http://testserver.local",
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def response_contract() -> Iterator[ResponseContract]:
    """Every JSON reply of the apps it is installed in is checked against
    its route's documented response model; the test fails at teardown on
    any mismatch (tests/support/response_contract.py)."""
    contract = ResponseContract()
    yield contract
    contract.assert_clean()


@pytest.fixture
def aiohttp_client(
    aiohttp_client: Callable[..., Any], response_contract: ResponseContract
) -> Callable[..., Any]:
    """pytest-aiohttp's, with every app of ours it starts held to the
    documented response models (``response_contract``)."""

    async def start(app_or_server: Any, *args: Any, **kwargs: Any) -> TestClient:
        if isinstance(app_or_server, web.Application) and ROUTE_SPECS in app_or_server:
            response_contract.install(app_or_server)
        return await aiohttp_client(app_or_server, *args, **kwargs)

    return start


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> Callable[..., Any]:
    """``await make_client(**settings_overrides, clock=...)`` -> a TestClient
    on a fully started app (database, services, routes)."""

    async def factory(clock: Clock | None = None, **overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), clock=clock)
        return await aiohttp_client(app)

    return factory


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[TestClient]:
    yield await make_client()




@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
