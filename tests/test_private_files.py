"""What a node writes into its data dir is private: folders 0700, files
0600, whatever the process umask; too-open modes left by older versions are
fixed on start with a warning."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from loguru import logger

from tests.support.api import register


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def _mails_in(outbox: Path, count: int) -> list[Path]:
    for _ in range(200):
        files = sorted(outbox.glob("*.eml")) if outbox.exists() else []
        if len(files) >= count:
            return files
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} mail(s) expected in {outbox}")


async def test_outbox_mails_and_the_development_key_are_private(make_client, tmp_path):
    old_umask = os.umask(0o022)  # the usual default: files 0644, folders 0755
    try:
        client = await make_client(secret_key=None)
        account = await register(client)
        resp = await client.post("/api/v1/auth/password/forgot", json={"email": account["email"]})
        assert resp.status == 202, await resp.text()
        data_dir = tmp_path / "data"
        mails = await _mails_in(data_dir / "outbox", 2)
    finally:
        os.umask(old_umask)
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "outbox") == 0o700
    assert _mode(data_dir / "secret_key") == 0o600
    assert _mode(data_dir / "data_key") == 0o600  # SKILLSHARE_DATA_KEY, generated in dev
    for mail in mails:
        assert _mode(mail) == 0o600, mail
    assert not [p for p in (data_dir / "outbox").iterdir() if p.suffix != ".eml"]


async def test_too_open_outbox_and_key_are_fixed_on_start_with_a_warning(make_client, tmp_path):
    data_dir = tmp_path / "data"
    outbox = data_dir / "outbox"
    outbox.mkdir(parents=True)
    os.chmod(data_dir, 0o755)
    os.chmod(outbox, 0o777)
    old_mail = outbox / "old.eml"
    old_mail.write_text("Subject: reset your password\n\nhttp://x/reset?token=t\n")
    os.chmod(old_mail, 0o644)
    key = data_dir / "secret_key"
    key.write_text("k" * 48)
    os.chmod(key, 0o644)
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        await make_client(secret_key=None)
    finally:
        logger.remove(handler)
    assert (_mode(data_dir), _mode(outbox)) == (0o700, 0o700)
    assert (_mode(old_mail), _mode(key)) == (0o600, 0o600)
    warnings = [line for line in lines if "permissions" in line]
    assert warnings and any(str(outbox) in line for line in warnings), lines
