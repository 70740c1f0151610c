"""Media relay benchmark: relayed calls per node on this machine.

    python loadtests/relay_bench.py                       # defaults below
    python loadtests/relay_bench.py --calls 1,2,4,8 --sizes 320x240,640x480 \
        --modes passthrough,reencode --duration 15 --json out.json

Method (written up in docs/benchmarks.md, "Media relay"):

* The relay (``server.media.relay.MediaRelay``) runs alone in a child process
  behind a tiny HTTP endpoint (POST /offer). Its CPU time is read with
  ``time.process_time()`` in that process (all its threads), so the numbers
  are the relay's own cost, not the clients'.
* This process runs the clients: K calls, two aiortc peers each. Every peer
  publishes 30 fps VP8 video and 50 packets/s Opus audio. The video is
  encoded once up front (noise, so the encoder really spends the target
  bitrate; a keyframe every second) and replayed as ``av.Packet``s, so client
  CPU does not depend on K x encoder cost. Peers count what they receive from
  the encoded-frame tap, without decoding.
* Loss: frames published vs frames received by the other peer in the
  measurement window (after a warm-up), per kind.
* Latency: in call 0 both peers decode the received video. Every frame
  carries its loop index as 8 black/white blocks; the receiver decodes the
  index and subtracts the time that frame was handed to its sender. The
  same probe is run once peer-to-peer (no relay); "added latency" is the
  relayed median minus that direct median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import av  # noqa: E402
import numpy as np  # noqa: E402
from aiohttp import web  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.codecs.opus import OpusEncoder  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from loguru import logger  # noqa: E402

from server.media.candidates import AddressPolicy  # noqa: E402
from server.media.passthrough import tap_receiver  # noqa: E402
from server.media.relay import MediaRelay  # noqa: E402

FPS = 30
AUDIO_PTIME_S = 0.02
LOOP_FRAMES = 150  # 5 s of video, replayed
KEYFRAME_EVERY = 30
INDEX_BITS = 8
BLOCK = 32  # px; index blocks are BLOCK x BLOCK
BITRATES = {(320, 240): 500_000, (640, 480): 1_200_000}
WARMUP_S = 4.0
CONNECT_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------
# media sources


def encode_video_loop(width: int, height: int) -> list[bytes]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.framerate = Fraction(FPS, 1)
    encoder.bit_rate = BITRATES.get((width, height), 1_000_000)
    encoder.gop_size = KEYFRAME_EVERY
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    rng = np.random.default_rng(7)
    payloads: list[bytes] = []
    for index in range(LOOP_FRAMES):
        luma = (rng.integers(0, 96, (height, width)) + 80).astype(np.uint8)
        for bit in range(INDEX_BITS):
            luma[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255 if index >> bit & 1 else 0
        frame = av.VideoFrame.from_ndarray(luma, format="gray").reformat(format="yuv420p")
        frame.pts = index
        packets = encoder.encode(frame)
        if len(packets) != 1:
            raise RuntimeError("expected one packet per frame (lag-in-frames=0)")
        payloads.append(bytes(packets[0]))
    return payloads


def read_index(frame: av.VideoFrame) -> int:
    luma = frame.to_ndarray(format="gray")
    index = 0
    for bit in range(INDEX_BITS):
        block = luma[8 : BLOCK - 8, bit * BLOCK + 8 : (bit + 1) * BLOCK - 8]
        if block.mean() > 128:
            index |= 1 << bit
    return index


def encode_audio_loop() -> list[bytes]:
    encoder = OpusEncoder()
    payloads = []
    samples = int(48000 * AUDIO_PTIME_S)
    for i in range(50):
        t = (np.arange(samples) + i * samples) / 48000
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i * samples, Fraction(1, 48000)
        chunks, _ = encoder.encode(frame)
        payloads += chunks
    return payloads


class LoopTrack(MediaStreamTrack):
    """Replays pre-encoded payloads in real time as ``av.Packet``s."""

    def __init__(self, kind: str, payloads: list[bytes], rate: float, clock_rate: int) -> None:
        super().__init__()
        self.kind = kind
        self._payloads = payloads
        self._interval = 1 / rate
        self._ticks = int(clock_rate / rate)
        self._time_base = Fraction(1, clock_rate)
        self._start: float | None = None
        self.sent = 0
        self.send_times: dict[int, float] = {}

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.perf_counter()
        delay = self._start + self.sent * self._interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        index = self.sent % len(self._payloads)
        packet = av.Packet(self._payloads[index])
        packet.pts, packet.time_base = self.sent * self._ticks, self._time_base
        self.send_times[index] = time.perf_counter()
        self.sent += 1
        return packet


# --------------------------------------------------------------------------
# relay child process


async def serve_relay(mode: str) -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    relay = MediaRelay(ice_servers=[], max_calls=1000, passthrough=mode == "passthrough",
                       address_policy=AddressPolicy(allow_private=True))  # peers on this host

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        sdp = await relay.answer(body["call_id"], body["participant_id"], body["sdp"])
        return web.json_response({"sdp": sdp})

    async def cpu(request: web.Request) -> web.Response:
        return web.json_response(
            {"process_time": time.process_time(), "wall": time.perf_counter(), "calls": relay.active_calls}
        )

    app = web.Application()
    app.router.add_post("/offer", offer)
    app.router.add_get("/cpu", cpu)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await relay.close_all()
        await runner.cleanup()


@dataclass
class RelayProcess:
    process: asyncio.subprocess.Process
    url: str

    @classmethod
    async def start(cls, mode: str) -> RelayProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "relay", "--mode", mode, stdout=asyncio.subprocess.PIPE
        )
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()  # type: ignore[union-attr]
        if not line.startswith("READY "):
            raise RuntimeError(f"relay did not start: {line!r}")
        return cls(process, f"http://127.0.0.1:{int(line.split()[1])}")

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()


# --------------------------------------------------------------------------
# clients


@dataclass
class Peer:
    name: str
    video: LoopTrack
    audio: LoopTrack
    probe: bool
    pc: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    received: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    latencies: list[float] = field(default_factory=list)
    source: Peer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    measuring: bool = False

    def __post_init__(self) -> None:
        self.pc.addTrack(self.video)
        self.pc.addTrack(self.audio)
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            if kind == "video" and self.probe:
                continue  # decoded below, for latency
            tap_receiver(transceiver.receiver, kind, lambda codec, frame, kind=kind: self._count(kind))
        if self.probe:
            self.pc.on("track", self._on_track)

    def _count(self, kind: str) -> None:
        self.received[kind] += 1

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self.tasks.append(asyncio.ensure_future(self._decode(track)))

    async def _decode(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrived = time.perf_counter()
            self.received["video"] += 1
            if self.measuring and self.source is not None:
                sent = self.source.video.send_times.get(read_index(frame))
                if sent is not None and 0 <= arrived - sent < 2.0:
                    self.latencies.append(arrived - sent)

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def connect_via_relay(session: aiohttp.ClientSession, url: str, call_id: str, peer: Peer) -> None:
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    payload = {"call_id": call_id, "participant_id": peer.name, "sdp": peer.pc.localDescription.sdp}
    async with session.post(f"{url}/offer", json=payload) as response:
        response.raise_for_status()
        answer = (await response.json())["sdp"]
    await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


async def connect_directly(a: Peer, b: Peer) -> None:
    await a.pc.setLocalDescription(await a.pc.createOffer())
    await b.pc.setRemoteDescription(a.pc.localDescription)
    await b.pc.setLocalDescription(await b.pc.createAnswer())
    await a.pc.setRemoteDescription(b.pc.localDescription)


async def wait_for_media(peers: list[Peer]) -> None:
    deadline = time.perf_counter() + CONNECT_TIMEOUT_S
    while any(p.received["video"] < 5 or p.received["audio"] < 5 for p in peers):
        if time.perf_counter() > deadline:
            stuck = [p.name for p in peers if p.received["video"] < 5]
            raise RuntimeError(f"media did not flow to {stuck}")
        await asyncio.sleep(0.1)


@dataclass
class Result:
    mode: str
    size: str
    calls: int
    relay_cpu_pct: float | None
    relay_cpu_pct_per_call: float | None
    client_cpu_pct: float
    video_loss_pct: float
    audio_loss_pct: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    video_kbps_per_stream: float
    udp_rcvbuf_errors: int | None


async def run_case(mode: str, size: tuple[int, int], calls: int, duration: float, loops: dict) -> Result:
    video_payloads = loops[size]
    audio_payloads = loops["audio"]
    pairs: list[tuple[Peer, Peer]] = []
    for n in range(calls):
        a, b = (
            Peer(
                name,
                LoopTrack("video", video_payloads, FPS, 90000),
                LoopTrack("audio", audio_payloads, 1 / AUDIO_PTIME_S, 48000),
                probe=n == 0,
            )
            for name in ("a", "b")
        )
        a.source, b.source = b, a
        pairs.append((a, b))
    peers = [p for pair in pairs for p in pair]

    relay = await RelayProcess.start(mode) if mode != "direct" else None
    session = aiohttp.ClientSession()
    try:
        for n, (a, b) in enumerate(pairs):
            if relay is None:
                await connect_directly(a, b)
            else:
                await connect_via_relay(session, relay.url, f"call-{n}", a)
                await connect_via_relay(session, relay.url, f"call-{n}", b)
        await wait_for_media(peers)
        await asyncio.sleep(WARMUP_S)

        async def relay_cpu() -> tuple[float, float] | None:
            if relay is None:
                return None
            async with session.get(f"{relay.url}/cpu") as response:
                body = await response.json()
            return body["process_time"], body["wall"]

        def counters() -> list[tuple[int, int, int, int]]:
            return [(p.video.sent, p.audio.sent, p.received["video"], p.received["audio"]) for p in peers]

        for p in peers:
            p.measuring = True
        drops0 = udp_rcvbuf_errors()
        cpu0, client0, wall0, count0 = await relay_cpu(), time.process_time(), time.perf_counter(), counters()
        await asyncio.sleep(duration)
        cpu1, client1, wall1, count1 = await relay_cpu(), time.process_time(), time.perf_counter(), counters()
        drops1 = udp_rcvbuf_errors()
        for p in peers:
            p.measuring = False
    finally:
        await asyncio.gather(*(p.close() for p in peers))
        await session.close()
        if relay is not None:
            await relay.stop()

    elapsed = wall1 - wall0
    delta = [tuple(y - x for x, y in zip(c0, c1, strict=True)) for c0, c1 in zip(count0, count1, strict=True)]
    # peer i receives what its partner (i ^ 1) sent
    video_sent = sum(delta[i ^ 1][0] for i in range(len(peers)))
    video_received = sum(delta[i][2] for i in range(len(peers)))
    audio_sent = sum(delta[i ^ 1][1] for i in range(len(peers)))
    audio_received = sum(delta[i][3] for i in range(len(peers)))
    latencies = sorted(ms for p in pairs[0] for ms in p.latencies)
    relay_pct = None
    if cpu0 is not None and cpu1 is not None:
        relay_pct = 100 * (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1])
    mean_frame = sum(map(len, video_payloads)) / len(video_payloads)
    return Result(
        mode=mode,
        size=f"{size[0]}x{size[1]}",
        calls=calls,
        relay_cpu_pct=round(relay_pct, 1) if relay_pct is not None else None,
        relay_cpu_pct_per_call=round(relay_pct / calls, 2) if relay_pct is not None else None,
        client_cpu_pct=round(100 * (client1 - client0) / elapsed, 1),
        video_loss_pct=round(100 * max(0, video_sent - video_received) / max(1, video_sent), 2),
        audio_loss_pct=round(100 * max(0, audio_sent - audio_received) / max(1, audio_sent), 2),
        latency_p50_ms=round(1000 * statistics.median(latencies), 1) if latencies else None,
        latency_p95_ms=round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
        video_kbps_per_stream=round(mean_frame * 8 * FPS / 1000),
        udp_rcvbuf_errors=drops1 - drops0 if drops0 is not None and drops1 is not None else None,
    )


def udp_rcvbuf_errors() -> int | None:
    """Host-wide count of UDP datagrams the kernel dropped because a socket's
    receive buffer was full (Linux only)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return None


