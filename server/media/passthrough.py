"""Forward encoded media between aiortc peer connections without re-encoding.

aiortc's receive path is ``RTP -> JitterBuffer -> decoder thread -> frames``
and its send path is ``track.recv() -> encoder -> RTP``. A track whose
``recv()`` returns ``av.Packet`` makes ``RTCRtpSender`` call ``encoder.pack()``
(packetize only) instead of ``encoder.encode()``. What aiortc lacks is a way
to get *encoded* frames out of an ``RTCRtpReceiver``; this module adds it with
two small hooks, both installed on a receiver before it starts:

* the receiver's decoder input queue is replaced by :class:`_EncodedFrameTap`,
  whose ``put()`` hands each reassembled frame to a callback on the event loop
  instead of the decoder thread (the thread is still started, blocks idle on
  the queue and exits on the usual ``None`` stop signal);
* the receiver's jitter buffer is replaced by one that releases a frame as
  soon as it is complete (video: the RTP marker packet; audio: every packet)
  rather than when the next frame starts (video) or four frames later
  (audio). The subscriber's own jitter buffer absorbs network jitter; the
  relay only needs complete frames, in order.

These touch name-mangled aiortc internals (checked by :func:`tap_receiver`,
which returns ``False`` when they are missing so the relay can fall back to
decoding and re-encoding). They were written against aiortc 1.16.

Keyframes: an SFU cannot make a keyframe, so picture-loss requests (PLI/FIR)
that a subscriber sends to the relay's ``RTCRtpSender`` are forwarded to the
publisher as a PLI on the matching ``RTCRtpReceiver`` (throttled), and a
subscriber that is attached to a new source drops video until the next
keyframe so its decoder never starts mid-GOP.
"""

from __future__ import annotations

import asyncio
import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_gt
from av.frame import Frame
from loguru import logger

KEYFRAME_REQUEST_MIN_INTERVAL_S = 0.5
"""At most one PLI per publisher track per this interval (subscribers and
our own queue-overflow handling may all ask at once)."""

FORWARD_QUEUE_MAX_UNITS = 90
"""Per-subscriber backlog bound (~3 s of video at 30 fps). Past it the
backlog is dropped and the subscriber resynchronises on a keyframe."""

NOMINAL_FRAME_RATE = {"audio": 50, "video": 30}
"""Used only to space timestamps when a subscriber switches source."""

_DECODER_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD_ATTR = "_RTCRtpReceiver__decoder_thread"
_JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"


@dataclass(frozen=True, slots=True)
class MediaUnit:
    """One frame travelling from a publisher to its subscribers: encoded bytes
    (pass-through) or a decoded ``av`` frame (re-encode fallback)."""

    payload: bytes | Frame
    pts: int
    time_base: Fraction
    keyframe: bool


def is_vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame."""
    return bool(data) and not data[0] & 0x01


class _EncodedFrameTap(queue.Queue):
    """Stands in for ``RTCRtpReceiver``'s decoder input queue."""

    def __init__(self, on_frame: Callable[[Any, JitterFrame], None]) -> None:
        super().__init__()
        self._on_frame = on_frame

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver is stopping: let the idle decoder thread exit
            super().put(item, block, timeout)
            return
        codec, encoded_frame = item
        self._on_frame(codec, encoded_frame)


