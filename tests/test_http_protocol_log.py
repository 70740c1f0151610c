"""A malformed HTTP request is answered 400 and logged as one short line,
without a traceback and without the bytes it carried (schemathesis sent a
NUL in a header value: aiohttp logged a ~50-line ERROR traceback quoting it)."""

from __future__ import annotations

import asyncio

from loguru import logger


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
