"""Call participants for tests: a real Socket.IO client that records the
``call:*`` events, plus an aiortc peer connection sending synthetic video
(of a size that identifies the sender) and audio, counting what arrives."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from tests.support.realtime import SocketUser

CALL_EVENTS = ("call:incoming", "call:accepted", "call:rejected", "call:ended", "call:signal",
               "call:peer_reconnecting", "call:peer_reconnected")


class CallSocket(SocketUser):
    """A ``SocketUser`` that also records the server's ``call:*`` events."""

    def __init__(self, url: str, token: str, *, name: str = "") -> None:
        super().__init__(url, token, name=name)
        for event in CALL_EVENTS:
            self.sio.on(event, self._recorder(event))

    async def ok(self, event: str, data: Any, *, timeout: float = 15.0) -> dict[str, Any]:
        ack = await self.call(event, data, timeout=timeout)
        assert ack.get("ok") is True, f"{self.name}: {event} refused: {ack}"
        return ack

    async def refused(self, event: str, data: Any) -> dict[str, Any]:
        ack = await self.call(event, data)
        assert ack.get("ok") is False, f"{self.name}: {event} unexpectedly accepted: {ack}"
        return ack["error"]


class SizedVideoTrack(VideoStreamTrack):
    """Synthetic 30 fps video; the frame size says who sent it."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self._image = np.full((height, width, 3), 100, np.uint8)

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class CountingPeer:
    """An aiortc peer (no ICE servers: loopback only) that counts what it
    receives: video frames by size, which says who sent them, and audio
    frames."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video_sizes: Counter[tuple[int, int]] = Counter()
        self.audio_frames = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", lambda track: self._tasks.append(asyncio.ensure_future(self._consume(track))))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                self.video_sizes[(frame.width, frame.height)] += 1
            else:
                self.audio_frames += 1

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class MediaPeer(CountingPeer):
    """One participant's WebRTC side (the browser stand-in)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.pc.addTrack(SizedVideoTrack(*size))
        self.pc.addTrack(AudioStreamTrack())

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def wait_media(self, *, video_size: tuple[int, int], frames: int, timeout: float) -> None:
        """Until ``frames`` video frames of ``video_size`` and as many audio
        frames arrived."""
        await wait_until(lambda: self.video_sizes[video_size] >= frames and self.audio_frames >= frames,
                         timeout=timeout,
                         what=lambda: f"media (video {dict(self.video_sizes)}, audio {self.audio_frames})")


async def wait_until(check: Callable[[], bool], *, timeout: float,
                     what: Callable[[], str] | str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what() if callable(what) else what} within {timeout}s")
        await asyncio.sleep(0.05)
