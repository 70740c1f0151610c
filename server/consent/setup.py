"""``build_consent``: the consent area's stores and the service over them
(their indexes are created with every other store's, server/storage/schema.py)."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from ..bus import Bus
from ..clock import Clock
from ..profiles import ProfileService
from ..read_cache import ReadCache
from ..storage.audit import AuditStore
from ..storage.blocks import BlockStore
from ..storage.fields import FieldCrypto
from ..storage.rooms import RoomStore
from ..storage.skill_requests import SkillRequestStore
from ..storage.users import UserStore
from .service import ConsentService


@dataclass(frozen=True, slots=True)
class Consent:
    service: ConsentService

    async def start(self) -> None:
        """Nothing runs in the background: it answers the bus and the others."""

    async def stop(self) -> None:
        """Nothing to close."""


def build_consent(
    *, db: AsyncDatabase, fields: FieldCrypto, users: UserStore, audit: AuditStore, bus: Bus, clock: Clock,
    profiles: ProfileService, max_blocks: int, cache: ReadCache | None = None,
) -> Consent:
    service = ConsentService(
        blocks=BlockStore(db), rooms=RoomStore(db), requests=SkillRequestStore(db, fields),
        users=users, audit=audit, bus=bus, clock=clock, max_blocks=max_blocks, cache=cache,
    )
    profiles.add_exporter("blocks", service.export)
    return Consent(service)
