"""The official JS ``socket.io-client`` (npm) against a node: refusal
codes, acks, and the message event."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from tests.support.realtime import open_direct, register_user

JS_DIR = Path(__file__).resolve().parents[1] / "js"


async def _npm_ci() -> None:
    if (JS_DIR / "node_modules" / "socket.io-client").exists():
        return
    npm = shutil.which("npm")
    assert npm, "npm is required for the socket.io-client test"
    proc = await asyncio.create_subprocess_exec(
        npm, "ci", "--no-audit", "--no-fund", cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, out.decode()


async def test_official_socket_io_client_chats(make_client):
    await _npm_ci()
    client = await make_client()
    node = str(client.make_url("")).rstrip("/")
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(JS_DIR / "chat_client.mjs"), node,
        alice["access_token"], room["id"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, (out.decode(), err.decode())
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["refused"] == {"message": "unauthorized", "code": "unauthorized"}
    assert result["join"]["ok"] and result["join"]["last_seq"] == 0
    assert result["send"]["ok"] and result["send"]["message"]["seq"] == 1
    assert result["received"] == result["send"]["message"]
    assert result["unknown"]["ok"] is False and result["unknown"]["error"]["code"] == "unknown_event"
