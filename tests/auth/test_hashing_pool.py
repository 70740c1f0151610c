"""The bounded password-hashing pool: work beyond its queue is refused at
once with 503 + Retry-After in the contract's error shape (never a hang),
reads keep answering meanwhile, and everything under the bound succeeds."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server.auth.hashing_pool import HashingPool
from server.errors import HashingBusy
from server.keys import HASHING
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, register, unique_email


async def _occupy(pool: HashingPool, release: threading.Event) -> list[asyncio.Task]:
    """Fill every worker and queue slot with a job that waits for ``release``."""
    jobs = [asyncio.create_task(pool.run(release.wait)) for _ in range(pool.capacity)]
    await asyncio.sleep(0)  # each task takes its slot
    return jobs


async def test_the_pool_refuses_beyond_its_bound_and_takes_work_again_after():
    pool = HashingPool(workers=1, queue_limit=2, seconds_per_job=0.5)  # Retry-After: 3 x 0.5 s
    release = threading.Event()
    try:
        jobs = await _occupy(pool, release)
        with pytest.raises(HashingBusy) as busy:
            await pool.run(lambda: "too many")
        assert busy.value.status == 503 and busy.value.headers["Retry-After"] == "2"
        # A waiter that gives up does not free its slot before its work ends.
        jobs[-1].cancel()
        await asyncio.sleep(0)
        with pytest.raises(HashingBusy):
            await pool.run(lambda: "still too many")
        release.set()
        await asyncio.gather(*jobs[:-1])
        assert await pool.run(lambda: "fits again") == "fits again"
    finally:
        release.set()
        pool.close()


async def test_sign_ins_beyond_the_queue_get_503_with_retry_after_while_reads_answer(make_client):
    client = await make_client(password_hash_workers=1, password_hash_queue=2)
    account = await register(client)
    pool = client.app[HASHING]
    release = threading.Event()
    jobs = await _occupy(pool, release)
    try:
        attempts = [
            client.post("/api/v1/auth/register", json={
                "email": unique_email(), "password": DEFAULT_PASSWORD, "display_name": "Late"}),
            client.post("/api/v1/auth/login", json={
                "email": account["email"], "password": DEFAULT_PASSWORD}),
            client.post("/api/v1/auth/password/change", headers=bearer(account["access_token"]),
                        json={"current_password": DEFAULT_PASSWORD,
                              "new_password": "another long password"}),
        ]
        for resp in await asyncio.gather(*attempts):
            assert resp.status == 503
            error = await error_of(resp)
            assert error["code"] == "unavailable"
            retry_after = int(resp.headers["Retry-After"])
            assert retry_after >= 1 and error["details"] == {"retry_after": retry_after}
        # Reads need no hashing and keep answering.
        assert (await client.get("/api/v1/skills?limit=20")).status == 200
        assert (await client.get("/api/v1/users/me",
                                 headers=bearer(account["access_token"]))).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert "skillshare_password_hashing_rejected_total 3.0" in metrics
    finally:
        release.set()
        await asyncio.gather(*jobs)
    resp = await client.post("/api/v1/auth/login", json={
        "email": account["email"], "password": DEFAULT_PASSWORD})
    assert resp.status == 200


async def test_a_burst_within_the_bound_all_succeeds(make_client):
    client = await make_client(password_hash_workers=1, password_hash_queue=8)
    results = await asyncio.gather(*(
        client.post("/api/v1/auth/register", json={
            "email": unique_email(), "password": DEFAULT_PASSWORD, "display_name": f"P{i}"})
        for i in range(9)
    ))
    assert [r.status for r in results] == [201] * 9


async def test_a_login_refused_by_a_full_pool_does_not_count_against_the_limits(make_client):
    client = await make_client(password_hash_workers=1, password_hash_queue=0,
                               login_account_limit="2/15minutes")
    account = await register(client)
    release = threading.Event()
    jobs = await _occupy(client.app[HASHING], release)
    try:
        for _ in range(3):
            resp = await client.post("/api/v1/auth/login", json={
                "email": account["email"], "password": DEFAULT_PASSWORD})
            assert resp.status == 503
    finally:
        release.set()
        await asyncio.gather(*jobs)
    resp = await client.post("/api/v1/auth/login", json={
        "email": account["email"], "password": DEFAULT_PASSWORD})
    assert resp.status == 200, await resp.text()
