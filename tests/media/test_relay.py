"""The media relay, exercised with real aiortc peers on this host.

Each client sends a video track of its own frame size (so a receiver can
tell whose media it got) and usually an audio track, offers to the relay and
counts what it receives.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from prometheus_client import CollectorRegistry

from server.errors import BadRequest, Conflict, Unavailable
from server.media.candidates import AddressPolicy
from server.media.metrics import RelayMetrics
from server.media.passthrough import tap_receiver
from server.media.relay import MediaRelay
from tests.support.calls import CountingPeer, SizedVideoTrack

WAIT_S = 15.0
LAN = AddressPolicy(allow_private=True)  # this host's interface addresses are in private ranges
FRAMES = 15


class PrerecordedVP8Track(MediaStreamTrack):
    """Sends already-encoded VP8 frames, so the bytes a receiver gets can be
    compared with the bytes that were sent."""

    kind = "video"

    def __init__(self, count: int = 60) -> None:
        super().__init__()
        encoder = av.CodecContext.create("libvpx", "w")
        encoder.width, encoder.height, encoder.pix_fmt = 128, 96, "yuv420p"
        encoder.time_base = Fraction(1, 30)
        encoder.gop_size = 10
        self.payloads: list[bytes] = []
        for i in range(count):
            image = np.full((96, 128, 3), (i * 4) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            frame.pts = i
            self.payloads += [bytes(p) for p in encoder.encode(frame)]
        self.payloads += [bytes(p) for p in encoder.encode(None)]
        self._index = 0

    async def recv(self) -> av.Packet:
        await asyncio.sleep(1 / 30)
        packet = av.Packet(self.payloads[self._index % len(self.payloads)])
        packet.pts, packet.time_base = self._index * 3000, Fraction(1, 90000)
        self._index += 1
        return packet


class Client(CountingPeer):
    """A participant's browser stand-in: one RTCPeerConnection to the relay."""

    def __init__(self, video: MediaStreamTrack | None, *, audio: bool = True, tap_video: bool = False) -> None:
        super().__init__()
        self.encoded_video: list[bytes] = []
        if video is not None:
            self.pc.addTrack(video)
        else:
            self.pc.addTransceiver("video", direction="recvonly")
        if audio:
            self.pc.addTrack(AudioStreamTrack())
        if tap_video:
            receiver = next(t.receiver for t in self.pc.getTransceivers() if t.kind == "video")
            assert tap_receiver(receiver, "video", lambda codec, frame: self.encoded_video.append(frame.data))

    async def join(self, relay: MediaRelay, call_id: str, participant_id: str) -> None:
        answer = await relay.answer(call_id, participant_id, await self.offer())
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def video_frames(self, size: tuple[int, int] | None = None) -> int:
        return self.video_sizes[size] if size else sum(self.video_sizes.values())



