"""The pure protocol-hygiene rules (server/realtime/protocol.py), frame by
frame and packet by packet."""

from __future__ import annotations

import pytest
from socketio.packet import Packet

from server.realtime import protocol as p


@pytest.mark.parametrize("frame, kind", [
    (b"\x00", "binary"), (bytearray(b"x"), "binary"), ("bAAAA", "binary"),
    ("", "malformed_frame"), ("0", "malformed_frame"), ("7", "malformed_frame"),
    ("x42[]", "malformed_frame"), ("2", "unexpected_ping"), ("2ping", "unexpected_ping"),
    ("2probe", None), ("3", None), ("5", None), ("6", None), ("1", None),
    ('42["message:send",{}]', None),
])
def test_engineio_frames(frame, kind):
    violation = p.check_frame(frame)
    assert (violation.kind if violation else None) == kind


@pytest.mark.parametrize("data, connected, ack_pending, kind", [
    ('0{"token":"t"}', False, False, None),
    ('0{"token":"t"}', True, False, "repeated_connect"),
    ('0/admin,{"token":"t"}', False, False, "unknown_namespace"),
    ("1", True, False, None),
    ("1", False, False, None),
    ('2["message:send",{}]', True, False, None),
    ('21["message:send",{}]', False, False, "not_connected"),
    ('2["disconnect",{}]', True, False, "reserved_event"),
    ('2["connect",{},{"token":"t"}]', True, False, "reserved_event"),
    ('2["*",{}]', True, False, "reserved_event"),
    ("2{}", True, False, "malformed_event"),
    ("2[]", True, False, "malformed_event"),
    ("2[5]", True, False, "malformed_event"),
    ("31[{}]", True, False, "unexpected_ack"),
    ("31[{}]", True, True, None),
    ('31{"a":1}', True, True, "unexpected_ack"),
    ('51-["x",{"_placeholder":true,"num":0}]', True, False, "binary"),
    ('51000000-["x",{"_placeholder":true,"num":0}]', True, False, "binary"),
    ("61-[{}]", True, True, "binary"),
    ('4{"message":"x"}', True, False, "bad_packet_type"),
])
def test_socketio_packets(data, connected, ack_pending, kind):
    pkt = p.decode_packet(Packet, data)
    assert isinstance(pkt, Packet), pkt
    violation = p.check_packet(pkt, connected=connected, ack_pending=ack_pending)
    assert (violation.kind if violation else None) == kind


@pytest.mark.parametrize("data", [
    "", "x", "2[", '2["a",', "2" + "9" * 200 + "[]", "2" + "[" * 50_000 + "]" * 50_000,
    "51" + "0" * 12 + '-["x"]', b"2[]", None,
])
def test_undecodable_packets(data):
    result = p.decode_packet(Packet, data)
    assert isinstance(result, p.ProtocolViolation)
    assert result.kind in ("malformed_packet", "binary")


def test_every_violation_is_in_the_contract_error_shape():
    violations = [v for v in vars(p).values() if isinstance(v, p.ProtocolViolation)]
    assert len(violations) >= 13
    for violation in violations:
        assert violation.error() == {"code": violation.code, "message": violation.message}
        assert violation.code in ("bad_request", "rate_limited")
        assert violation.reason in (p.PROTOCOL_ERROR, p.FLOODING)
