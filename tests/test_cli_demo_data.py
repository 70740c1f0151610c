"""``skillshare seed``, ``admin`` and ``serve`` as real processes on the
embedded database: demo data never stops the node from starting, clean exits
print no traceback, and everything written to the data dir is private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import aiohttp

from tests.support.services import ROOT, NodeProcess

LOW_COST = {"SKILLSHARE_PASSWORD_HASH_TIME_COST": "1", "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": "1024"}
# With these, the old seed wrote two direct rooms for the same pair of people.
SEED_USERS, RANDOM_SEED = 200, 37


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
    return {**env, **LOW_COST, "SKILLSHARE_DATA_DIR": str(tmp_path / "var"),
            "SKILLSHARE_LOG_LEVEL": "INFO"}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)


def _assert_clean(output: str) -> None:
    assert "Traceback" not in output, output
    assert " ERROR " not in output and "ERROR:" not in output, output


async def test_seed_then_serve_starts_and_every_exit_is_clean(tmp_path):
    env = _env(tmp_path)
    seeded = _cli(env, "seed", "--users", str(SEED_USERS), "--seed", str(RANDOM_SEED))
    assert seeded.returncode == 0, seeded.stderr
    _assert_clean(seeded.stdout + seeded.stderr)
    assert f"seeded {SEED_USERS} users" in seeded.stderr

    granted = _cli(env, "admin", "grant", "demo1@skillshare.test")
    assert granted.returncode == 0, granted.stderr
    _assert_clean(granted.stdout + granted.stderr)

    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        async with aiohttp.ClientSession() as http:
            ready = await http.get(f"{node.url}/readyz")
            assert ready.status == 200, node.log()
            login = await http.post(f"{node.url}/api/v1/auth/login", json={
                "email": "demo1@skillshare.test", "password": "skillshare-demo"})
            assert login.status == 200, node.log()
            assert (await login.json())["user"]["role"] == "admin"
    finally:
        assert node.terminate() == 0, node.log()
    _assert_clean(node.log())

    data_dir = tmp_path / "var"
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


async def test_data_that_breaks_a_unique_index_stops_serve_with_one_line(tmp_path):
    """Data written before this version (or by hand) that a unique index
    refuses: the node says so in one line instead of a traceback."""
    from server.storage.database import open_database

    env = _env(tmp_path)
    async with open_database(mongo_url=None, db_name="skillshare",
                             data_dir=tmp_path / "var") as db:
        await db["rooms"].drop_index("direct_key_sparse_unique")
        await db["rooms"].insert_many([{"_id": "r1", "direct_key": "a:b"},
                                       {"_id": "r2", "direct_key": "a:b"}])
    result = _cli(env, "serve")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rooms" in errors[0] and "duplicate" in errors[0], result.stderr
