"""A malformed HTTP request is answered 400 and logged as one short line,
without a traceback and without the bytes it carried (schemathesis sent a
NUL in a header value: aiohttp logged a ~50-line ERROR traceback quoting it)."""

from __future__ import annotations

import asyncio

from aiohttp import ClientSession, web
from loguru import logger

from server.app import create_app


async def test_malformed_http_requests_log_one_short_line(client):
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    secret = "Bearer-secret-token-text"
    try:
        for _ in range(20):
            reader, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Probe: {secret}\x00\r\n\r\n"
                         .encode())
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.split()[1] == b"400", status
            writer.close()
        ok = await client.get("/healthz")
        assert ok.status == 200
    finally:
        logger.remove(sink)
    text = "".join(lines)
    assert "Traceback" not in text
    assert secret not in text
    assert len(text) < 20 * 300, text[:2000]


async def test_a_client_gone_before_its_body_was_read_is_no_server_error(make_settings):
    """A client that closes mid-body (the chaos soak's clients do when a node
    dies) is logged as gone, not as an unhandled error, and the node keeps
    serving. Served as production serves it: aiohttp's test server would
    cancel the handler instead when its client goes."""
    runner = web.AppRunner(create_app(make_settings()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    try:
        for _ in range(5):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                         b'{"email": "a')
            await writer.drain()
            await asyncio.sleep(0.2)  # the handler is waiting for the rest of the body
            writer.transport.abort()
        await asyncio.sleep(0.5)
        async with ClientSession() as session, session.get(f"http://{host}:{port}/healthz") as ok:
            assert ok.status == 200
    finally:
        logger.remove(sink)
        await runner.cleanup()
    text = "".join(lines)
    assert text.count("client went away during POST /api/v1/auth/login") == 5, text[-3000:]
    assert "ERROR" not in text and "Traceback" not in text, text[-3000:]
