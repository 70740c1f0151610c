"""Protocol hygiene: what a client may send, at the Engine.IO layer (frames)
and the Socket.IO layer (packets). Pure rules; ``transport.py`` applies them
before python-socketio dispatches anything. Every violation closes the
connection (docs/realtime.md, "Protocol hygiene")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from socketio import packet as sio_packet

from ..errors import BadRequest, RateLimited

NAMESPACE = "/"
# Names python-socketio (and the Socket.IO clients) give a meaning of their
# own; a client sending them as events would reach connection handling.
RESERVED_EVENTS = frozenset({
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
    "*",
})
# Engine.IO v4 packet types a client may send: CLOSE, PONG, MESSAGE, UPGRADE,
# NOOP; PING only as the ``probe`` of a websocket upgrade. OPEN is the server's.
CLIENT_FRAME_TYPES = frozenset("13456")
UPGRADE_PROBE = "2probe"
BASE64_BINARY_PREFIX = "b"
# Decoding failures of python-socketio's packet parser (bad JSON, bad ids,
# too many attachment digits, nesting deeper than the JSON parser allows).
DECODE_ERRORS = (ValueError, TypeError, IndexError, KeyError, RecursionError)

PROTOCOL_ERROR = "protocol_error"
FLOODING = "flooding"
SLOW_CONSUMER = "slow_consumer"  # session:ended reason: it did not read fast enough


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """Why a connection is closed: ``kind`` (metric label, log), the error
    the client sees (``code``, ``message``) and the ``session:ended`` reason."""

    kind: str
    message: str
    code: str = BadRequest.code
    reason: str = PROTOCOL_ERROR

    def error(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


BINARY = ProtocolViolation("binary", "Binary frames and packets are not part of this protocol.")
MALFORMED_FRAME = ProtocolViolation("malformed_frame", "The frame is not a valid Engine.IO packet.")
UNEXPECTED_PING = ProtocolViolation("unexpected_ping", "Clients answer pings; they do not send them.")
MALFORMED_PACKET = ProtocolViolation("malformed_packet", "The packet is not valid Socket.IO.")
UNKNOWN_NAMESPACE = ProtocolViolation("unknown_namespace", "Only the namespace / exists.")
REPEATED_CONNECT = ProtocolViolation("repeated_connect", "This connection is already connected.")
NOT_CONNECTED = ProtocolViolation("not_connected", "Connect (with a token) before sending events.")
MALFORMED_EVENT = ProtocolViolation("malformed_event", "An event is a JSON array starting with its name.")
RESERVED_EVENT = ProtocolViolation("reserved_event", "That event name is reserved.")
UNEXPECTED_ACK = ProtocolViolation("unexpected_ack", "The server asked for no acknowledgement.")
BAD_PACKET_TYPE = ProtocolViolation("bad_packet_type", "Clients may not send this packet type.")
TOO_MANY_PACKETS = ProtocolViolation("too_many_packets", "Too many packets in one polling request.")
FRAME_FLOOD = ProtocolViolation("frame_flood", "Too many frames; slow down.",
                                code=RateLimited.code, reason=FLOODING)


def check_frame(frame: str | bytes) -> ProtocolViolation | None:
    """One Engine.IO frame (a websocket message or one packet of a polling
    body), before Engine.IO decodes it."""
    if isinstance(frame, (bytes, bytearray)):
        return BINARY
    if not frame:
        return MALFORMED_FRAME
    kind = frame[0]
    if kind == BASE64_BINARY_PREFIX:
        return BINARY
    if frame.startswith("2"):
        return None if frame == UPGRADE_PROBE else UNEXPECTED_PING
    if kind not in CLIENT_FRAME_TYPES:
        return MALFORMED_FRAME
    return None


def decode_packet(packet_class: type[sio_packet.Packet],
                  data: Any) -> sio_packet.Packet | ProtocolViolation:
    """A Socket.IO packet from an Engine.IO message, or why not."""
    if isinstance(data, (bytes, bytearray)):
        return BINARY
    if not isinstance(data, str) or not data:
        return MALFORMED_PACKET
    try:
        return packet_class(encoded_packet=data)
    except DECODE_ERRORS:
        return MALFORMED_PACKET


def check_packet(pkt: sio_packet.Packet, *, connected: bool,
                 ack_pending: bool) -> ProtocolViolation | None:
    """``None`` if ``pkt`` is something a client may send now, else why not.
    ``connected``: this connection is connected to ``/``."""
    kind = pkt.packet_type
    if kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK):
        return BINARY
    if (pkt.namespace or NAMESPACE) != NAMESPACE:
        return UNKNOWN_NAMESPACE
    if kind == sio_packet.CONNECT:
        return REPEATED_CONNECT if connected else None
    if kind == sio_packet.DISCONNECT:
        return None
    if kind == sio_packet.EVENT:
        data = pkt.data
        if not connected:
            return NOT_CONNECTED
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return MALFORMED_EVENT
        return RESERVED_EVENT if data[0] in RESERVED_EVENTS else None
    if kind == sio_packet.ACK:
        ok = connected and ack_pending and isinstance(pkt.data, list)
        return None if ok else UNEXPECTED_ACK
    return BAD_PACKET_TYPE
