"""Whom the media relay's ICE agent contacts, proved at the socket level.

A participant of an active call offers the relay candidates that name UDP
sockets of this test (on loopback and on this host's own private address)
plus many addresses a relay must not probe. The sockets record every
datagram; after the relay is done with the offer, each socket is sent a
sentinel datagram of our own, so once the sentinel has arrived anything the
relay sent before it has arrived too (a socket's queue is in order).

Never contacted: loopback, link-local, unspecified, multicast, broadcast, mDNS
(``.local``) and other host names; private ranges only when
``SKILLSHARE_CALL_RELAY_ALLOW_PRIVATE`` is on. Every dropped candidate is
counted in ``skillshare_relay_candidates_filtered_total{reason}``."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from server.keys import MEDIA_RELAY, METRICS
from tests.support.calls import CallSocket, MediaPeer, wait_until
from tests.support.realtime import register_user

SIZE = (160, 120)
SENTINEL = b"sentinel"
STUN_MAGIC_COOKIE = bytes.fromhex("2112a442")
UNREACHABLE = {  # address -> the reason the relay must not contact it by default
    "10.1.2.3": "private", "172.16.5.4": "private", "192.168.1.1": "private",
    "100.64.0.1": "private", "fc00::1": "private",
    "169.254.10.10": "link_local", "fe80::1": "link_local",
    "0.0.0.0": "unspecified", "::": "unspecified",
    "224.0.0.251": "multicast", "ff02::1": "multicast",
    "255.255.255.255": "broadcast",
    "::ffff:127.0.0.1": "loopback",
    "4f1c3b2a-6d5e-4c3b-9a8f-0e1d2c3b4a59.local": "mdns",
    "relay.example.com": "hostname",
}


class Recorder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.datagrams.append(data)

    @property
    def stun(self) -> list[bytes]:
        return [d for d in self.datagrams if d[4:8] == STUN_MAGIC_COOKIE]


class Listener:
    """A UDP socket of the test that a candidate names."""

    def __init__(self, host: str, transport: asyncio.DatagramTransport, recorder: Recorder) -> None:
        self.host, self.transport, self.recorder = host, transport, recorder
        self.port = transport.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, host: str) -> Listener:
        transport, recorder = await asyncio.get_running_loop().create_datagram_endpoint(
            Recorder, local_addr=(host, 0))
        return cls(host, transport, recorder)

    async def flush(self) -> list[bytes]:
        """Everything received before a sentinel sent now, without the sentinel."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sender:
            sender.sendto(SENTINEL, (self.host, self.port))
        await wait_until(lambda: SENTINEL in self.recorder.datagrams, timeout=5,
                         what=f"the sentinel on {self.host}")
        return [d for d in self.recorder.datagrams if d != SENTINEL]


def _private_host_address(sdp: str) -> str:
    """This host's own interface address in a private range (as the tests'
    peers offer it)."""
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and " typ host" in line:
            address = ipaddress.ip_address(line.split()[4])
            if not address.is_global and not address.is_loopback and not address.is_link_local:
                return str(address)
    raise AssertionError(f"this test needs an interface address in a private range:\n{sdp}")


def _with_candidates(sdp: str, addresses: list[tuple[str, int]]) -> str:
    """``sdp`` with its candidates replaced by host candidates at
    ``addresses``, highest priority first."""
    priorities = itertools.count(2130706431, -1000)
    candidates = [f"a=candidate:{i + 1} 1 udp {next(priorities)} {host} {port} typ host"
                  for i, (host, port) in enumerate(addresses)]
    lines: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            continue
        lines.append(line)
        if line.startswith("m="):
            lines += candidates
    return "\r\n".join(lines) + "\r\n"


def _filtered(app, reason: str) -> float:
    value = app[METRICS].registry.get_sample_value("skillshare_relay_candidates_filtered_total",
                                                   {"reason": reason})
    return value or 0.0


