"""Which addresses the media relay's ICE agent may contact.

A client hands the relay its ICE candidates inside the SDP offer of
``call:relay``; left alone, the relay's ICE agent (aioice) would send STUN
checks to whatever addresses they name, including the relay host's own
loopback services and the operator's private network. The
:class:`AddressPolicy` decides, and :func:`filter_sdp_candidates` removes
every candidate line it refuses before the offer reaches aiortc:

* never: loopback (127/8, ::1), link-local (169.254/16, fe80::/10),
  unspecified (0/8, ::), multicast, broadcast and other reserved addresses,
  mDNS names (``*.local``, which aioice would resolve on the LAN) and any
  other host name;
* only with ``allow_private`` (LAN deployments, tests): every other address
  that is not globally routable, i.e. private ranges (10/8, 172.16/12,
  192.168/16, fc00::/7), CGNAT (100.64/10), documentation and benchmarking
  ranges.

IPv4 addresses embedded in IPv6 (``::ffff:a.b.c.d``, 6to4, NAT64
``64:ff9b::/96``) are judged by their IPv4 address.

Lines are split exactly as aiortc splits them (``str.splitlines``) and the
result is re-joined with CRLF, so aiortc parses exactly the lines checked
here."""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass

REFUSAL_REASONS = (
    "loopback", "link_local", "unspecified", "multicast", "broadcast", "reserved",
    "private", "mdns", "hostname", "malformed",
)
"""Why a candidate was refused (the ``reason`` label of the metric)."""

PRIVATE = "private"
MDNS_SUFFIX = ".local"
CANDIDATE_ATTRIBUTE = "candidate"
MIN_CANDIDATE_FIELDS = 8  # foundation component transport priority address port "typ" type
ADDRESS_FIELD, TYP_FIELD = 4, 6

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AddressPolicy:
    """``refusal(host)`` is ``None`` for an address the relay may contact,
    else the reason it may not."""

    allow_private: bool = False

    def refusal(self, host: str) -> str | None:
        reason = address_class(host)
        if reason == PRIVATE and self.allow_private:
            return None
        return reason


def address_class(host: str) -> str | None:
    """``None`` for a globally routable unicast IP address, else what the
    address is (one of :data:`REFUSAL_REASONS`)."""
    name = host.strip().rstrip(".").lower()
    if name.endswith(MDNS_SUFFIX):
        return "mdns"
    try:
        address: IPAddress = ipaddress.ip_address(name)
    except ValueError:
        return "hostname"
    address = _embedded_ipv4(address)
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if address == _BROADCAST:
        return "broadcast"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return PRIVATE
    return None


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class FilteredSdp:
    sdp: str
    kept: int
    refused: Counter[str]


def filter_sdp_candidates(sdp: str, policy: AddressPolicy) -> FilteredSdp:
    """``sdp`` without the ``a=candidate`` lines ``policy`` refuses (and
    without malformed ones), with the count of each refusal reason."""
    lines: list[str] = []
    refused: Counter[str] = Counter()
    kept = 0
    for line in sdp.splitlines():
        if _is_candidate(line):
            reason = _candidate_refusal(line, policy)
            if reason is not None:
                refused[reason] += 1
                continue
            kept += 1
        lines.append(line)
    return FilteredSdp("\r\n".join(lines) + "\r\n", kept, refused)


def _is_candidate(line: str) -> bool:
    # aiortc: an "a=" line whose attribute name (up to the first ":") is "candidate"
    return line.startswith("a=") and line[2:].split(":", 1)[0] == CANDIDATE_ATTRIBUTE


def _candidate_refusal(line: str, policy: AddressPolicy) -> str | None:
    _, _, value = line[2:].partition(":")
    fields = value.split()  # as aiortc's candidate_from_sdp does
    if len(fields) < MIN_CANDIDATE_FIELDS or fields[TYP_FIELD] != "typ":
        return "malformed"
    return policy.refusal(fields[ADDRESS_FIELD])


ADVERTISABLE = AddressPolicy(allow_private=True)
"""Which of the relay's own candidates go into its answers: its private
addresses too (LAN deployments), never loopback or link-local ones."""


def advertisable_candidates(answer_sdp: str) -> FilteredSdp:
    """The relay's answer without local candidates no client can reach."""
    return filter_sdp_candidates(answer_sdp, ADVERTISABLE)
