"""``delivery:report``: a client's counts of live and synced messages."""

from __future__ import annotations

from typing import Any

from ..keys import DELIVERY
from ..sockets.events import SocketContext, SocketEvents
from ..schemas.delivery import DeliveryReport

events = SocketEvents()


@events.on("delivery:report", DeliveryReport)
async def report(ctx: SocketContext, p: DeliveryReport) -> dict[str, Any]:
    """Counted into the delivery metrics; ``SKILLSHARE_DELIVERY_REPORT_LIMIT``
    per user; gap seqs only for rooms the user is a member of."""
    await ctx.app[DELIVERY].report(ctx.user_id, p)
    return {}
