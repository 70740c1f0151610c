"""Socket.IO presence and session events."""

from __future__ import annotations

from typing import Any

from ..errors import ValidationFailed
from ..keys import CONNECTIONS, PRESENCE, PRESENCE_ACCESS, SETTINGS
from ..sockets.events import SocketContext, SocketEvents
from ..schemas.rooms import AuthRefresh, PresenceSet, PresenceSubscribe
from ..views.presence import presence_view

events = SocketEvents()


@events.on("presence:subscribe", PresenceSubscribe)
async def subscribe(ctx: SocketContext, p: PresenceSubscribe) -> dict[str, Any]:
    """Up to 500 ids per event and ``socket_max_presence_subscriptions`` per
    socket. Returns the current presence of each person the caller may see
    (contacts, or people whose presence is public; see docs/realtime.md,
    "Consent") and lists the others in ``hidden``: they get no presence and
    no events, until consent changes (then events start without
    re-subscribing)."""
    ids = list(dict.fromkeys(p.user_ids))
    new = [u for u in ids if u not in ctx.state.presence]
    cap = ctx.app[SETTINGS].socket_max_presence_subscriptions
    if len(ctx.state.presence) + len(new) > cap:
        raise ValidationFailed.field("user_ids", f"A socket may watch at most {cap} users.")
    presence, hidden = await ctx.app[PRESENCE_ACCESS].subscribe(ctx.state, ids)
    return {"presence": {uid: presence_view(uid, seen) for uid, seen in presence.items()},
            "hidden": hidden}


@events.on("presence:unsubscribe", PresenceSubscribe)
async def unsubscribe(ctx: SocketContext, p: PresenceSubscribe) -> dict[str, Any]:
    await ctx.app[PRESENCE_ACCESS].unsubscribe(ctx.state, p.user_ids)
    return {}


@events.on("presence:set", PresenceSet)
async def set_status(ctx: SocketContext, p: PresenceSet) -> dict[str, Any]:
    await ctx.app[PRESENCE].set_status(ctx.user_id, p.status)
    return {}


@events.on("auth:refresh", AuthRefresh)
async def refresh(ctx: SocketContext, p: AuthRefresh) -> dict[str, Any]:
    """A fresh access token for the same user keeps the socket open past
    the old token's expiry."""
    await ctx.app[CONNECTIONS].refresh(ctx.state, p.token)
    return {"expires_at": ctx.state.expires_at}
