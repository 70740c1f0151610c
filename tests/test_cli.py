"""The real ``skillshare serve`` process: configuration errors, the embedded
default keeping data across a restart, graceful shutdown, JSON logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import aiohttp

from tests.support.services import ROOT, NodeProcess

LOW_COST = {"SKILLSHARE_PASSWORD_HASH_TIME_COST": "1", "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": "1024"}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}


def _run_cli(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", "serve"], cwd=ROOT,
                          env={**_clean_env(), **env}, capture_output=True, text=True, timeout=30)


def test_bad_setting_fails_with_one_line_naming_it():
    result = _run_cli({"SKILLSHARE_PORT": "not-a-port"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SKILLSHARE_PORT" in lines[0]
    result = _run_cli({"SKILLSHARE_REDIS_URL": "http://nope"})
    assert result.returncode == 2 and "SKILLSHARE_REDIS_URL" in result.stderr


def test_production_refuses_without_secret_key(tmp_path):
    result = _run_cli({"SKILLSHARE_ENV": "production", "SKILLSHARE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "SKILLSHARE_SECRET_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_production_refuses_without_data_key(tmp_path):
    result = _run_cli({"SKILLSHARE_ENV": "production", "SKILLSHARE_DATA_DIR": str(tmp_path),
                       "SKILLSHARE_SECRET_KEY": "k" * 40})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SKILLSHARE_DATA_KEY" in lines[0], result.stderr
    assert not (tmp_path / "data_key").exists()


def test_toml_config_file(tmp_path):
    config = tmp_path / "skillshare.toml"
    config.write_text('port = "seventy"\n')
    result = _run_cli({"SKILLSHARE_CONFIG": str(config)})
    assert result.returncode == 2 and "SKILLSHARE_PORT" in result.stderr


async def test_embedded_default_keeps_data_across_restart(tmp_path):
    env = {**_clean_env(), **LOW_COST, "SKILLSHARE_DATA_DIR": str(tmp_path / "var")}
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{node.url}/api/v1/auth/register", json={
                "email": "keep@example.com", "password": "persistent password",
                "display_name": "Keeper"})
            assert resp.status == 201, node.log()
            user_id = (await resp.json())["user"]["id"]
        assert node.terminate() == 0, node.log()  # graceful SIGTERM
        assert "embedded database started" in node.log()

        node.start()
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{node.url}/api/v1/auth/login", json={
                "email": "keep@example.com", "password": "persistent password"})
            assert resp.status == 200, node.log()
            assert (await resp.json())["user"]["id"] == user_id
            assert (await http.get(f"{node.url}/readyz")).status == 200
    finally:
        node.terminate()
    # A development key was generated once and kept.
    assert (tmp_path / "var" / "secret_key").exists()


async def test_production_logs_are_json_lines(tmp_path, mongo_url):
    env = {**_clean_env(), **LOW_COST, "SKILLSHARE_ENV": "production",
           "SKILLSHARE_SECRET_KEY": "k" * 40, "SKILLSHARE_DATA_KEY": "d" * 40,
           "SKILLSHARE_MONGO_URL": mongo_url,
           "SKILLSHARE_MONGO_DB": "t_jsonlogs", "SKILLSHARE_DATA_DIR": str(tmp_path)}
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{node.url}/api/v1/auth/register", headers={
                "X-Request-ID": "req-json-1"}, json={
                "email": "json@example.com", "password": "json password 1",
                "display_name": "J"})
            assert resp.status == 201
            assert resp.headers["Strict-Transport-Security"]
    finally:
        assert node.terminate() == 0
    records = [json.loads(line) for line in node.log().splitlines() if line.strip()]
    assert records and all({"ts", "level", "msg", "request_id"} <= set(r) for r in records)
    assert any(r["request_id"] == "req-json-1" and "registered" in r["msg"] for r in records)
    assert "json@example.com" not in node.log()


async def test_sigterm_finishes_in_flight_requests(tmp_path, mongo_url):
    """A registration whose (deliberately slow) password hash is running when
    SIGTERM arrives still completes with 201; then the node exits cleanly."""
    import asyncio
    import signal

    env = {**_clean_env(), "SKILLSHARE_PASSWORD_HASH_TIME_COST": "8",
           "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": str(128 * 1024),
           "SKILLSHARE_MONGO_URL": mongo_url, "SKILLSHARE_MONGO_DB": "t_sigterm",
           "SKILLSHARE_DATA_DIR": str(tmp_path)}
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        async with aiohttp.ClientSession() as http:
            pending = asyncio.create_task(http.post(f"{node.url}/api/v1/auth/register", json={
                "email": "inflight@example.com", "password": "slow hash password",
                "display_name": "In Flight"}))
            await asyncio.sleep(0.3)
            assert not pending.done(), "the hash was meant to still be running"
            node.proc.send_signal(signal.SIGTERM)
            resp = await pending
            assert resp.status == 201, node.log()
            assert (await resp.json())["user"]["email"] == "inflight@example.com"
        assert await asyncio.to_thread(node.proc.wait, 20) == 0, node.log()
    finally:
        node.terminate()


async def test_a_second_process_on_the_same_embedded_database_fails_clearly(tmp_path):
    env = {**_clean_env(), **LOW_COST, "SKILLSHARE_DATA_DIR": str(tmp_path / "var")}
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        result = subprocess.run([sys.executable, "-m", "server", "seed", "--users", "2"],
                                cwd=ROOT, env={**env, "SKILLSHARE_PORT": str(node.port + 1)},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "in use by another process" in result.stderr
        assert "Traceback" not in result.stderr
        async with aiohttp.ClientSession() as http:  # the running node is unharmed
            assert (await http.get(f"{node.url}/readyz")).status == 200
    finally:
        assert node.terminate() == 0