async def eventually(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def relay() -> AsyncIterator[MediaRelay]:
    relay = MediaRelay(ice_servers=[], address_policy=LAN)
    yield relay
    await relay.close_all()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(*args: object, **kwargs: object) -> Client:
        made.append(Client(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    await asyncio.gather(*(c.close() for c in made))


def assert_forgotten(relay: MediaRelay) -> None:
    assert relay.active_calls == 0
    assert relay.peer_connection_count == 0
    assert relay._calls == {} and relay._tasks == set()


async def test_each_participant_receives_the_other(relay: MediaRelay, clients: Callable[..., Client]) -> None:
    alice = clients(SizedVideoTrack(176, 144))
    bob = clients(SizedVideoTrack(128, 96))
    await alice.join(relay, "call-1", "alice")
    await bob.join(relay, "call-1", "bob")

    await eventually(lambda: bob.video_frames((176, 144)) >= FRAMES, "bob sees alice's video")
    await eventually(lambda: alice.video_frames((128, 96)) >= FRAMES, "alice sees bob's video")
    await eventually(lambda: alice.audio_frames >= FRAMES and bob.audio_frames >= FRAMES, "both hear audio")
    assert set(bob.video_sizes) == {(176, 144)}
    assert set(alice.video_sizes) == {(128, 96)}
    assert relay.active_calls == 1 and relay.participants("call-1") == ["alice", "bob"]


async def test_video_is_forwarded_without_reencoding(relay: MediaRelay, clients: Callable[..., Client]) -> None:
    sent = PrerecordedVP8Track()
    alice = clients(sent, audio=False)
    bob = clients(None, audio=False, tap_video=True)
    await alice.join(relay, "call-1", "alice")
    await bob.join(relay, "call-1", "bob")

    await eventually(lambda: len(bob.encoded_video) >= FRAMES, "bob receives encoded frames")
    assert set(bob.encoded_video) <= set(sent.payloads)


async def test_reencode_fallback_relays_too(clients: Callable[..., Client]) -> None:
    relay = MediaRelay(ice_servers=[], address_policy=LAN, passthrough=False)
    try:
        alice = clients(SizedVideoTrack(176, 144), audio=False)
        bob = clients(SizedVideoTrack(128, 96), audio=False)
        await alice.join(relay, "call-1", "alice")
        await bob.join(relay, "call-1", "bob")
        await eventually(lambda: bob.video_frames((176, 144)) >= FRAMES, "bob sees alice's video")
        await eventually(lambda: alice.video_frames((128, 96)) >= FRAMES, "alice sees bob's video")
    finally:
        await relay.close_all()
    assert_forgotten(relay)


async def test_capacity_and_call_size_limits(clients: Callable[..., Client]) -> None:
    registry = CollectorRegistry()
    relay = MediaRelay(ice_servers=[], address_policy=LAN, max_calls=1, metrics=RelayMetrics(registry))
    try:
        await relay.answer("call-1", "alice", await clients(SizedVideoTrack(64, 48)).offer())
        with pytest.raises(Unavailable, match="media relay is at capacity"):
            await relay.answer("call-2", "carol", await clients(SizedVideoTrack(64, 48)).offer())
        await relay.answer("call-1", "bob", await clients(SizedVideoTrack(64, 48)).offer())
        with pytest.raises(Conflict):
            await relay.answer("call-1", "dave", await clients(SizedVideoTrack(64, 48)).offer())
        assert relay.active_calls == 1 and relay.peer_connection_count == 2
        assert registry.get_sample_value("skillshare_relay_active_calls") == 1
        assert registry.get_sample_value("skillshare_relay_offers_total", {"outcome": "capacity"}) == 1

        await relay.close_call("call-1")
        await relay.answer("call-2", "carol", await clients(SizedVideoTrack(64, 48)).offer())
        assert relay.participants("call-2") == ["carol"]
    finally:
        await relay.close_all()
    assert_forgotten(relay)
    assert registry.get_sample_value("skillshare_relay_peer_connections") == 0


async def test_closing_the_call_closes_every_peer_connection(
    relay: MediaRelay, clients: Callable[..., Client]
) -> None:
    alice = clients(SizedVideoTrack(176, 144))
    bob = clients(SizedVideoTrack(128, 96))
    await alice.join(relay, "call-1", "alice")
    await bob.join(relay, "call-1", "bob")
    await eventually(lambda: bob.video_frames() >= 5 and alice.video_frames() >= 5, "media flows")
    server_pcs = [relay.peer_connection("call-1", "alice"), relay.peer_connection("call-1", "bob")]

    await relay.close_call("call-1")

    assert [pc.connectionState for pc in server_pcs] == ["closed", "closed"]
    assert all(t.sender.track is None for pc in server_pcs for t in pc.getTransceivers())
    assert_forgotten(relay)
    await eventually(
        lambda: {alice.pc.connectionState, bob.pc.connectionState} <= {"closed", "failed"},
        "the clients notice",
    )
    await relay.close_call("call-1")  # idempotent


async def test_a_participant_leaving_closes_only_its_connection(
    relay: MediaRelay, clients: Callable[..., Client]
) -> None:
    alice = clients(SizedVideoTrack(176, 144))
    bob = clients(SizedVideoTrack(128, 96))
    await alice.join(relay, "call-1", "alice")
    await bob.join(relay, "call-1", "bob")
    await eventually(lambda: bob.video_frames() >= 5, "bob sees alice")
    alice_server_pc = relay.peer_connection("call-1", "alice")
    bob_server_pc = relay.peer_connection("call-1", "bob")

    await relay.close_participant("call-1", "alice")

    assert alice_server_pc.connectionState == "closed"
    assert bob_server_pc.connectionState == "connected"
    assert relay.participants("call-1") == ["bob"]

    # Alice comes back from another device; bob needs no renegotiation.
    alice_again = clients(SizedVideoTrack(96, 64))
    await alice_again.join(relay, "call-1", "alice")
    await eventually(lambda: bob.video_frames((96, 64)) >= FRAMES, "bob sees alice's new device")
    await eventually(lambda: alice_again.video_frames((128, 96)) >= FRAMES, "alice's new device sees bob")
    assert relay.peer_connection("call-1", "bob") is bob_server_pc


async def test_a_new_offer_replaces_the_participants_connection(
    relay: MediaRelay, clients: Callable[..., Client]
) -> None:
    alice = clients(SizedVideoTrack(176, 144))
    bob = clients(SizedVideoTrack(128, 96))
    await alice.join(relay, "call-1", "alice")
    await bob.join(relay, "call-1", "bob")
    await eventually(lambda: alice.video_frames() >= 5, "alice sees bob")
    old_pc = relay.peer_connection("call-1", "alice")

    alice_restarted = clients(SizedVideoTrack(96, 64))
    await alice_restarted.join(relay, "call-1", "alice")

    assert old_pc.connectionState == "closed"
    assert relay.peer_connection("call-1", "alice") is not old_pc
    assert relay.peer_connection_count == 2
    await eventually(lambda: bob.video_frames((96, 64)) >= FRAMES, "bob sees the new connection")
    await eventually(lambda: alice_restarted.video_frames((128, 96)) >= FRAMES, "the new connection sees bob")


async def test_a_lost_connection_is_cleaned_up_and_reported(clients: Callable[..., Client]) -> None:
    lost: list[tuple[str, str, str]] = []

    async def on_lost(call_id: str, participant_id: str, state: str) -> None:
        lost.append((call_id, participant_id, state))

    relay = MediaRelay(ice_servers=[], address_policy=LAN, on_connection_lost=on_lost)
    try:
        alice = clients(SizedVideoTrack(176, 144), audio=False)
        bob = clients(SizedVideoTrack(128, 96), audio=False)
        await alice.join(relay, "call-1", "alice")
        await bob.join(relay, "call-1", "bob")
        await eventually(lambda: alice.video_frames() >= 5, "media flows")
        alice_server_pc = relay.peer_connection("call-1", "alice")

        await alice.pc.close()

        await eventually(lambda: relay.participants("call-1") == ["bob"], "the relay drops alice")
        await eventually(lambda: len(lost) == 1, "the loss is reported")
        assert lost[0][:2] == ("call-1", "alice") and lost[0][2] in ("closed", "failed")
        assert alice_server_pc.connectionState == "closed"
    finally:
        await relay.close_all()
    assert_forgotten(relay)


async def test_bad_offers_are_refused(relay: MediaRelay, clients: Callable[..., Client]) -> None:
    for sdp in ["", "not sdp at all"]:
        with pytest.raises(BadRequest):
            await relay.answer("call-1", "alice", sdp)

    data_only = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    data_only.createDataChannel("chat")
    await data_only.setLocalDescription(await data_only.createOffer())
    with pytest.raises(BadRequest, match="no audio or video"):
        await relay.answer("call-1", "alice", data_only.localDescription.sdp)
    await data_only.close()

    h264_only = clients(SizedVideoTrack(64, 48), audio=False)
    transceiver = h264_only.pc.getTransceivers()[0]
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    )
    with pytest.raises(BadRequest, match="VP8"):
        await h264_only.join(relay, "call-1", "alice")
    assert_forgotten(relay)


async def test_many_calls_leave_nothing_behind(relay: MediaRelay, clients: Callable[..., Client]) -> None:
    server_pcs: list[weakref.ref[RTCPeerConnection]] = []
    states: list[str] = []

    for n in range(10):
        call_id = f"call-{n}"
        alice = clients(SizedVideoTrack(64, 48), audio=n % 2 == 0)
        bob = clients(SizedVideoTrack(48, 32), audio=n % 2 == 0)
        await alice.join(relay, call_id, "alice")
        await bob.join(relay, call_id, "bob")
        await eventually(lambda a=alice, b=bob: a.video_frames() >= 3 and b.video_frames() >= 3,
                         f"media flows in {call_id}")
        pcs = [relay.peer_connection(call_id, "alice"), relay.peer_connection(call_id, "bob")]
        server_pcs += [weakref.ref(pc) for pc in pcs]
        await relay.close_call(call_id)
        states += [pc.connectionState for pc in pcs]
        await alice.close()
        await bob.close()
        del pcs

    assert states == ["closed"] * 20
    assert_forgotten(relay)
    await eventually(lambda: not _decoder_threads(), "decoder threads exit", timeout=5)
    await _collect_until(lambda: all(ref() is None for ref in server_pcs), "server peer connections are freed")


def _decoder_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith("-decoder")]


async def _collect_until(predicate: Callable[[], bool], what: str) -> None:
    async def collected() -> bool:
        gc.collect()
        return predicate()

    await _poll(collected, what)


async def _poll(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("media", [
    "m=audio abc UDP/TLS/RTP/SAVPF 111\r\n",  # aiortc's parser asserts on these
    "m=audio 9 UDP/TLS/RTP/SAVPF 999\r\n",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP9 x y\r\n",
])
async def test_offers_aiortc_cannot_parse_are_bad_requests(relay: MediaRelay, media: str) -> None:
    offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + media
    with pytest.raises(BadRequest, match="cannot be parsed"):
        await relay.answer("call-1", "alice", offer)
    assert_forgotten(relay)
