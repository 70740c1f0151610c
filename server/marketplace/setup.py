"""``build_marketplace``: its stores (indexes created idempotently) and
services over them, hooked into profiles, export and the bus."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pymongo.asynchronous.database import AsyncDatabase

from ..ai.service import SemanticService
from ..ai.worker import EmbeddingWorker

from ..auth.sessions import SESSIONS_REVOKED_TOPIC, SessionService
from ..bus import Bus
from ..clock import Clock
from ..mail.service import MailService
from ..profiles import ProfileService
from ..read_cache import ReadCache
from ..storage.audit import AuditStore
from ..storage.fields import FieldCrypto
from ..storage.listings import ListingStore
from ..storage.messages import MessageStore
from ..storage.ranking_snapshots import RankingSnapshotStore
from ..storage.reviews import ReviewStore
from ..storage.skill_index import SkillIndexStore
from ..storage.skill_requests import SkillRequestStore
from ..storage.transactions import Transactions
from ..storage.users import UserStore
from ..tasks import cancel_and_wait
from .listings import ListingService
from .matches import MatchService
from .moderation import ModerationService
from .requests import DirectRooms, Notifier, RequestConsent, RequestService
from .reviews import ReviewService
from .snapshots import RankingSnapshots


@dataclass(frozen=True, slots=True)
class Marketplace:
    listings: ListingService
    requests: RequestService
    reviews: ReviewService
    matches: MatchService
    moderation: ModerationService
    embedder: EmbeddingWorker | None = None  # with Gemini: run in the background from start()
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        if self.embedder is not None:
            self._tasks.append(asyncio.create_task(self.embedder.run(), name="ai-embedding-worker"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)


async def build_marketplace(
    *, db: AsyncDatabase, fields: FieldCrypto, users: UserStore, audit: AuditStore, sessions: SessionService,
    mail: MailService, profiles: ProfileService, bus: Bus, rooms: DirectRooms | None,
    notifier: Notifier | None, public_url: str, clock: Clock,
    consent: RequestConsent | None = None, semantic: SemanticService | None = None,
    cache: ReadCache | None = None,
) -> Marketplace:
    listing_store = ListingStore(db, cache=cache)
    request_store = SkillRequestStore(db, fields, cache=cache)
    review_store = ReviewStore(db, fields, cache=cache)
    skill_index = SkillIndexStore(db)
    snapshot_store = RankingSnapshotStore(db)
    snapshots = RankingSnapshots(store=snapshot_store, clock=clock)
    worker = None
    if semantic is not None:
        worker = EmbeddingWorker(semantic=semantic, listings=listing_store, index=skill_index,
                                 reindex=lambda user_id: matches.refresh(user_id))
    matches = MatchService(users=users, listings=listing_store, index=skill_index,
                           snapshots=snapshots, clock=clock, semantic=semantic,
                           on_change=worker.wake if worker else None,
                           request_why=worker.request_why if worker else None, cache=cache)
    listings = ListingService(listings=listing_store, users=users, audit=audit, skills=matches,
                              snapshots=snapshots, clock=clock, semantic=semantic, cache=cache)
    requests = RequestService(
        requests=request_store, listings=listings, users=users, rooms=rooms,
        notifier=notifier, mail=mail, public_url=public_url, clock=clock, consent=consent,
        messages=MessageStore(db, fields),
    )
    reviews = ReviewService(reviews=review_store, requests=request_store, listings=listings,
                            listing_store=listing_store, users=users,
                            transactions=Transactions(db), clock=clock, cache=cache)
    moderation = ModerationService(
        users=users, listings=listings, listing_store=listing_store, matches=matches,
        sessions=sessions, audit=audit, clock=clock,
    )
    profiles.add_update_listener(matches.refresh_user)
    profiles.add_exporter("listings", listings.export)
    profiles.add_exporter("skill_requests", requests.export)
    profiles.add_exporter("reviews", reviews.export)
    bus.subscribe(SESSIONS_REVOKED_TOPIC, moderation.sync_owner)
    return Marketplace(listings=listings, requests=requests, reviews=reviews, matches=matches,
                       moderation=moderation, embedder=worker)
