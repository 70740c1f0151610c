"""Wiring of the consent area: its stores (indexes created idempotently) and
the service over them."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from ..bus import Bus
from ..clock import Clock
from ..storage.audit import AuditStore
from ..storage.blocks import BlockStore
from ..storage.rooms import RoomStore
from ..storage.skill_requests import SkillRequestStore
from ..storage.users import UserStore
from .service import ConsentService


async def build_consent(
    *, db: AsyncDatabase, users: UserStore, audit: AuditStore, bus: Bus, clock: Clock,
    max_blocks: int,
) -> ConsentService:
    blocks = BlockStore(db)
    await blocks.create_indexes()
    return ConsentService(
        blocks=blocks, rooms=RoomStore(db), requests=SkillRequestStore(db), users=users,
        audit=audit, bus=bus, clock=clock, max_blocks=max_blocks,
    )
