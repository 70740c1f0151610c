"""Calls: ``GET /api/v1/calls/ice-servers`` and the ``call:*`` Socket.IO
events (state machine in :mod:`server.calls.service`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..http.auth import authenticate
from ..http.responses import json_response
from ..http.routes import Routes
from ..keys import CALLS, ICE_SERVERS
from ..sockets.events import SocketContext, SocketEvents
from ..schemas.calls import CallInvite, CallRef, CallRelay, CallSignal, CallStats, IceServers
from ..views.calls import acceptance_view, invitation_view, resumed_call_view

routes = Routes()
events = SocketEvents()
TAGS = ["calls"]


@routes.get("/api/v1/calls/ice-servers", summary="ICE servers for a call", tags=TAGS,
            response=IceServers, errors=[401])
async def ice_servers(request: web.Request) -> web.Response:
    """STUN servers, and TURN servers with coturn ``use-auth-secret``
    credentials: username ``<expiry>:<user id>``, credential
    base64(HMAC-SHA1(secret, username)), valid for ``ttl`` seconds. TURN is
    listed only when both ``SKILLSHARE_TURN_URLS`` and
    ``SKILLSHARE_TURN_SECRET`` are set."""
    claims = await authenticate(request)
    return json_response(request.app[ICE_SERVERS](claims.user_id))


@events.on("call:invite", CallInvite)
async def invite(ctx: SocketContext, p: CallInvite) -> dict[str, Any]:
    """Ring ``user_id`` (``call:incoming`` to all their sockets). Refused:
    yourself (validation_error), unknown/deleted/banned users (not_found),
    offline users (``offline``), a callee in a call (``busy``), a caller
    already in a call (``conflict``)."""
    await ctx.require_verified_email("call.invite")
    return invitation_view(await ctx.app[CALLS].invite(
        ctx.user_id, p.user_id, audio=p.media.audio, video=p.media.video))


@events.on("call:accept", CallRef)
async def accept(ctx: SocketContext, p: CallRef) -> dict[str, Any]:
    """Callee only, while ringing; ``call:accepted`` goes to both users."""
    return acceptance_view(await ctx.app[CALLS].accept(ctx.user_id, p.call_id))


@events.on("call:reject", CallRef)
async def reject(ctx: SocketContext, p: CallRef) -> dict[str, Any]:
    """Callee only, while ringing; ``call:rejected`` goes to both users."""
    await ctx.app[CALLS].reject(ctx.user_id, p.call_id, p.reason)
    return {}


@events.on("call:end", CallRef)
async def end(ctx: SocketContext, p: CallRef) -> dict[str, Any]:
    """Hang up (or cancel while ringing); ``call:ended`` goes to both users.
    Ending an ended call is acknowledged with ``ended: false``."""
    return {"ended": await ctx.app[CALLS].end(ctx.user_id, p.call_id, p.reason)}


@events.on("call:signal", CallSignal)
async def signal(ctx: SocketContext, p: CallSignal) -> dict[str, Any]:
    """Offer/answer/candidate to the other participant of an active call."""
    await ctx.app[CALLS].signal(ctx.user_id, p.call_id, p.to, p.data)
    return {}


@events.on("call:relay", CallRelay)
async def relay(ctx: SocketContext, p: CallRelay) -> dict[str, Any]:
    """An SDP offer to the server's media relay; the ack carries its answer.
    Participants of an active (accepted) call only: ``conflict`` while it
    rings or after it ended, ``forbidden`` for anyone else."""
    return {"sdp": await ctx.app[CALLS].relay_offer(ctx.user_id, p.call_id, p.sdp)}


@events.on("call:stats", CallStats)
async def stats(ctx: SocketContext, p: CallStats) -> dict[str, Any]:
    """The set-up report (``kind`` "setup") is counted once per participant
    and call (``counted: false`` after); periodic ("interval") and recovery
    ("recovered", "lost") reports each time, within ``call_stats_limit``."""
    counted = await ctx.app[CALLS].stats(
        ctx.user_id, p.call_id, path=p.path, connected=p.connected, setup_ms=p.setup_ms,
        kind=p.kind, recovery_ms=p.recovery_ms, rtt_ms=p.rtt_ms)
    return {"counted": counted}


@events.on("call:resume", CallRef)
async def resume(ctx: SocketContext, p: CallRef) -> dict[str, Any]:
    """After a reconnect: is my call still on? ``{state: "active", peer_away}``
    (the grace period ends) or ``{state, reason, by}`` of the ended call."""
    return resumed_call_view(await ctx.app[CALLS].resume(ctx.user_id, p.call_id),
                             user_id=ctx.user_id)
