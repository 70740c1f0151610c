"""One-to-one calls: the state machine behind the ``call:*`` events.

    ringing --accept--> active --end / participant gone--> ended
    ringing --reject--> rejected
    ringing --ring timeout--> missed
    ringing --end (caller cancels) / participant gone--> ended

A user has at most one ringing or active call; inviting someone who has one
is refused with ``busy`` (and with ``conflict`` when it is the caller who is
already in a call). A call ends (reason ``disconnected``) when one of its
participants has no socket left on any node: presence reports them offline,
on a clean disconnect at once, for a killed node when its heartbeat expires
and a sweeper takes its users offline.

State lives in a call store (Redis when configured), and every transition
is atomic there, so exactly one node wins a race (two hang-ups, an accept
against the ring timeout) and only the winner notifies. Events reach every
socket of both participants on every node through the notifier.

Reconnect grace: a participant of an *active* call whose last socket goes
away is "away" for ``reconnect_grace`` seconds (the other side gets
``call:peer_reconnecting``); when they come back (presence online, or
``call:resume``) the call goes on (``call:peer_reconnected``), otherwise it
ends ``disconnected`` when the grace runs out (any node's sweep)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from ..clock import Clock
from ..errors import (
    ApiError,
    Busy,
    Conflict,
    Forbidden,
    NotFound,
    Offline,
    Unavailable,
    ValidationFailed,
)
from ..realtime.notifier import Notifier
from ..storage.calls import (
    ACTIVE,
    SETUP_OK,
    CALLEE_BUSY,
    CALLER_BUSY,
    ENDED,
    LIVE_STATES,
    MISSED,
    REJECTED,
    RINGING,
    CallRecord,
    CallStore,
)
from ..storage.presence import OFFLINE
from ..tasks import cancel_and_wait
from .outcomes import SETUP_TARGET_MS, call_outcome
from .metrics import RELAY_NOT_ACTIVE, RELAY_NOT_FOUND, RELAY_NOT_PARTICIPANT, CallMetrics
from .signals import check_sdp, check_signal

if TYPE_CHECKING:
    from ..ratelimit import RateLimiter
    from ..realtime.presence import PresenceService
    from ..storage.users import UserStore
    from .relay_link import RelayLink

IceServers = Callable[[str], dict[str, Any]]  # user id -> {"ice_servers": [...], "ttl": s}
MissedListener = Callable[[str, str], Awaitable[None]]  # (callee id, caller id)

RING_MARGIN_S = 60.0
FINAL_GRACE_S = 60.0  # an ended call is remembered this long (late events get "ended")
MAX_RING_POLL_S = 0.5

REASON_HANGUP = "hangup"
REASON_CANCELLED = "cancelled"
REASON_DECLINED = "declined"
REASON_MISSED = "missed"
REASON_DISCONNECTED = "disconnected"
REASON_NODE_DRAINING = "node_draining"  # the node relaying its media shut down
METRIC_REASONS = frozenset({
    REASON_HANGUP, REASON_CANCELLED, REASON_DECLINED, REASON_MISSED, REASON_DISCONNECTED,
    REASON_NODE_DRAINING,
    "rejected", "connection_failed", "busy", "turn_failed",
})


@dataclass(frozen=True, slots=True)
class Invitation:
    """A call that now rings, and what the caller needs to set it up."""

    call: CallRecord
    ice: dict[str, Any]  # {ice_servers, ttl} for the caller
    ring_timeout: float


class CallConsent(Protocol):
    """What calls need of the consent area (server/consent)."""

    async def ensure_not_blocked(self, user_id: str, other_id: str) -> None: ...
    async def presence_visible(self, viewer_id: str, person_ids: Iterable[str]) -> set[str]: ...


class CallService:
    def __init__(
        self, *, store: CallStore, users: UserStore,
        presence: PresenceService, notifier: Notifier, relay: RelayLink | None,
        ice_servers: IceServers, metrics: CallMetrics, clock: Clock,
        ring_timeout: float, max_duration: float, limiter: RateLimiter | None = None,
        invite_limit: str = "30/minute", consent: CallConsent | None = None,
        reconnect_grace: float = 0.0, stats_limit: str | None = None,
    ) -> None:
        self.reconnect_grace = reconnect_grace
        self._stats_limit = stats_limit
        self._consent = consent
        self._store = store
        self._users = users
        self._presence = presence
        self._notifier = notifier
        self._relay = relay
        self._ice_servers = ice_servers
        self._metrics = metrics
        self._clock = clock
        self.ring_timeout = ring_timeout
        self._max_duration = max_duration
        self._limiter = limiter
        self._invite_limit = invite_limit
        self._task: asyncio.Task[None] | None = None
        self._missed_listeners: list[MissedListener] = []

    def add_missed_listener(self, listener: MissedListener) -> None:
        """``await listener(callee_id, caller_id)`` when a call rang unanswered
        (or its callee was offline): used by the email digest."""
        self._missed_listeners.append(listener)

    async def _missed(self, callee_id: str, caller_id: str) -> None:
        for listener in self._missed_listeners:
            await listener(callee_id, caller_id)

    # --- events ----------------------------------------------------------

    async def invite(self, caller_id: str, callee_id: str, *, audio: bool, video: bool
                     ) -> Invitation:
        if callee_id == caller_id:
            raise ValidationFailed.field("user_id", "You cannot call yourself.")
        if self._limiter is not None:
            await self._limiter.hit("call:invite", self._invite_limit, caller_id)
        caller = await self._users.get_active(caller_id)
        callee = await self._users.get_active(callee_id)
        if caller is None:
            raise Forbidden("Your account cannot place calls.")
        if callee is None:
            raise NotFound("No such user.")
        if self._consent is not None:
            await self._consent.ensure_not_blocked(caller_id, callee_id)
        presence = await self._presence.snapshot([callee_id])
        seen = presence.get(callee_id)
        if (seen is None or seen.status == OFFLINE) and (
            self._consent is None
            or callee_id in await self._consent.presence_visible(caller_id, [callee_id])
        ):
            # Someone who may not see the callee's presence is not told
            # either: the call rings until it is missed.
            await self._missed(callee_id, caller_id)
            raise Offline()
        now = self._clock.time()
        call = CallRecord(id=uuid.uuid4().hex, caller=caller_id, callee=callee_id, state=RINGING,
                          audio=audio, video=video, created_at=now)
        refused = await self._store.create(call, ring_deadline=now + self.ring_timeout,
                                           ttl=self.ring_timeout + RING_MARGIN_S)
        if refused == CALLER_BUSY:
            raise Conflict("You are already in a call; end it first.")
        if refused == CALLEE_BUSY:
            raise Busy()
        self._metrics.started.inc()
        logger.info("call {}: {} invites {}", call.id, caller_id, callee_id)
        callee_ice = self._ice_servers(callee_id)
        await self._notifier.notify_users([callee_id], "call:incoming", {
            "call_id": call.id, "from": caller_id, "from_name": caller.get("display_name"),
            "media": {"audio": audio, "video": video}, "ring_timeout": self.ring_timeout,
            "ice_servers": callee_ice["ice_servers"],
        })
        return Invitation(call=call, ice=self._ice_servers(caller_id),
                          ring_timeout=self.ring_timeout)

    async def accept(self, user_id: str, call_id: str) -> dict[str, Any]:
        """The callee's ICE servers (``{ice_servers, ttl}``) once accepted."""
        call = await self._participant_call(user_id, call_id)
        if user_id != call.callee:
            raise Forbidden("Only the callee can accept a call.")
        changed, accepted = await self._store.transition(
            call_id, expect=(RINGING,), to=ACTIVE, ttl=self._max_duration,
            accepted_at=self._clock.time())
        if not changed or accepted is None:  # a change always returns the record
            raise Conflict(
                f"The call is no longer ringing ({accepted.state if accepted else 'gone'}).")
        self._metrics.accepted.inc()
        logger.info("call {}: accepted by {}", call_id, user_id)
        await self._notifier.notify_users([accepted.caller, accepted.callee], "call:accepted",
                                          {"call_id": call_id, "by": user_id})
        return self._ice_servers(user_id)

    async def reject(self, user_id: str, call_id: str, reason: str | None) -> None:
        call = await self._participant_call(user_id, call_id)
        if user_id != call.callee:
            raise Forbidden("Only the callee can reject a call; the caller ends it with call:end.")
        if not await self._finish(call_id, expect=(RINGING,), to=REJECTED,
                                  reason=reason or REASON_DECLINED, by=user_id):
            raise Conflict("The call is no longer ringing.")

    async def end(self, user_id: str, call_id: str, reason: str | None) -> bool:
        """Hang up an active call, or cancel (caller) / decline (callee) a
        ringing one. Ending a call that already ended is not an error
        (returns False)."""
        call = await self._participant_call(user_id, call_id)
        if call.state == RINGING:
            default = REASON_CANCELLED if user_id == call.caller else REASON_DECLINED
        else:
            default = REASON_HANGUP
        return await self._finish(call_id, expect=LIVE_STATES, to=ENDED,
                                  reason=reason or default, by=user_id)

    async def signal(self, user_id: str, call_id: str, to: str, data: Any) -> None:
        clean = check_signal(data)
        call = await self._participant_call(user_id, call_id)
        if to != call.other(user_id):
            raise Forbidden("Signals go to the other participant of the call only.")
        if call.state != ACTIVE:
            raise Conflict(f"Signals are relayed only in an active call (this one is {call.state}).")
        logger.debug("call {}: {} from {}", call_id, clean["type"], user_id)
        await self._notifier.notify_users([to], "call:signal",
                                          {"call_id": call_id, "from": user_id, "data": clean})

    async def relay_offer(self, user_id: str, call_id: str, sdp: str) -> str:
        check_sdp(sdp)
        if self._relay is None:
            raise Unavailable("The media relay is disabled on this node.")
        before = await self._require_relay_access(user_id, call_id)
        me = self._relay.node_id
        owner = await self._store.claim_relay(call_id, me)
        if owner is None:
            raise NotFound("No such call.")
        if before.relay_node is not None and owner != before.relay_node:
            self._metrics.relay_moves.inc()
            logger.info("call {}: relay node {} is gone; the relay moves to {}", call_id,
                        before.relay_node, owner)
        try:
            answer = await self._relay.answer(owner=owner, call_id=call_id, participant_id=user_id, sdp=sdp)
        except ApiError:
            if owner == me and not self._relay.relay.participants(call_id):
                await self._store.release_relay(call_id, me)  # let another node try
            raise
        current = await self._store.get(call_id)
        if current is None or current.state != ACTIVE:  # ended while we negotiated
            await self._relay.call_ended(call_id)
            raise Conflict("The call has ended.")
        return answer

    async def stats(self, user_id: str, call_id: str, *, path: str, connected: bool,
                    setup_ms: int | None, kind: str = "setup", recovery_ms: int | None = None,
                    rtt_ms: int | None = None) -> bool:
        """Count a ``call:stats`` report. The set-up report counts once per
        participant and call (False for repeats); the others (periodic,
        recovered, lost) count each time, within the per-user rate limit."""
        if self._limiter is not None and self._stats_limit:
            await self._limiter.hit("call:stats", self._stats_limit, user_id)
        await self._participant_call(user_id, call_id)
        if kind == "interval":
            self._metrics.media_reports.labels(path, "true" if connected else "false").inc()
            if rtt_ms is not None:
                self._metrics.rtt.observe(rtt_ms / 1000)
            return True
        if kind in ("recovered", "lost"):
            self._metrics.reconnects.labels("media", kind).inc()
            if recovery_ms is not None and kind == "recovered":
                self._metrics.recovery.observe(recovery_ms / 1000)
            return True
        in_time = connected and (setup_ms is None or setup_ms <= SETUP_TARGET_MS)
        result = SETUP_OK if in_time else "slow" if connected else "failed"
        if not await self._store.mark_stats(call_id, user_id, result):
            return False
        self._metrics.setups.labels(result).inc()
        if connected:
            self._metrics.connected.labels(path).inc()
            if setup_ms is not None:
                self._metrics.setup.labels(path).observe(setup_ms / 1000)
        else:
            self._metrics.failed.labels(path).inc()
        return True

    async def resume(self, user_id: str, call_id: str) -> CallRecord:
        """A participant back after losing their socket asks about their call
        (as it was when asked); an active call's grace period ends here."""
        call = await self._participant_call(user_id, call_id)
        if call.state == ACTIVE:
            await self._back(call_id, user_id, call.participants)
        return call

    # --- participants going away ------------------------------------------

    async def user_offline(self, user_id: str) -> None:
        """Presence says ``user_id`` has no socket on any node: an active call
        waits ``reconnect_grace`` for them; a ringing one (or any, without a
        grace) ends at once."""
        call_id = await self._store.current(user_id)
        if call_id is None:
            return
        if self.reconnect_grace > 0:
            deadline = self._clock.time() + self.reconnect_grace
            if await self._store.mark_away(call_id, user_id, deadline=deadline):
                call = await self._store.get(call_id)
                self._metrics.reconnects.labels("socket", "away").inc()
                logger.info("call {}: {} lost their connection; waiting {}s", call_id, user_id,
                            self.reconnect_grace)
                if call is not None:
                    await self._notifier.notify_users([call.other(user_id)], "call:peer_reconnecting", {
                        "call_id": call_id, "user_id": user_id, "grace": self.reconnect_grace})
                return
        await self._finish(call_id, expect=LIVE_STATES, to=ENDED,
                           reason=REASON_DISCONNECTED, by=user_id)

    async def user_online(self, user_id: str) -> None:
        """Presence says ``user_id`` is back: their grace period (if any) ends."""
        call_id = await self._store.current(user_id)
        if call_id is None:
            return
        call = await self._store.get(call_id)
        if call is not None and user_id in call.away:
            await self._back(call_id, user_id, call.participants)

    async def _back(self, call_id: str, user_id: str, participants: tuple[str, str]) -> None:
        if await self._store.clear_away(call_id, user_id):
            self._metrics.reconnects.labels("socket", "resumed").inc()
            logger.info("call {}: {} is back", call_id, user_id)
            await self._notifier.notify_users(list(participants), "call:peer_reconnected",
                                              {"call_id": call_id, "user_id": user_id})

    async def end_relayed(self) -> int:
        """This node is shutting down: end the calls whose media it relays
        (reason ``node_draining``; peer-to-peer calls go on). How many."""
        if self._relay is None:
            return 0
        ended = 0
        for call_id in self._relay.relay.call_ids():
            if await self._finish(call_id, expect=LIVE_STATES, to=ENDED,
                                  reason=REASON_NODE_DRAINING, by=None):
                ended += 1
            else:
                await self._relay.call_ended(call_id)
        return ended

    async def on_presence(self, user_id: str, status: str) -> None:
        try:
            if status == "offline":
                await self.user_offline(user_id)
            else:
                await self.user_online(user_id)
        except Exception:
            logger.exception("calls: could not update the call of {} (now {})", user_id, status)

    async def expire_away(self) -> int:
        """End the calls of participants whose grace period ran out."""
        ended = 0
        for call_id, user_id in await self._store.due_away(self._clock.time()):
            if not await self._store.clear_away(call_id, user_id):
                continue  # came back meanwhile, or another node took it
            self._metrics.reconnects.labels("socket", "expired").inc()
            if await self._finish(call_id, expect=LIVE_STATES, to=ENDED,
                                  reason=REASON_DISCONNECTED, by=user_id):
                ended += 1
        return ended

    async def expire_ringing(self) -> int:
        """Turn calls that rang past the timeout into ``missed``."""
        missed = 0
        for call_id in await self._store.due_ringing(self._clock.time()):
            if await self._finish(call_id, expect=(RINGING,), to=MISSED, reason=REASON_MISSED, by=None):
                missed += 1
        return missed

    # --- internals -------------------------------------------------------

    async def _participant_call(self, user_id: str, call_id: str) -> CallRecord:
        call = await self._store.get(call_id)
        if call is None:
            raise NotFound("No such call.")
        if user_id not in call.participants:
            raise Forbidden("You are not a participant of this call.")
        return call

    async def _require_relay_access(self, user_id: str, call_id: str) -> CallRecord:
        """Refuse unless ``user_id`` may use the media relay for the call now: only
        its participants, only once it is accepted and until it ends (a
        ringing call has not been agreed to by the callee)."""
        try:
            call = await self._participant_call(user_id, call_id)
        except NotFound:
            self._metrics.relay_refused.labels(RELAY_NOT_FOUND).inc()
            raise
        except Forbidden:
            self._metrics.relay_refused.labels(RELAY_NOT_PARTICIPANT).inc()
            raise
        if call.state != ACTIVE:
            self._metrics.relay_refused.labels(RELAY_NOT_ACTIVE).inc()
            logger.debug("call {}: relay refused for {} ({})", call_id, user_id, call.state)
            raise Conflict(f"The media relay carries only accepted calls (this one is {call.state}).")
        return call

    async def _finish(self, call_id: str, *, expect: tuple[str, ...], to: str, reason: str,
                      by: str | None) -> bool:
        changed, call = await self._store.transition(
            call_id, expect=expect, to=to, ttl=FINAL_GRACE_S, ended_at=self._clock.time(),
            reason=reason, ended_by=by)
        if not changed or call is None:
            return False
        label = "rejected" if to == REJECTED else reason if reason in METRIC_REASONS else "other"
        self._metrics.ended.labels(label).inc()
        if call.accepted_at is not None:
            self._metrics.outcomes.labels(call_outcome(call, reason)).inc()
        logger.info("call {}: {} ({}, by {})", call_id, to, reason, by)
        if to == MISSED:
            await self._missed(call.callee, call.caller)
        event = "call:rejected" if to == REJECTED else "call:ended"
        await self._notifier.notify_users(call.participants, event,
                                          {"call_id": call_id, "by": by, "reason": reason})
        if self._relay is not None:
            await self._relay.call_ended(call_id)
        return True

    async def _ring_loop(self) -> None:
        interval = min(MAX_RING_POLL_S, self.ring_timeout / 4)
        failing = False
        while True:
            try:
                await self.expire_ringing()
                await self.expire_away()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # once per outage, not every interval
                    logger.warning("calls: ring timeout sweep failed ({!r}); retrying", exc)
                failing = True
            await asyncio.sleep(interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._ring_loop(), name="call-ring-timeouts")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

