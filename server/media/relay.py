"""The media relay: a selective forwarding unit built on aiortc.

Each participant of a relayed call sends the relay an SDP offer
(``call:relay``) and gets an answer from a server-side ``RTCPeerConnection``
that belongs to this :class:`MediaRelay`. Media one participant sends is
forwarded to the other participant(s) of the same call.

How a peer that connects first gets media from a peer that connects later,
without renegotiation: before applying an offer the relay pre-declares one
``sendrecv`` transceiver per audio/video m-line of the offer, each sending a
:class:`~server.media.passthrough.ForwardingTrack`. That track outlives its
source; when another participant's matching track appears (or disappears,
or is replaced by a re-offer), the relay re-points the forwarding track at
it. This is ``RTCRtpSender.replaceTrack`` done one level down: aiortc's RTP
loop stops for good when its track ends, so the sender keeps one track and
the track switches sources.

Routing: for every subscriber and kind, the other participants' published
tracks (in join order, then m-line order) fill the subscriber's send slots of
that kind. In a 1:1 call that is simply "A's video to B, B's video to A"; a
client that wants to see N peers offers N video m-lines.

Forwarding is pass-through by default: encoded VP8/Opus frames are
re-packetized, never decoded or re-encoded (see
:mod:`server.media.passthrough`). For that every leg must use the same codec,
so the relay accepts only VP8 video and Opus audio (every WebRTC browser
supports both). ``passthrough=False`` (or an aiortc whose internals the tap
does not recognise) falls back to decoding each published track once and
encoding it once per subscriber, as aiortc's ``MediaRelay`` does.

Whom it contacts: the relay's ICE agents probe only addresses its
:class:`~server.media.candidates.AddressPolicy` allows. Refused candidates
are removed from each offer before aiortc sees it, and the agents
themselves ignore refused peer-reflexive sources and resolved names
(:mod:`server.media.ice_guard`); every refusal is counted.

Lifecycle: a participant's peer connection, tracks and tasks are closed when
it leaves (:meth:`MediaRelay.close_participant`), re-offers (the new peer
connection replaces the old one), its connection goes ``failed``/``closed``
(reported through ``on_connection_lost``), its call ends
(:meth:`MediaRelay.close_call`) or the relay shuts down
(:meth:`MediaRelay.close_all`). A call without participants is forgotten.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiortc import (
    RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from loguru import logger

from server.errors import BadRequest, Conflict, Unavailable
from server.media.candidates import AddressPolicy, FilteredSdp, advertisable_candidates, filter_sdp_candidates
from server.media.ice_guard import guard_peer_connection
from server.media.metrics import RelayMetrics
from server.media.passthrough import ForwardingTrack, PublishedTrack, forward_keyframe_requests

ANY_PUBLIC_ADDRESS = AddressPolicy()
"""The default: public addresses only (private ranges when the settings allow)."""

RELAYED_CODECS = {"audio": "audio/opus", "video": "video/VP8"}
"""The one codec per kind every leg of a relayed call uses (pass-through
cannot translate between codecs)."""

MAX_MEDIA_SECTIONS = 8
"""Audio/video m-lines accepted in one offer."""

NO_REACHABLE_CANDIDATE = (
    "the SDP offer has no ICE candidate the relay may contact: it contacts public addresses "
    "only (no loopback, link-local or .local names; private ranges only when the server "
    "allows them), so gather with a STUN or TURN server and offer those candidates"
)

DEFAULT_MAX_CALLS = 50
DEFAULT_MAX_PARTICIPANTS = 2

_SENDS = ("sendrecv", "sendonly")
_RECEIVES = ("sendrecv", "recvonly")

ConnectionLostCallback = Callable[[str, str, str], Awaitable[None] | None]


@dataclass(eq=False)
class _Participant:
    participant_id: str
    pc: RTCPeerConnection
    joined: int
    published: list[PublishedTrack] = field(default_factory=list)
    outgoing: list[ForwardingTrack] = field(default_factory=list)


@dataclass(eq=False)
class _Call:
    call_id: str
    participants: dict[str, _Participant] = field(default_factory=dict)
    pending_offers: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MediaRelay:
    """Owns every server-side ``RTCPeerConnection`` of this node.

    :param ice_servers: STUN/TURN servers for the relay's own ICE agents
        (``[]`` on a host with a public address, and in tests).
    :param max_calls: calls relayed at once; an offer for a new call past it
        raises :class:`~server.errors.Unavailable`.
    :param max_participants: peers per call (2 for 1:1 calls).
    :param passthrough: forward encoded frames (default) instead of
        decoding and re-encoding them.
    :param on_connection_lost: ``(call_id, participant_id, state)`` called
        after a participant's peer connection went ``failed``/``closed`` by
        itself and the relay cleaned it up, so signalling can react.
    :param metrics: optional :class:`RelayMetrics`.
    :param address_policy: which remote addresses the ICE agents may
        contact (default: public addresses only).
    """

    def __init__(
        self,
        *,
        ice_servers: Sequence[RTCIceServer] = (),
        max_calls: int = DEFAULT_MAX_CALLS,
        max_participants: int = DEFAULT_MAX_PARTICIPANTS,
        passthrough: bool = True,
        on_connection_lost: ConnectionLostCallback | None = None,
        metrics: RelayMetrics | None = None,
        address_policy: AddressPolicy = ANY_PUBLIC_ADDRESS,
    ) -> None:
        if max_calls < 1 or max_participants < 2:
            raise ValueError("max_calls must be >= 1 and max_participants >= 2")
        self._ice_servers = list(ice_servers)
        self._max_calls = max_calls
        self._max_participants = max_participants
        self._passthrough = passthrough
        self._on_connection_lost = on_connection_lost
        self._metrics = metrics
        self._address_policy = address_policy
        self._calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._join_order = itertools.count()
        self._closing = False
        self._warned_fallback = False

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def peer_connection_count(self) -> int:
        return sum(len(call.participants) for call in self._calls.values())

    def call_ids(self) -> list[str]:
        """The calls this relay carries now."""
        return list(self._calls)

    def participants(self, call_id: str) -> list[str]:
        call = self._calls.get(call_id)
        return list(call.participants) if call else []

    def peer_connection(self, call_id: str, participant_id: str) -> RTCPeerConnection | None:
        """The participant's current server-side peer connection (for stats)."""
        call = self._calls.get(call_id)
        participant = call.participants.get(participant_id) if call else None
        return participant.pc if participant else None

    async def answer(self, call_id: str, participant_id: str, offer_sdp: str) -> str:
        """Answer ``participant_id``'s offer in ``call_id`` and return the SDP
        answer (with all ICE candidates). A second offer from the same
        participant replaces its previous peer connection."""
        if self._closing:
            raise Unavailable("media relay is shutting down")
        try:
            if not isinstance(offer_sdp, str):
                raise BadRequest("the SDP offer is not text")
            filtered = filter_sdp_candidates(offer_sdp, self._address_policy)
            offer = _parse_offer(filtered.sdp)
        except BadRequest:
            self._count_offer("invalid")
            raise
        self._count_filtered(call_id, participant_id, filtered)
        if not filtered.kept:
            # aioice would wait for candidates forever: say why instead
            self._count_offer("unreachable")
            raise BadRequest(NO_REACHABLE_CANDIDATE)
        offer_sdp = filtered.sdp
        call = self._calls.get(call_id)
        if call is None:
            if len(self._calls) >= self._max_calls:
                self._count_offer("capacity")
                raise Unavailable("media relay is at capacity")
            call = self._calls[call_id] = _Call(call_id)
            self._update_gauges()
        call.pending_offers += 1
        try:
            async with call.lock:
                if call.participants.get(participant_id) is None and len(call.participants) >= self._max_participants:
                    self._count_offer("full")
                    raise Conflict(f"the call already has {self._max_participants} participants")
                participant, answer_sdp = await self._negotiate(call_id, participant_id, offer_sdp, offer)
                if self._calls.get(call_id) is not call:  # the call ended meanwhile
                    await self._close_participant_resources(participant)
                    raise Conflict("the call has ended")
                previous = call.participants.pop(participant_id, None)
                call.participants[participant_id] = participant
                _rewire(call)
                self._update_gauges()
                self._count_offer("answered")
                logger.info(
                    "relay: {} {} in call {} ({} participants)",
                    "renegotiated" if previous else "joined",
                    participant_id,
                    call_id,
                    len(call.participants),
                )
            if previous is not None:
                await self._close_participant_resources(previous)
            return answer_sdp
        finally:
            call.pending_offers -= 1
            if not call.participants and not call.pending_offers and self._calls.get(call_id) is call:
                del self._calls[call_id]
                self._update_gauges()

    async def close_participant(self, call_id: str, participant_id: str) -> None:
        """Close one participant's peer connection; the others stay and stop
        receiving its media. Idempotent."""
        await self._remove_participant(call_id, participant_id)

    async def close_call(self, call_id: str) -> None:
        """Close every peer connection of the call. Idempotent."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        async with call.lock:
            participants = list(call.participants.values())
            call.participants.clear()
        self._update_gauges()
        await asyncio.gather(*(self._close_participant_resources(p) for p in participants))
        logger.info("relay: closed call {} ({} peer connections)", call_id, len(participants))

    async def close_all(self) -> None:
        """Close every call and wait for the relay's background work; for
        application shutdown. New offers are refused from here on."""
        self._closing = True
        await asyncio.gather(*(self.close_call(call_id) for call_id in list(self._calls)))
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _negotiate(
        self, call_id: str, participant_id: str, offer_sdp: str, offer: aiortc_sdp.SessionDescription
    ) -> tuple[_Participant, str]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        participant = _Participant(participant_id, pc, next(self._join_order))
        slots: list[tuple[RTCRtpTransceiver, ForwardingTrack, PublishedTrack, int | None]] = []
        try:
            for media in offer.media:
                if media.kind not in RELAYED_CODECS:
                    continue
                track = ForwardingTrack(media.kind)
                transceiver = pc.addTransceiver(track, direction="sendrecv")
                transceiver.setCodecPreferences(_codec_preferences(media.kind))
                published = PublishedTrack(
                    media.kind,
                    transceiver.receiver,
                    passthrough=self._passthrough,
                    on_unit=self._metrics.frame_received if self._metrics else None,
                )
                if published.passthrough:
                    forward_keyframe_requests(transceiver.sender, track)
                elif self._passthrough and not self._warned_fallback:
                    self._warned_fallback = True
                    logger.warning("relay: aiortc internals not recognised, re-encoding instead of forwarding")
                slots.append((transceiver, track, published, _primary_ssrc(media)))

            guard_peer_connection(pc, self._address_policy, self._count_refused_address)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            guard_peer_connection(pc, self._address_policy, self._count_refused_address)
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, OperationError, InvalidAccessError, InvalidStateError) as exc:
            self._count_offer("invalid")
            await _close_quietly(pc, slots)
            raise BadRequest(
                f"the relay cannot accept this offer (it needs VP8 video and Opus audio): {exc}"
            ) from exc
        except BaseException:
            await _close_quietly(pc, slots)
            raise

        for transceiver, track, published, ssrc in slots:
            direction = transceiver.currentDirection
            if direction in _SENDS:
                participant.outgoing.append(track)
            else:
                track.stop()
            if direction in _RECEIVES:
                published.media_ssrc = ssrc
                published.start()
                participant.published.append(published)
            else:
                await published.close()

        @pc.on("connectionstatechange")
        def _on_connection_state() -> None:
            if pc.connectionState in ("failed", "closed") and self._is_current(call_id, participant_id, pc):
                self._spawn(self._connection_lost(call_id, participant_id, pc.connectionState))

        answer = advertisable_candidates(pc.localDescription.sdp)
        if answer.refused:  # aioice gathers none of these today; keep it so
            logger.warning("relay: left {} of its own candidates out of an answer ({})",
                           answer.refused.total(), ", ".join(sorted(answer.refused)))
        return participant, answer.sdp

    async def _connection_lost(self, call_id: str, participant_id: str, state: str) -> None:
        level = "WARNING" if state == "failed" else "INFO"
        logger.log(level, "relay: peer connection of {} in call {} is {}", participant_id, call_id, state)
        if self._metrics:
            self._metrics.connection_losses.inc()
        await self._remove_participant(call_id, participant_id)
        if self._on_connection_lost is not None:
            result = self._on_connection_lost(call_id, participant_id, state)
            if asyncio.iscoroutine(result):
                await result

    async def _remove_participant(self, call_id: str, participant_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        async with call.lock:
            participant = call.participants.pop(participant_id, None)
            if participant is not None:
                _rewire(call)
            if not call.participants and not call.pending_offers and self._calls.get(call_id) is call:
                del self._calls[call_id]
        self._update_gauges()
        if participant is not None:
            await self._close_participant_resources(participant)
            logger.info("relay: {} left call {}", participant_id, call_id)

    async def _close_participant_resources(self, participant: _Participant) -> None:
        """Detach from every subscriber, then close the peer connection (which
        stops its senders, receivers and transports)."""
        for published in participant.published:
            await published.close()
        for track in participant.outgoing:
            track.stop()
        participant.published.clear()
        participant.outgoing.clear()
        await participant.pc.close()

    def _is_current(self, call_id: str, participant_id: str, pc: RTCPeerConnection) -> bool:
        call = self._calls.get(call_id)
        participant = call.participants.get(participant_id) if call else None
        return participant is not None and participant.pc is pc

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).error("relay: background task failed")

    def _count_filtered(self, call_id: str, participant_id: str, filtered: FilteredSdp) -> None:
        if filtered.refused:
            for reason, count in filtered.refused.items():
                self._count_refused(reason, count)
            logger.info("relay: ignored {} of {} candidates offered by {} in call {} ({})",
                        filtered.refused.total(), filtered.refused.total() + filtered.kept,
                        participant_id, call_id, ", ".join(sorted(filtered.refused)))

    def _count_refused_address(self, reason: str, address: str) -> None:
        logger.debug("relay: ignored ICE traffic with {} address {}", reason, address)
        self._count_refused(reason)

    def _count_refused(self, reason: str, count: int = 1) -> None:
        if self._metrics:
            self._metrics.candidates_filtered.labels(reason).inc(count)

    def _count_offer(self, outcome: str) -> None:
        if self._metrics:
            self._metrics.offers.labels(outcome).inc()

    def _update_gauges(self) -> None:
        if self._metrics:
            self._metrics.active_calls.set(self.active_calls)
            self._metrics.peer_connections.set(self.peer_connection_count)


def _rewire(call: _Call) -> None:
    """Point every subscriber slot at the published track it should carry."""
    participants = sorted(call.participants.values(), key=lambda p: p.joined)
    for subscriber in participants:
        for kind in RELAYED_CODECS:
            sources = [
                published
                for publisher in participants
                if publisher is not subscriber
                for published in publisher.published
                if published.kind == kind
            ]
            slots = [track for track in subscriber.outgoing if track.kind == kind]
            for index, slot in enumerate(slots):
                slot.attach(sources[index] if index < len(sources) else None)


def _parse_offer(offer_sdp: str) -> aiortc_sdp.SessionDescription:
    if not isinstance(offer_sdp, str) or not offer_sdp.strip():
        raise BadRequest("the SDP offer is empty")
    try:
        offer = aiortc_sdp.SessionDescription.parse(offer_sdp)
    except (ValueError, IndexError, KeyError, AssertionError) as exc:  # aiortc asserts on some lines
        raise BadRequest(f"the SDP offer cannot be parsed: {exc or 'a malformed line'}") from exc
    media = [m for m in offer.media if m.kind in RELAYED_CODECS]
    if not media:
        raise BadRequest("the SDP offer has no audio or video")
    if len(media) > MAX_MEDIA_SECTIONS:
        raise BadRequest(f"the SDP offer has more than {MAX_MEDIA_SECTIONS} audio/video sections")
    return offer


def _codec_preferences(kind: str) -> list:
    wanted = RELAYED_CODECS[kind].lower()
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    primary = [c for c in codecs if c.mimeType.lower() == wanted]
    rtx = [c for c in codecs if c.mimeType.lower() == f"{kind}/rtx"]
    return primary + rtx


def _primary_ssrc(media: aiortc_sdp.MediaDescription) -> int | None:
    """The SSRC the publisher sends media on (the first of an FID group, so
    not its retransmission SSRC); PLIs must name it."""
    for group in media.ssrc_group:
        if group.semantic == "FID" and group.items:
            return int(group.items[0])
    return media.ssrc[0].ssrc if media.ssrc else None


async def _close_quietly(pc: RTCPeerConnection, slots: list[tuple[RTCRtpTransceiver, ForwardingTrack, PublishedTrack, int | None]]) -> None:
    for _, track, published, _ in slots:
        await published.close()
        track.stop()
    await pc.close()