@pytest.fixture
async def listeners() -> AsyncIterator[dict[str, Listener]]:
    opened = {"loopback4": await Listener.open("127.0.0.1"), "loopback6": await Listener.open("::1")}
    yield opened
    for listener in opened.values():
        listener.transport.close()


async def _active_call(make_client, **settings):
    """A fresh node and an active call between Alice and Bob."""
    client = await make_client(**settings)
    url, app = str(client.make_url("")).rstrip("/"), client.server.app
    alice, bob = await register_user(url, "alice"), await register_user(url, "bob")
    a = await CallSocket(url, alice["access_token"], name="alice").connect()
    b = await CallSocket(url, bob["access_token"], name="bob").connect()
    call_id = (await a.ok("call:invite", {"user_id": bob["id"]}))["call_id"]
    await b.wait_for("call:incoming")
    await b.ok("call:accept", {"call_id": call_id})
    return app, call_id, (a, b)


async def _offer_naming(peer: MediaPeer, listeners: dict[str, Listener]) -> str:
    """The peer's offer with its candidates replaced by the listeners (one on
    this host's private address is opened) and the unreachable addresses,
    loopback first (highest priority)."""
    offer = await peer.offer()
    listeners["private"] = await Listener.open(_private_host_address(offer))
    named = [(listeners[k].host, listeners[k].port) for k in ("loopback4", "loopback6", "private")]
    named += [(address, listeners["loopback4"].port) for address in UNREACHABLE]
    return _with_candidates(offer, named)


def _sections(sdp: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith("m="))


async def test_by_default_the_relay_contacts_no_private_or_loopback_candidate(make_client, listeners):
    app, call_id, (a, b) = await _active_call(make_client)
    peer = MediaPeer(SIZE)
    try:
        offer = await _offer_naming(peer, listeners)
        refused = await a.refused("call:relay", {"call_id": call_id, "sdp": offer})
        assert refused["code"] == "bad_request" and "no ICE candidate" in refused["message"], refused
        for name, listener in listeners.items():
            assert await listener.flush() == [], f"the relay sent datagrams to {name} {listener.host}"
        expected = Counter(UNREACHABLE.values()) + Counter({"loopback": 2, "private": 1})  # + listeners
        for reason, count in expected.items():
            assert _filtered(app, reason) == _sections(offer) * count, reason
        registry = app[METRICS].registry
        assert registry.get_sample_value("skillshare_relay_offers_total", {"outcome": "unreachable"}) == 1
        assert app[MEDIA_RELAY].peer_connection_count == 0
    finally:
        await peer.close()
        await a.close()
        await b.close()


async def test_allow_private_lets_the_relay_reach_private_but_never_loopback(make_client, listeners):
    app, call_id, (a, b) = await _active_call(make_client, call_relay_allow_private=True)
    peer = MediaPeer(SIZE)
    try:
        offer = await _offer_naming(peer, listeners)
        answer = (await a.ok("call:relay", {"call_id": call_id, "sdp": offer}))["sdp"]
        for line in answer.splitlines():  # the relay advertises no loopback/link-local address
            if line.startswith("a=candidate:"):
                address = ipaddress.ip_address(line.split()[4])
                assert not (address.is_loopback or address.is_link_local or address.is_unspecified), line
        private = listeners["private"]
        # the relay probes the private candidate (checks go highest priority
        # first, and the loopback candidates were offered first) ...
        await wait_until(lambda: private.recorder.stun, timeout=15, what="a STUN check on the private socket")
        assert all(d[:2] == b"\x00\x01" for d in private.recorder.stun)  # binding requests
        # ... and never the loopback ones
        for name in ("loopback4", "loopback6"):
            assert await listeners[name].flush() == [], f"the relay sent datagrams to {name}"
        sections = _sections(offer)
        assert _filtered(app, "private") == 0
        assert _filtered(app, "loopback") == sections * 3
        assert _filtered(app, "mdns") == sections
    finally:
        await peer.close()
        await a.close()
        await b.close()
