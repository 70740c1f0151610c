"""What ``call:signal`` and ``call:relay`` accept: session descriptions that
look like SDP (RFC 8866 line structure) and ICE candidates that follow the
``candidate-attribute`` grammar of RFC 8839, size-limited, before anything
is relayed to the other participant or handed to the media relay.

The checks are syntactic: they keep garbage, oversized blobs and injected
fields away from peers; the peers' WebRTC stacks still do the real parsing."""

from __future__ import annotations

import re
from typing import Any

from ..errors import PayloadTooLarge, ValidationFailed

MAX_SDP_BYTES = 16 * 1024
MAX_SDP_LINES = 1000
MAX_CANDIDATE_CHARS = 512
MAX_SDP_MID_CHARS = 64
MAX_UFRAG_CHARS = 256
MAX_MLINE_INDEX = 64

SDP_TYPES = ("offer", "answer")

_SDP_LINE = re.compile(r"[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*")
# candidate:<foundation> <component> <transport> <priority> <address> <port>
#   typ <type> [raddr <addr>] [rport <port>] *(<extension name> <value>)
_CANDIDATE = re.compile(
    r"candidate:[A-Za-z0-9+/]{1,32} \d{1,3} [A-Za-z]{1,16} \d{1,10} [0-9A-Za-z.:\-]{1,253} \d{1,5}"
    r" typ (?:host|srflx|prflx|relay)(?: [\x21-\x7e]{1,64} [\x21-\x7e]{1,253})*"
)


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed.field(field, message)


def check_sdp(sdp: Any, *, field: str = "sdp") -> str:
    """Return ``sdp`` if it is a plausible session description; raise
    ``validation_error`` or ``payload_too_large`` otherwise."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise _bad(field, "Send the session description as a string.")
    if len(sdp.encode("utf-8")) > MAX_SDP_BYTES:
        raise PayloadTooLarge(f"A session description is at most {MAX_SDP_BYTES} bytes.")
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    if len(lines) > MAX_SDP_LINES:
        raise _bad(field, f"A session description has at most {MAX_SDP_LINES} lines.")
    if lines[0] != "v=0":
        raise _bad(field, "A session description starts with the line v=0.")
    for number, line in enumerate(lines, 1):
        if not _SDP_LINE.fullmatch(line):
            raise _bad(field, f"Line {number} is not of the form <letter>=<value>.")
    kinds = {line[0] for line in lines}
    if not {"o", "s", "t", "m"} <= kinds:
        raise _bad(field, "A session description needs o=, s=, t= and at least one m= line.")
    return sdp


def check_candidate(value: Any, *, field: str = "data.candidate") -> dict[str, Any]:
    """Normalise a candidate (an ``RTCIceCandidateInit`` object or its
    ``candidate`` string) into ``{candidate, sdpMid, sdpMLineIndex,
    usernameFragment}``; unknown keys are dropped. An empty ``candidate``
    string is the end-of-candidates marker and is allowed."""
    if isinstance(value, str):
        value = {"candidate": value}
    if not isinstance(value, dict):
        raise _bad(field, "Send an RTCIceCandidateInit object or a candidate string.")
    text = value.get("candidate")
    if not isinstance(text, str):
        raise _bad(f"{field}.candidate", "The candidate is a string.")
    if len(text) > MAX_CANDIDATE_CHARS:
        raise _bad(f"{field}.candidate", f"A candidate is at most {MAX_CANDIDATE_CHARS} characters.")
    text = text.removeprefix("a=")
    if text and not _CANDIDATE.fullmatch(text):
        raise _bad(f"{field}.candidate", "Not an ICE candidate (RFC 8839 candidate-attribute).")
    mid = value.get("sdpMid")
    if mid is not None and (not isinstance(mid, str) or len(mid) > MAX_SDP_MID_CHARS
                            or not mid.isprintable()):
        raise _bad(f"{field}.sdpMid", f"sdpMid is a string of at most {MAX_SDP_MID_CHARS} characters.")
    index = value.get("sdpMLineIndex")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                              or not 0 <= index <= MAX_MLINE_INDEX):
        raise _bad(f"{field}.sdpMLineIndex", f"sdpMLineIndex is an integer 0..{MAX_MLINE_INDEX}.")
    ufrag = value.get("usernameFragment")
    if ufrag is not None and (not isinstance(ufrag, str) or len(ufrag) > MAX_UFRAG_CHARS
                              or not ufrag.isprintable()):
        raise _bad(f"{field}.usernameFragment", "usernameFragment is a short string.")
    return {"candidate": text, "sdpMid": mid, "sdpMLineIndex": index, "usernameFragment": ufrag}


def check_signal(data: Any) -> dict[str, Any]:
    """The ``data`` of ``call:signal``, checked and rebuilt (only known
    fields are relayed)."""
    if not isinstance(data, dict):
        raise _bad("data", "Send {type, sdp} or {type: 'candidate', candidate}.")
    kind = data.get("type")
    if kind in SDP_TYPES:
        return {"type": kind, "sdp": check_sdp(data.get("sdp"), field="data.sdp")}
    if kind == "candidate":
        return {"type": "candidate", "candidate": check_candidate(data.get("candidate"))}
    raise _bad("data.type", "type is one of offer, answer, candidate.")
