"""A TCP proxy in the test's event loop, for faults a real server cannot be
asked to produce: ``deafen(marker)`` stops forwarding server→client bytes on
every open connection whose client has sent ``marker`` (a Redis subscriber:
``b"PSUBSCRIBE"``), while the connection stays open and everything the client
sends still reaches the server. Until ``hear_again()``, connections that send
the marker later are deafened too (a node re-subscribing meanwhile gets
nowhere); connections already deaf stay deaf.

With several upstream ports it is a small load balancer: each new connection
goes to the first upstream that accepts it (as nginx moves on to the next
upstream when a connection is refused); ``connections`` counts them by port."""

from __future__ import annotations

import asyncio
import contextlib

CHUNK = 65536


class _Link:
    def __init__(self) -> None:
        self.sent = bytearray()  # client -> server bytes, for deafen() markers
        self.deaf = False
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []


class TcpProxy:
    def __init__(self, *upstream_ports: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstreams = [(upstream_host, port) for port in upstream_ports]
        self.connections: dict[int, int] = {port: 0 for port in upstream_ports}
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._markers: set[bytes] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def deafen(self, marker: bytes) -> int:
        """Server→client bytes stop on the open connections whose client sent
        ``marker``; how many connections that was."""
        self._markers.add(marker)
        count = 0
        for link in self._links:
            if marker in link.sent and not link.deaf:
                link.deaf = True
                count += 1
        return count

    def hear_again(self) -> None:
        """New subscriptions are heard again (the deaf ones stay deaf)."""
        self._markers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for host, port in self.upstreams:
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                continue
            self.connections[port] += 1
            break
        else:
            writer.close()
            return
        link = _Link()
        link.writers = [writer, up_writer]
        self._links.append(link)
        link.tasks = [
            asyncio.create_task(self._pipe(reader, up_writer, link, upstream=True)),
            asyncio.create_task(self._pipe(up_reader, writer, link, upstream=False)),
        ]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link, *, upstream: bool) -> None:
        try:
            while data := await reader.read(CHUNK):
                if upstream:
                    link.sent += data
                    if any(marker in link.sent for marker in self._markers):
                        link.deaf = True
                elif link.deaf:
                    continue  # swallowed: the client hears nothing, the socket stays open
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in link.writers:
                with contextlib.suppress(Exception):
                    w.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            for task in link.tasks:
                task.cancel()
            for w in link.writers:
                with contextlib.suppress(Exception):
                    w.close()
        for link in self._links:
            for task in link.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._links.clear()
