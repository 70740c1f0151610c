"""Reviews: the learner of a completed request rates it once (1-5). The
listing's rating sum and count move with ``$inc``, never by rescanning."""

from __future__ import annotations

from typing import Any

from ..clock import Clock
from ..errors import AlreadyReviewed, Forbidden, InvalidTransition, NotFound, ValidationFailed
from ..read_cache import LISTINGS, REVIEWS, ReadCache
from ..storage.ids import decode_cursor, encode_cursor, is_id
from ..storage.listings import ListingStore
from ..storage.reviews import ReviewStore
from ..storage.skill_requests import COMPLETED, SkillRequestStore
from ..storage.transactions import Transactions
from ..storage.users import UserStore
from ..views.marketplace import export_view
from .listings import ListingService
from .people import active_users
from .results import Named, Page

# The newest reviews kept per listing: the first page at the largest page
# size (server/schemas/common.py MAX_PAGE) and one more, to tell if there
# are more; every page size is cut from it, so one entry is dropped per review.
KEPT_REVIEWS = 100 + 1


class ReviewService:
    def __init__(
        self, *, reviews: ReviewStore, requests: SkillRequestStore, listings: ListingService,
        listing_store: ListingStore, users: UserStore, transactions: Transactions, clock: Clock,
        cache: ReadCache | None = None,
    ) -> None:
        self._cache = cache
        self._reviews = reviews
        self._requests = requests
        self._listings = listings
        self._listing_store = listing_store
        self._users = users
        self._transactions = transactions
        self._clock = clock

    async def create(self, request_id: str, user_id: str, *, rating: int, comment: str
                     ) -> Named:
        request = await self._requests.get(request_id) if is_id(request_id) else None
        if request is None or user_id not in (request["learner_id"], request["teacher_id"]):
            raise NotFound("No such request.")
        if user_id != request["learner_id"]:
            raise Forbidden("Only the learner can review this request.")
        if request["status"] != COMPLETED:
            raise InvalidTransition(
                f"This request is {request['status']}; you can review it once it is completed.",
                details={"status": request["status"]},
            )
        now = self._clock.now()
        # The claim, the review and the listing's average land together or not at all.
        async with self._transactions.start() as tx:
            parties = (request["learner_id"], request["teacher_id"])
            if not await self._requests.mark_reviewed(request_id, parties=parties, now=now,
                                                      tx=tx):
                raise AlreadyReviewed("You have already reviewed this request.")
            review = await self._reviews.create(request=request, rating=rating,
                                                comment=comment, now=now, tx=tx)
            await self._listing_store.add_rating(request["listing_id"], rating, tx=tx)
        self._requests.changed(*parties)  # committed: "reviewed" shows on their requests
        if self._cache is not None:  # committed: reads meanwhile held the old rating
            self._cache.changed(LISTINGS, request["listing_id"])
            self._cache.changed(REVIEWS, request["listing_id"])
        users = await active_users(self._users, [user_id])
        return Named(review, users)

    async def page(self, listing_id: str, *, limit: int, cursor: str | None) -> Page[Named]:
        await self._listings.public(listing_id)
        position = decode_cursor(cursor)
        if position is not None and not is_id(position.get("id")):
            raise ValidationFailed.field("cursor", "Invalid cursor.")
        if position is None and self._cache is not None and limit < KEPT_REVIEWS:
            # Later pages are read each time: a review written on a node
            # whose clock is behind could sort into them.
            newest = await self._cache.read(
                REVIEWS, listing_id,
                lambda: self._reviews.page(listing_id, limit=KEPT_REVIEWS, before_id=None))
            docs = newest[:limit + 1]
        else:
            docs = await self._reviews.page(
                listing_id, limit=limit + 1, before_id=position["id"] if position else None
            )
        more = len(docs) > limit
        docs = docs[:limit]
        users = await active_users(self._users, (d["reviewer_id"] for d in docs))
        return Page([Named(d, users) for d in docs],
                    encode_cursor({"id": docs[-1]["_id"]}) if more else None)

    async def export(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        mine = await self._reviews.of_user(user_id)
        return {k: [export_view(d) for d in v] for k, v in mine.items()}