class _FrameOnCompletionBuffer(JitterBuffer):
    """A jitter buffer that releases a video frame once its marker packet and
    every packet before it have arrived."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        origin = self._origin
        if origin is None:  # nothing buffered yet
            return None
        packets: list[RtpPacket] = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(origin + count) % self.capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                # the previous frame's marker packet never came: release what we have
                self.remove(count)
                return _join(packets, timestamp)
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return _join(packets, timestamp)
        return None


class _PacketPerFrameBuffer(JitterBuffer):
    """Audio: every RTP packet is a frame; release it at once, drop late ones."""

    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._last_sequence_number: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        last = self._last_sequence_number
        if last is not None and not uint16_gt(packet.sequence_number, last):
            return False, None
        self._last_sequence_number = packet.sequence_number
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


def _join(packets: list[RtpPacket], timestamp: int) -> JitterFrame:
    return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]


def tap_receiver(
    receiver: RTCRtpReceiver, kind: str, on_frame: Callable[[Any, JitterFrame], None]
) -> bool:
    """Divert a not-yet-started receiver's encoded frames to ``on_frame``.

    Returns ``False`` (and changes nothing) if this aiortc version does not
    have the expected internals or the receiver already runs.
    """
    if not isinstance(getattr(receiver, _DECODER_QUEUE_ATTR, None), queue.Queue):
        return False
    if getattr(receiver, _DECODER_THREAD_ATTR, "missing") is not None:
        return False
    if not isinstance(getattr(receiver, _JITTER_BUFFER_ATTR, None), JitterBuffer):
        return False
    setattr(receiver, _DECODER_QUEUE_ATTR, _EncodedFrameTap(on_frame))
    if kind == "video":
        setattr(receiver, _JITTER_BUFFER_ATTR, _FrameOnCompletionBuffer(capacity=512, is_video=True))
    else:
        setattr(receiver, _JITTER_BUFFER_ATTR, _PacketPerFrameBuffer())
    return True


class ForwardingTrack(MediaStreamTrack):
    """The track a relay ``RTCRtpSender`` sends: whatever its current source
    publishes. It outlives sources: when the peer leaves or re-offers, the
    relay attaches the new source here, so the sender (whose RTP loop would
    end with an ended track) keeps running and no renegotiation is needed.
    Timestamps are rebased on every switch so they keep increasing.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[MediaUnit | None] = asyncio.Queue(maxsize=FORWARD_QUEUE_MAX_UNITS)
        self._source: PublishedTrack | None = None
        self._awaiting_keyframe = kind == "video"
        self._receiving = False
        self._offset: int | None = None
        self._last_pts: int | None = None
        self.units_forwarded = 0
        self.units_dropped = 0

    @property
    def source(self) -> PublishedTrack | None:
        return self._source

    def attach(self, source: PublishedTrack | None) -> None:
        if source is self._source:
            return
        if self._source is not None:
            self._source.unsubscribe(self)
        self._source = source
        self._offset = None
        self._awaiting_keyframe = self.kind == "video"
        self._drain()
        if source is not None:
            source.subscribe(self)
            if self._receiving:
                self.request_keyframe()

    def push(self, unit: MediaUnit) -> None:
        if self.readyState != "live" or not self._receiving:
            return  # no backlog of stale frames before the sender starts
        if self._awaiting_keyframe:
            if not unit.keyframe:
                self.units_dropped += 1
                self.request_keyframe()
                return
            self._awaiting_keyframe = False
        try:
            self._queue.put_nowait(unit)
        except asyncio.QueueFull:
            dropped = self._drain()
            self.units_dropped += dropped + 1
            logger.warning("relay subscriber backlog full, dropped {} {} frames", dropped + 1, self.kind)
            self._awaiting_keyframe = self.kind == "video"
            self.request_keyframe()

    def request_keyframe(self) -> None:
        if self._source is not None:
            self._source.request_keyframe()

    async def recv(self) -> av.Packet | Frame:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._receiving:
            self._receiving = True
            self.request_keyframe()
        unit = await self._queue.get()
        if unit is None:
            raise MediaStreamError
        pts = self._rebase(unit)
        self.units_forwarded += 1
        if isinstance(unit.payload, bytes):
            packet = av.Packet(unit.payload)
            packet.pts = pts
            packet.time_base = unit.time_base
            return packet
        # Decoded frames are shared by every subscriber of a source; only the
        # pts is touched, right before this subscriber's encoder reads it.
        unit.payload.pts = pts
        return unit.payload

    def stop(self) -> None:
        if self.readyState == "live":
            if self._source is not None:
                self._source.unsubscribe(self)
                self._source = None
            self._drain()
            self._queue.put_nowait(None)
        super().stop()

    def _rebase(self, unit: MediaUnit) -> int:
        if self._offset is None:
            if self._last_pts is None:
                self._offset = 0
            else:
                gap = math.ceil(1 / (NOMINAL_FRAME_RATE[self.kind] * unit.time_base))
                self._offset = self._last_pts + gap - unit.pts
        self._last_pts = unit.pts + self._offset
        return self._last_pts

    def _drain(self) -> int:
        count = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            count += 1
        return count


