"""A second line behind :func:`~server.media.candidates.filter_sdp_candidates`:
the relay's ICE agents themselves refuse addresses the
:class:`~server.media.candidates.AddressPolicy` refuses.

The offer filter removes what a client names in its SDP. An ICE agent also
learns addresses by itself: a binding request from an unknown source makes
aioice answer it, pair it as a peer-reflexive candidate and probe it back
(RFC 8445 section 7.3.1.3-4), and an mDNS name resolves to whatever the LAN
says. So each aioice ``Connection`` of a relay peer connection gets two
instance-level wrappers: remote candidates the policy refuses are never
added, and requests from a refused source are dropped unanswered.

This reaches into aioice (``Connection._add_remote_candidate`` and
``request_received``, aioice 0.10 to 0.13); an aioice without them is
reported once and the relay relies on the offer filter alone."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from aiortc import RTCPeerConnection
from loguru import logger

from .candidates import AddressPolicy

RefusedCallback = Callable[[str, str], None]  # (reason, address)

_GUARDED = "_skillshare_address_guard"
MAX_REMEMBERED_ADDRESSES = 64
"""Refused addresses one connection remembers so each is reported once;
past this (a spoofing sender) every refusal is reported, memory stays bounded."""


def guard_peer_connection(pc: RTCPeerConnection, policy: AddressPolicy, on_refused: RefusedCallback) -> bool:
    """Guard every ICE connection ``pc`` has now (call again after
    ``setRemoteDescription``, which may create more; guarding twice is a
    no-op). False when aioice's internals were not recognised."""
    guarded = True
    for connection in _ice_connections(pc):
        guarded = guard_connection(connection, policy, on_refused) and guarded
    return guarded


def guard_connection(connection: Any, policy: AddressPolicy, on_refused: RefusedCallback) -> bool:
    """Wrap one aioice ``Connection``. A refused address is reported once
    per connection (up to :data:`MAX_REMEMBERED_ADDRESSES` addresses)."""
    if getattr(connection, _GUARDED, False):
        return True
    add = getattr(connection, "_add_remote_candidate", None)
    received = getattr(connection, "request_received", None)
    if not callable(add) or not callable(received):
        _warn_once()
        return False
    reported: set[str] = set()

    def refused(host: str) -> bool:
        reason = policy.refusal(host)
        if reason is None:
            return False
        if host not in reported:
            if len(reported) < MAX_REMEMBERED_ADDRESSES:
                reported.add(host)
            on_refused(reason, host)
        return True

    def add_remote_candidate(candidate: Any, network_host: str) -> None:
        if not refused(str(network_host)):
            add(candidate, network_host)

    def request_received(message: Any, addr: tuple[str, int], protocol: Any) -> None:
        if not refused(str(addr[0])):
            received(message, addr, protocol)

    connection._add_remote_candidate = add_remote_candidate
    connection.request_received = request_received
    setattr(connection, _GUARDED, True)
    return True


def _ice_connections(pc: RTCPeerConnection) -> Iterator[Any]:
    dtls_transports = []
    for transceiver in pc.getTransceivers():
        dtls_transports += [transceiver.receiver.transport, transceiver.sender.transport]
    if pc.sctp is not None:
        dtls_transports.append(pc.sctp.transport)
    seen: set[int] = set()
    for dtls in dtls_transports:
        gatherer = getattr(getattr(dtls, "transport", None), "iceGatherer", None)
        connection = getattr(gatherer, "_connection", None)
        if connection is None:
            _warn_once()
        elif id(connection) not in seen:
            seen.add(id(connection))
            yield connection


@functools.cache
def _warn_once() -> None:
    logger.warning("relay: aioice internals not recognised; only offered candidates are filtered")
