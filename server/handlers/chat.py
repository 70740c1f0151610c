"""Socket.IO chat events: rooms, messages, read markers, typing."""

from __future__ import annotations

from typing import Any

from ..errors import ValidationFailed
from ..keys import CHAT, DELIVERY, ROOMS, SETTINGS
from ..realtime.notifier import chat_room
from ..sockets.events import SocketContext, SocketEvents
from ..schemas.rooms import MessageRead, MessageSend, RoomRef, RoomSync, Typing
from ..views.rooms import message_view, room_view

events = SocketEvents()


@events.on("room:join", RoomRef)
async def join(ctx: SocketContext, p: RoomRef) -> dict[str, Any]:
    """Members only. Returns the room and its last seq (sync from there)."""
    room = await ctx.app[ROOMS].require_member(p.room_id, ctx.user_id)
    if p.room_id not in ctx.state.rooms:
        if len(ctx.state.rooms) >= ctx.app[SETTINGS].socket_max_rooms:
            raise ValidationFailed.field("room_id", "This socket has joined too many rooms.")
        ctx.state.rooms.add(p.room_id)
        await ctx.sio.enter_room(ctx.sid, chat_room(p.room_id))
    last_seq = await ctx.app[CHAT].last_seq(p.room_id)
    return {"room": room_view(room), "last_seq": last_seq}


@events.on("room:leave", RoomRef)
async def leave(ctx: SocketContext, p: RoomRef) -> dict[str, Any]:
    if p.room_id in ctx.state.rooms:
        ctx.state.rooms.discard(p.room_id)
        await ctx.sio.leave_room(ctx.sid, chat_room(p.room_id))
    return {}


@events.on("room:sync", RoomSync)
async def sync(ctx: SocketContext, p: RoomSync) -> dict[str, Any]:
    messages, has_more = await ctx.app[CHAT].sync(
        ctx.user_id, p.room_id, after_seq=p.after_seq, limit=p.limit
    )
    ctx.app[DELIVERY].synced(len(messages))
    return {"messages": [message_view(m) for m in messages], "has_more": has_more}


@events.on("message:send", MessageSend)
async def send(ctx: SocketContext, p: MessageSend) -> dict[str, Any]:
    """Acked once stored; a retry with the same client_id returns the first
    message (``duplicate: true``) and is not broadcast again."""
    await ctx.require_verified_email("message.send")
    result = await ctx.app[CHAT].send(ctx.user_id, p.room_id, p.client_id, p.body)
    return {"message": message_view(result.message), "duplicate": not result.created}


@events.on("message:read", MessageRead)
async def read(ctx: SocketContext, p: MessageRead) -> dict[str, Any]:
    seq = await ctx.app[CHAT].mark_read(ctx.user_id, p.room_id, p.seq)
    return {"seq": seq}


@events.on("typing", Typing)
async def typing(ctx: SocketContext, p: Typing) -> dict[str, Any]:
    relayed = await ctx.app[CHAT].typing(ctx.user_id, p.room_id, p.typing)
    return {"relayed": relayed}
