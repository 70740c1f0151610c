"""A hand-driven Engine.IO v4 / Socket.IO v5 client over a raw websocket
(and long-polling), so tests can send exactly the frames an attacker would:
reserved event names, binary attachments, malformed packets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

CLOSED = object()


class RawSocket:
    """One engine.io websocket connection. ``recv`` answers server pings
    (unless ``answer_pings`` is off) and returns every other frame."""

    def __init__(self, base_url: str, *, answer_pings: bool = True) -> None:
        self.base_url = base_url
        self.answer_pings = answer_pings
        self.frames: list[str | bytes] = []
        self.sid: str | None = None
        self.close_code: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self, token: str | None = None) -> RawSocket:
        """Engine.IO handshake; with ``token``, the Socket.IO CONNECT too."""
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(
            f"{self.base_url}/socket.io/?EIO=4&transport=websocket", max_msg_size=0,
        )
        opening = await self.recv()
        assert isinstance(opening, str) and opening.startswith("0{"), opening
        if token is not None:
            await self.send("40" + json.dumps({"token": token}))
            reply = await self.recv()
            assert isinstance(reply, str) and reply.startswith("40{"), reply
            self.sid = json.loads(reply[2:])["sid"]
        return self

    async def send(self, frame: str | bytes) -> bool:
        """Send one frame; False once the server has closed the connection."""
        assert self._ws is not None
        if self._ws.closed:
            return False
        try:
            if isinstance(frame, bytes):
                await self._ws.send_bytes(frame)
            else:
                await self._ws.send_str(frame)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return False
        return True

    async def recv(self, timeout: float = 5.0) -> Any:
        """The next frame that is not a ping, or ``CLOSED``."""
        assert self._ws is not None
        while True:
            msg = await self._ws.receive(timeout=timeout)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    self.close_code = msg.data
                return CLOSED
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                if self.answer_pings:
                    await self.send("3")
                continue
            self.frames.append(msg.data)
            return msg.data

    async def until_closed(self, timeout: float = 5.0) -> list[Any]:
        """Read until the server closes the connection; returns the frames
        seen on the way. Raises ``TimeoutError`` if it stays open."""
        seen: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"still open after {timeout}s; got {seen[-5:]}")
            try:
                frame = await self.recv(timeout=left)
            except TimeoutError:
                continue
            if frame is CLOSED:
                return seen
            seen.append(frame)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    @property
    def closed(self) -> bool:
        return self._ws is None or self._ws.closed


def events_in(frames: list[Any], name: str | None = None) -> list[list[Any]]:
    """Socket.IO EVENT payloads (``42[...]``) among raw frames."""
    out = []
    for frame in frames:
        if isinstance(frame, str) and frame.startswith("42["):
            data = json.loads(frame[2:])
            if name is None or data[0] == name:
                out.append(data)
    return out


def acks_in(frames: list[Any]) -> dict[int, Any]:
    """Socket.IO ACK payloads by id (``43<id>[...]``)."""
    out = {}
    for frame in frames:
        if isinstance(frame, str) and frame.startswith("43"):
            body = frame[2:]
            digits = len(body) - len(body.lstrip("0123456789"))
            out[int(body[:digits])] = json.loads(body[digits:])[0]
    return out


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class PollingSocket:
    """Engine.IO over HTTP long-polling, by hand: ``get()`` returns the
    packets of one poll (``None`` for an HTTP error), ``post()`` the status."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/socket.io/?EIO=4&transport=polling"
        self._http = aiohttp.ClientSession()
        self.sid: str | None = None

    async def open(self, token: str | None = None) -> PollingSocket:
        opening = await self.get()
        assert opening and opening[0].startswith("0{"), opening
        self.url += "&sid=" + json.loads(opening[0][1:])["sid"]
        if token is not None:
            assert await self.post("40" + json.dumps({"token": token})) == 200
            reply = await self.get()
            assert reply and reply[0].startswith("40{"), reply
            self.sid = json.loads(reply[0][2:])["sid"]
        return self

    async def get(self, timeout: float = 10.0) -> list[str] | None:
        async with self._http.get(self.url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.text()
            return body.split("\x1e") if resp.status == 200 else None

    async def post(self, body: str | bytes) -> int:
        async with self._http.post(self.url, data=body) as resp:
            await resp.read()
            return resp.status

    async def close(self) -> None:
        await self._http.close()


class TcpWebSocket:
    """A websocket client over a bare TCP socket (RFC 6455 by hand), so a
    test controls what the kernel buffers: with a small ``rcvbuf`` and no
    reads it is a consumer that stopped reading. ``headers`` are the
    server's handshake response headers (lower-cased names)."""

    def __init__(self, base_url: str, *, rcvbuf: int | None = None,
                 extensions: str | None = None) -> None:
        self.base_url = base_url
        self.rcvbuf = rcvbuf
        self.extensions = extensions
        self.headers: dict[str, str] = {}
        self.sid: str | None = None
        self.deflated: list[bool] = []  # per data frame read: did it come compressed
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)  # permessage-deflate, with context
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, token: str | None = None) -> TcpWebSocket:
        url = urlsplit(self.base_url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
        self._reader, self._writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET /socket.io/?EIO=4&transport=websocket HTTP/1.1",
                 f"Host: {url.hostname}:{url.port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if self.extensions:
            lines.append(f"Sec-WebSocket-Extensions: {self.extensions}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await self._reader.readuntil(b"\r\n\r\n")).decode()
        status, *fields = head.strip().split("\r\n")
        assert " 101 " in status, head
        self.headers = {k.strip().lower(): v.strip()
                        for k, v in (f.split(":", 1) for f in fields)}
        opening = await self.recv()
        assert opening.startswith("0{"), opening
        if token is not None:
            self.send("40" + json.dumps({"token": token}))
            reply = await self.recv()
            assert reply.startswith("40{"), reply
            self.sid = json.loads(reply[2:])["sid"]
        return self

    def send(self, text: str) -> None:
        self.send_frame(text.encode())

    def send_frame(self, data: bytes, opcode: int = 0x1, *, fin: bool = True,
                   masked: bool = True) -> None:
        """One frame exactly as given (fragments, control frames, unmasked)."""
        assert self._writer is not None
        n = len(data)
        first = (0x80 if fin else 0) | opcode
        bit = 0x80 if masked else 0
        header = (struct.pack("!BB", first, bit | n) if n < 126
                  else struct.pack("!BBH", first, bit | 126, n) if n < 1 << 16
                  else struct.pack("!BBQ", first, bit | 127, n))
        if not masked:
            self._writer.write(header + data)
            return
        mask = os.urandom(4)
        self._writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame; (-1, b"") at end of stream."""
        assert self._reader is not None
        try:
            b1, b2 = await self._reader.readexactly(2)
            n = b2 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self._reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self._reader.readexactly(8))
            payload = await self._reader.readexactly(n)
            opcode = b1 & 0x0F
            if opcode in (0x1, 0x2):
                self.deflated.append(bool(b1 & 0x40))
                if b1 & 0x40:  # RSV1: a compressed message
                    payload = self._inflate.decompress(payload + b"\x00\x00\xff\xff")
            return opcode, payload
        except (asyncio.IncompleteReadError, ConnectionError):
            return -1, b""

    async def recv(self, timeout: float = 5.0) -> str:
        """The next text frame that is not a ping (pings are answered)."""
        while True:
            opcode, payload = await asyncio.wait_for(self.frame(), timeout)
            if opcode != 0x1:
                raise AssertionError(f"not a text frame: {opcode} {payload[:40]!r}")
            text = payload.decode()
            if text == "2":
                self.send("3")
                continue
            return text

    async def drain(self, timeout: float = 30.0) -> tuple[list[str], int | None]:
        """Read everything until the stream ends: the text frames and the
        close code (None if the stream ended without a close frame)."""

        texts: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                opcode, payload = await self.frame()
                if opcode == -1:
                    return texts, None
                if opcode == 0x8:
                    return texts, struct.unpack("!H", payload[:2])[0] if payload else None
                if opcode == 0x1:
                    texts.append(payload.decode())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