class PublishedTrack:
    """One incoming track of a participant, fanned out to subscribers.

    In pass-through mode frames arrive through :func:`tap_receiver`; in the
    re-encode fallback a pump task reads decoded frames from the receiver's
    track. Either way :meth:`close` detaches every subscriber and stops any
    task it owns.
    """

    def __init__(
        self,
        kind: str,
        receiver: RTCRtpReceiver,
        *,
        passthrough: bool,
        on_unit: Callable[[str], None] | None = None,
    ) -> None:
        self.kind = kind
        self.media_ssrc: int | None = None
        self._receiver = receiver
        self._subscribers: set[ForwardingTrack] = set()
        self._on_unit = on_unit
        self._last_keyframe_request = -math.inf
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.passthrough = passthrough and tap_receiver(receiver, kind, self._on_encoded_frame)
        self.units_received = 0

    def start(self) -> None:
        """Begin reading decoded frames (re-encode fallback only)."""
        if not self.passthrough and not self._closed and self._receiver.track is not None:
            self._own(self._pump(self._receiver.track))

    def subscribe(self, track: ForwardingTrack) -> None:
        if not self._closed:
            self._subscribers.add(track)

    def unsubscribe(self, track: ForwardingTrack) -> None:
        self._subscribers.discard(track)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (PLI), at most once per interval."""
        if self._closed or self.kind != "video" or not self.passthrough:
            return
        now = time.monotonic()
        if now - self._last_keyframe_request < KEYFRAME_REQUEST_MIN_INTERVAL_S:
            return
        ssrc = self.media_ssrc or _latest_ssrc(self._receiver)
        if ssrc is None:
            return  # nothing received yet; the subscriber will ask again
        self._last_keyframe_request = now
        self._own(self._receiver._send_rtcp_pli(ssrc))

    async def close(self) -> None:
        self._closed = True
        for track in list(self._subscribers):
            track.attach(None)
        self._subscribers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _publish(self, unit: MediaUnit) -> None:
        self.units_received += 1
        if self._on_unit is not None:
            self._on_unit(self.kind)
        for track in list(self._subscribers):
            track.push(unit)

    def _on_encoded_frame(self, codec: Any, frame: JitterFrame) -> None:
        if self._closed:
            return
        data = frame.data
        keyframe = is_vp8_keyframe(data) if codec.mimeType.lower() == "video/vp8" else True
        self._publish(MediaUnit(data, frame.timestamp, Fraction(1, codec.clockRate), keyframe))

    async def _pump(self, track: MediaStreamTrack) -> None:
        while not self._closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            # a decoded track yields frames; recv() is typed to allow packets too
            if not isinstance(frame, Frame) or frame.pts is None or frame.time_base is None:
                continue
            self._publish(MediaUnit(frame, frame.pts, frame.time_base, True))

    def _own(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def forward_keyframe_requests(sender: RTCRtpSender, track: ForwardingTrack) -> None:
    """Route PLI/FIR that reach ``sender`` to the publisher of ``track``'s
    current source instead of aiortc's encoder (which pass-through bypasses)."""
    sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]


def _latest_ssrc(receiver: RTCRtpReceiver) -> int | None:
    sources = receiver.getSynchronizationSources()
    if not sources:
        return None
    return max(sources, key=lambda s: s.timestamp).source
