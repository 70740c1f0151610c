"""``build_digest``: email digests for people who were away; it listens to
presence and to missed calls, so it is built after both."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from ..calls.service import CallService
from ..clock import Clock
from ..config import Settings
from ..mail.service import MailService
from ..realtime.chat import ChatService
from ..realtime.presence import PresenceService
from ..realtime.rooms import RoomService
from ..storage.digests import DigestStore
from ..storage.users import UserStore
from .service import DigestMetrics, DigestService
from .unsubscribe import UnsubscribeTokens


@dataclass(frozen=True, slots=True)
class Digest:
    service: DigestService
    enabled: bool

    async def start(self) -> None:
        if self.enabled:
            self.service.start()

    async def stop(self) -> None:
        await self.service.stop()


def build_digest(
    settings: Settings, *, db: AsyncDatabase, users: UserStore, rooms: RoomService,
    chat: ChatService, mail: MailService, presence: PresenceService, calls: CallService,
    public_url: str, clock: Clock, registry: CollectorRegistry,
) -> Digest:
    service = DigestService(
        store=DigestStore(db), users=users, rooms=rooms, chat=chat,
        mail=mail, tokens=UnsubscribeTokens(settings.signing_keys()),
        metrics=DigestMetrics(registry), clock=clock,
        public_url=public_url, interval=settings.digest_interval,
        delay=settings.digest_delay, sweep_interval=settings.digest_sweep_interval,
    )
    presence.add_listener(service.on_presence)
    calls.add_missed_listener(service.note_missed_call)
    return Digest(service, enabled=settings.digest_enabled)