def markdown(results: list[Result]) -> str:
    head = (
        "| mode | size | calls | relay CPU (% of 1 core) | per call | client CPU | video loss | audio loss "
        "| latency p50 / p95 (ms) | video kbit/s | UDP rcvbuf drops |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r.mode} | {r.size} | {r.calls} | {r.relay_cpu_pct if r.relay_cpu_pct is not None else '-'} "
        f"| {r.relay_cpu_pct_per_call if r.relay_cpu_pct_per_call is not None else '-'} | {r.client_cpu_pct} "
        f"| {r.video_loss_pct}% | {r.audio_loss_pct}% | {r.latency_p50_ms} / {r.latency_p95_ms} "
        f"| {r.video_kbps_per_stream} | {r.udp_rcvbuf_errors} |"
        for r in results
    ]
    return "\n".join([head, *rows])


async def bench(args: argparse.Namespace) -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    loops: dict = {"audio": encode_audio_loop()}
    for size in sizes:
        loops[size] = encode_video_loop(*size)
    results: list[Result] = []
    for size in sizes:
        if args.baseline:
            results.append(await run_case("direct", size, 1, args.duration, loops))
            print(markdown(results[-1:]).splitlines()[-1], flush=True)
        for mode in args.modes.split(","):
            for calls in (int(c) for c in args.calls.split(",")):
                if mode == "reencode" and calls > args.max_reencode_calls:
                    continue
                results.append(await run_case(mode, size, calls, args.duration, loops))
                print(markdown(results[-1:]).splitlines()[-1], flush=True)
    print()
    print(f"host: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, duration {args.duration:g} s per case")
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "relay"])
    parser.add_argument("--mode", default="passthrough", help="relay role only: passthrough | reencode")
    parser.add_argument("--calls", default="1,2,4,8")
    parser.add_argument("--sizes", default="320x240,640x480")
    parser.add_argument("--modes", default="passthrough,reencode")
    parser.add_argument("--max-reencode-calls", type=int, default=4)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.role == "relay":
        asyncio.run(serve_relay(args.mode))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
