"""Protocol hygiene against a real node process (``python -m server serve``):
binary attachments are refused before anything is buffered (the node's RSS
does not grow with what is sent), and malformed frames are logged once,
short, without their payload."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import TEST_SECRET
from tests.support.rawsocket import RawSocket, events_in, rss_kib
from tests.support.realtime import register_user
from tests.support.services import NodeProcess, RedisProcess, one_node

MIB = 1024 * 1024
ATTACHMENT = 100 * 1024  # under engine.io's frame limit (2 x SOCKET_MAX_PAYLOAD)
SENT_BYTES = 20 * MIB
RSS_SLACK_KIB = 8 * 1024  # what the node may grow while handling the attack


@pytest.fixture(scope="module")
def node(mongo_url: str, redis_process: RedisProcess,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with one_node(mongo_url=mongo_url, redis_process=redis_process,
                  workdir=tmp_path_factory.mktemp("protocol-node"), secret_key=TEST_SECRET,
                  node_ttl=3.0) as proc:
        yield proc


def _new_log(node: NodeProcess, offset: int) -> str:
    return node.log()[offset:]


async def test_announced_binary_attachments_are_refused_before_buffering(node):
    user = await register_user(node.url, "binary")
    raw = await RawSocket(node.url).open(user["access_token"])
    try:
        assert node.proc is not None
        before = rss_kib(node.proc.pid)
        await raw.send('451000000-["message:send",{"_placeholder":true,"num":0}]')
        chunk, sent = b"\x00" * ATTACHMENT, 0
        while sent < SENT_BYTES and await raw.send(chunk):
            sent += len(chunk)
        probe = await RawSocket(node.url).open(user["access_token"])  # the node has read it all
        await probe.close()
        grown = rss_kib(node.proc.pid) - before
        assert grown < RSS_SLACK_KIB, f"node grew {grown} KiB after {sent} bytes of attachments"
        frames = await raw.until_closed(timeout=15)
        ended = events_in(frames, "session:ended")
        assert ended and ended[0][1]["reason"] == "protocol_error", frames
        assert ended[0][1]["error"]["code"] == "bad_request"
        probe = await RawSocket(node.url).open(user["access_token"])  # the node still serves
        await probe.close()
    finally:
        await raw.close()


async def test_malformed_frames_are_logged_once_short_and_without_payload(node):
    secret = f"SECRET-TOKEN-{uuid.uuid4().hex}"
    offset = len(node.log())
    raw = await RawSocket(node.url).open()  # engine.io only: not signed in
    try:
        sent = 0
        for i in range(200):
            frame = ('42["message:send",{"token":"' + secret + '"' if i % 2 else
                     "4" + json.dumps({"token": secret}) + "}")
            if not await raw.send(frame):
                break
            sent += 1
        assert sent >= 1
        try:
            await raw.until_closed(timeout=10)
            closed = True
        except TimeoutError:
            closed = False
    finally:
        await raw.close()
    log = _new_log(node, offset)
    assert secret not in log
    assert "Traceback" not in log
    assert closed, "the client sending malformed frames was not disconnected"
    # Twenty more connections, one bad frame each: one short line each at most.
    for _ in range(20):
        other = await RawSocket(node.url).open()
        await other.send('4["' + secret)
        await other.until_closed(timeout=10)
        await other.close()
    log = _new_log(node, offset)
    lines = [line for line in log.splitlines() if line.strip()]
    assert secret not in log
    assert "Traceback" not in log
    assert len(lines) <= 21 + 2, lines[:10]
    assert all(len(line) < 300 for line in lines), max(lines, key=len)
