"""Wiring of the consent area: its stores and the service over them (their
indexes are created with every other store's, server/storage/schema.py)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from ..bus import Bus
from ..clock import Clock
from ..storage.audit import AuditStore
from ..storage.blocks import BlockStore
from ..storage.fields import FieldCrypto
from ..storage.rooms import RoomStore
from ..storage.skill_requests import SkillRequestStore
from ..storage.users import UserStore
from .service import ConsentService


async def build_consent(
    *, db: AsyncDatabase, fields: FieldCrypto, users: UserStore, audit: AuditStore, bus: Bus, clock: Clock,
    max_blocks: int,
) -> ConsentService:
    return ConsentService(
        blocks=BlockStore(db), rooms=RoomStore(db), requests=SkillRequestStore(db, fields),
        users=users, audit=audit, bus=bus, clock=clock, max_blocks=max_blocks,
    )
