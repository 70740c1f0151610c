"""Service URLs are logged without their secrets."""

from __future__ import annotations

import pytest
from loguru import logger

from server.logs import mask_url


@pytest.mark.parametrize(("url", "masked"), [
    ("mongodb://node:s3cr%40t@127.0.0.1:27017/?authSource=admin",
     "mongodb://***@127.0.0.1:27017/?authSource=admin"),
    ("mongodb+srv://u:p@cluster0.example.net/app", "mongodb+srv://***@cluster0.example.net/app"),
    ("mongodb://u:p@h1:1,h2:2/db?replicaSet=rs", "mongodb://***@h1:1,h2:2/db?replicaSet=rs"),
    ("redis://:hunter2@cache:6379/0", "redis://***@cache:6379/0"),
    ("rediss://default:hunter2@cache:6380", "rediss://***@cache:6380"),
    ("smtp://mailer:pa:ss@smtp.example.com:587", "smtp://***@smtp.example.com:587"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("mongodb://h/?tlsCertificateKeyFilePassword=pw&w=1",
     "mongodb://h/?tlsCertificateKeyFilePassword=***&w=1"),
    ("redis://cache/0?password=pw", "redis://cache/0?password=***"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


async def test_configured_urls_are_logged_masked(make_client, mongo_url):
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        await make_client(mongo_url=mongo_url,
                          smtp_url="smtp://mailer:smtp-secret@127.0.0.1:2525")
    finally:
        logger.remove(handler)
    log = "".join(lines)
    assert "smtp-secret" not in log
    assert mongo_url not in log
    assert f"database: {mask_url(mongo_url)}" in log
    assert "smtp://***@127.0.0.1:2525" in log
