"""The media relay's address policy: which addresses its ICE agents may
contact, the offer filter (checked against aiortc's own SDP parser) and the
guard on a real aioice agent (binding requests over real UDP sockets)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from aioice import Candidate, Connection, stun
from aiortc import sdp as aiortc_sdp

from server.media.candidates import AddressPolicy, address_class, filter_sdp_candidates
from server.media.ice_guard import guard_connection
from tests.support.calls import wait_until

SENTINEL = b"sentinel"


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("169.254.169.254", "link_local"), ("fe80::1", "link_local"), ("fe80::1%eth0", "link_local"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::", "unspecified"),
    ("224.0.0.251", "multicast"), ("239.1.2.3", "multicast"), ("ff02::fb", "multicast"),
    ("255.255.255.255", "broadcast"), ("240.0.0.1", "reserved"),
    ("10.0.0.1", "private"), ("172.16.0.1", "private"), ("172.31.255.254", "private"),
    ("192.168.0.1", "private"), ("100.64.0.1", "private"), ("100.127.255.254", "private"),
    ("fc00::1", "private"), ("fd12:3456::1", "private"), ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("192.0.2.7", "private"),  # documentation range: not routable either
    ("abcdef12-3456-7890-abcd-ef1234567890.local", "mdns"), ("Printer.LOCAL.", "mdns"),
    ("relay.example.com", "hostname"), ("", "hostname"),
    ("8.8.8.8", None), ("172.32.0.1", None), ("100.128.0.1", None), ("2001:4860:4860::8888", None),
    ("::ffff:8.8.8.8", None), ("64:ff9b::808:808", None),
])
def test_address_classes(host, expected):
    assert address_class(host) == expected


def test_private_ranges_only_when_allowed():
    default, lan = AddressPolicy(), AddressPolicy(allow_private=True)
    for host in ("10.0.0.1", "192.168.1.2", "100.64.0.1", "fd00::2"):
        assert default.refusal(host) == "private" and lan.refusal(host) is None
    for host in ("127.0.0.1", "::1", "169.254.1.1", "fe80::1", "224.0.0.1", "0.0.0.0", "x.local"):
        assert lan.refusal(host) is not None, host
    assert default.refusal("8.8.8.8") is None and lan.refusal("8.8.8.8") is None


OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=candidate:1 1 udp 2130706431 8.8.8.8 50000 typ host\r\n"
    "a=candidate:2 1 udp 2130706431 127.0.0.1 50001 typ host\r\n"
    "a=candidate:3 1 udp 1694498815 10.1.2.3 50002 typ srflx raddr 0.0.0.0 rport 0\r\n"
    "a=candidate:4 1 UDP 2122252543 3b1c0e1a-1111-2222-3333-444455556666.local 50003 typ host generation 0\r\n"
    "a=candidate:5 1 udp 2130706431  127.0.0.2   50004 typ host\r\n"  # odd spacing, same address field
    "a=x-note:innocent\u2028a=candidate:6 1 udp 2130706431 127.0.0.3 50005 typ host\r\n"
    "a=candidate:7 1 udp\r\n"  # malformed
    "a=candidate\r\n"
    "a=end-of-candidates\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
)


def test_the_offer_filter_leaves_aiortc_only_allowed_candidates():
    filtered = filter_sdp_candidates(OFFER, AddressPolicy())
    assert filtered.kept == 1
    assert filtered.refused == {"loopback": 3, "private": 1, "mdns": 1, "malformed": 2}
    # aiortc parses what is left (it splits lines as we do, \u2028 included)
    parsed = aiortc_sdp.SessionDescription.parse(filtered.sdp)
    assert [c.ip for m in parsed.media for c in m.ice_candidates] == ["8.8.8.8"]
    assert parsed.media[0].ice_candidates_complete
    assert "a=x-note:innocent\r\n" in filtered.sdp and "a=ice-ufrag:abcd\r\n" in filtered.sdp

    lan = filter_sdp_candidates(OFFER, AddressPolicy(allow_private=True))
    assert lan.kept == 2 and lan.refused["private"] == 0


class Recorder(asyncio.DatagramProtocol):
    """A UDP socket of ours that records what it receives."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.datagrams.append(data)


def _binding_request(agent: Connection) -> bytes:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{agent.local_username}:peer"
    request.attributes["PRIORITY"] = 1853824767
    request.attributes["ICE-CONTROLLING"] = 1234567890
    request.add_message_integrity(agent.local_password.encode("utf8"))
    request.add_fingerprint()
    return bytes(request)


async def _agent(policy: AddressPolicy, refusals: list[tuple[str, str]]) -> tuple[Connection, Candidate]:
    """A guarded aioice agent (the relay's side) and its IPv4 host candidate."""
    agent = Connection(ice_controlling=False, components=1, use_ipv6=False)
    assert guard_connection(agent, policy, lambda reason, address: refusals.append((reason, address)))
    await agent.gather_candidates()
    host = next(c for c in agent.local_candidates if c.type == "host")
    return agent, host


async def _socket(source: str) -> Recorder:
    _, recorder = await asyncio.get_running_loop().create_datagram_endpoint(Recorder, local_addr=(source, 0))
    return recorder


@pytest.mark.parametrize("source_kind", ["private", "loopback"])
async def test_the_guarded_agent_never_answers_or_probes_a_refused_source(source_kind):
    refusals: list[tuple[str, str]] = []
    agent, host = await _agent(AddressPolicy(), refusals)
    lan_refusals: list[tuple[str, str]] = []
    lan_agent, lan_host = await _agent(AddressPolicy(allow_private=True), lan_refusals)
    assert ipaddress.ip_address(host.host).is_private, "this test needs a private interface address"
    source = host.host if source_kind == "private" else "127.0.0.1"
    client = await _socket(source)
    try:
        client.transport.sendto(_binding_request(agent), (host.host, host.port))
        await wait_until(lambda: refusals, timeout=5, what="the agent to refuse the request")
        assert refusals == [(source_kind, source)]
        # nothing came back before our own sentinel did
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(SENTINEL, client.transport.get_extra_info("sockname"))
        await wait_until(lambda: SENTINEL in client.datagrams, timeout=5, what="the sentinel")
        assert client.datagrams == [SENTINEL]
        assert agent.remote_candidates == []  # no peer-reflexive candidate learned

        # an agent that allows private addresses answers the same request
        # from a private source; loopback stays refused
        client.datagrams.clear()
        client.transport.sendto(_binding_request(lan_agent), (lan_host.host, lan_host.port))
        if source_kind == "private":
            await wait_until(lambda: client.datagrams, timeout=5, what="a binding response")
            response = stun.parse_message(client.datagrams[0])
            assert response.message_class == stun.Class.RESPONSE and lan_refusals == []
        else:
            await wait_until(lambda: lan_refusals, timeout=5, what="the loopback source refused")
            assert lan_refusals == [("loopback", "127.0.0.1")]
    finally:
        client.transport.close()
        await agent.close()
        await lan_agent.close()


async def test_the_guarded_agent_adds_no_refused_remote_candidate():
    refusals: list[tuple[str, str]] = []
    agent, _ = await _agent(AddressPolicy(), refusals)
    try:
        for host in ("127.0.0.1", "10.0.0.7", "169.254.1.1"):
            await agent.add_remote_candidate(Candidate(
                foundation="1", component=1, transport="udp", priority=1, host=host, port=9, type="host"))
        assert agent.remote_candidates == []
        assert refusals == [("loopback", "127.0.0.1"), ("private", "10.0.0.7"), ("link_local", "169.254.1.1")]
    finally:
        await agent.close()
