"""Skill requests and their state machine:

    pending --accept (teacher)--> accepted --complete (either)--> completed
                                        (once the two have exchanged a message
                                         in their room since the acceptance)
    pending --decline (teacher)--> declined
    pending --cancel (learner)--> cancelled

Anything else is a 409 naming the current status. Accepting opens (or
reuses) the direct room between the two people. Both parties get a
``request`` Socket.IO event on every change, and mail on the ones that
need their attention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from loguru import logger

from ..clock import Clock
from ..errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    NotStarted,
    Unavailable,
    ValidationFailed,
)
from ..mail.service import MailService
from ..mail.templates import notification_mail
from ..storage.ids import decode_cursor, encode_cursor, is_id
from ..storage.skill_requests import (
    ACCEPTED,
    CANCELLED,
    COMPLETED,
    DECLINED,
    PENDING,
    SkillRequestStore,
)
from ..storage.users import UserStore
from ..views.marketplace import export_view, request_view
from .listings import ListingService
from .people import active_users
from .results import Named, Page

REQUEST_EVENT = "request"


class DirectRooms(Protocol):
    """What we need of the rooms service (server/realtime)."""

    async def open_direct(self, user_id: str, other_user_id: str
                          ) -> tuple[dict[str, Any], bool]: ...


class RoomMessages(Protocol):
    """What we need of the message store: where a room's history stands."""

    async def last_seq(self, room_id: str, *, known: int = 0) -> int: ...
    async def get(self, room_id: str, seq: int) -> dict[str, Any] | None: ...


class Notifier(Protocol):
    """Real-time delivery to every socket of some users."""

    async def notify_users(self, user_ids: list[str], event: str,
                           payload: dict[str, Any]) -> None: ...


class RequestConsent(Protocol):
    """Blocks, and announcing new relations (server/consent)."""

    async def ensure_not_blocked(self, user_id: str, other_id: str) -> None: ...
    async def changed(self, user_ids: list[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class Transition:
    action: str
    source: str
    target: str
    actor: str  # "teacher", "learner" or "either"


TRANSITIONS = {
    t.action: t for t in (
        Transition("accept", PENDING, ACCEPTED, "teacher"),
        Transition("decline", PENDING, DECLINED, "teacher"),
        Transition("cancel", PENDING, CANCELLED, "learner"),
        Transition("complete", ACCEPTED, COMPLETED, "either"),
    )
}
MAILS = {
    "created": ("teacher", "New request for “{title}”",
                "{learner} would like to learn from you: “{title}”."),
    # the learner only: the teacher did it themselves
    "accepted": ("learner", "Request accepted: “{title}”",
                 "{teacher} accepted your request for “{title}”. "
                 "A chat room is open for you two."),
    "declined": ("learner", "Request declined: “{title}”",
                 "{teacher} declined your request for “{title}”."),
}


class RequestService:
    def __init__(
        self, *, requests: SkillRequestStore, listings: ListingService, users: UserStore,
        rooms: DirectRooms | None, notifier: Notifier | None, mail: MailService,
        public_url: str, clock: Clock, consent: RequestConsent | None = None,
        messages: RoomMessages | None = None,
    ) -> None:
        self._consent = consent
        self._messages = messages
        self._requests = requests
        self._listings = listings
        self._users = users
        self._rooms = rooms
        self._notifier = notifier
        self._mail = mail
        self._public_url = public_url.rstrip("/")
        self._clock = clock

    async def _people(self, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return await active_users(self._users, [doc["learner_id"], doc["teacher_id"]])

    async def create(self, listing_id: str, learner_id: str, message: str) -> Named:
        listing = await self._listings.get_visible(listing_id)
        if listing["owner_id"] == learner_id:
            raise Forbidden("You cannot request your own listing.")
        if self._consent is not None:
            await self._consent.ensure_not_blocked(learner_id, listing["owner_id"])
        doc = await self._requests.create(
            listing=listing, learner_id=learner_id, message=message, now=self._clock.now()
        )
        if self._consent is not None:  # a request is a relation (presence, groups)
            await self._consent.changed([learner_id, listing["owner_id"]])
        return await self._announce("created", doc)

    async def get(self, request_id: str, user_id: str) -> Named:
        doc = await self._party_request(request_id, user_id)
        return Named(doc, await self._people(doc))

    async def _party_request(self, request_id: str, user_id: str) -> dict[str, Any]:
        doc = await self._requests.get(request_id) if is_id(request_id) else None
        if doc is None or user_id not in (doc["learner_id"], doc["teacher_id"]):
            raise NotFound("No such request.")
        return doc

    async def transition(self, action: str, request_id: str, user_id: str) -> Named:
        rule = TRANSITIONS[action]
        doc = await self._party_request(request_id, user_id)
        role = "teacher" if user_id == doc["teacher_id"] else "learner"
        if rule.actor != "either" and rule.actor != role:
            raise Forbidden(f"Only the {rule.actor} can {action} this request.")
        self._check_source(rule, doc["status"])
        extra: dict[str, Any] = {}
        if action == "accept":
            if self._rooms is None:
                raise Unavailable("Chat rooms are not available; try again later.")
            room, _ = await self._rooms.open_direct(doc["teacher_id"], doc["learner_id"])
            extra["room_id"] = str(room["_id"])
            if self._messages is not None:  # where the talk since the acceptance starts
                extra["room_seq_at_accept"] = await self._messages.last_seq(extra["room_id"])
        if action == "complete":
            await self._check_talked(doc)
        updated = await self._requests.transition(
            request_id, from_status=rule.source, to_status=rule.target, now=self._clock.now(),
            extra=extra,
        )
        if updated is None:  # someone else moved it first
            current = await self._requests.get(request_id)
            self._check_source(rule, current["status"] if current else "gone")
            raise Conflict("The request changed meanwhile; reload it.")
        if self._consent is not None and rule.target in (DECLINED, CANCELLED):
            # a "no" ends the relation the request gave (presence, groups)
            await self._consent.changed([updated["learner_id"], updated["teacher_id"]])
        return await self._announce(rule.target, updated)

    async def _check_talked(self, doc: dict[str, Any]) -> None:
        """A request is completed after a conversation: a message in the
        room after the acceptance (seqs are gap-free, so one point lookup).
        Requests accepted before this rule carry no mark and are exempt."""
        start = doc.get("room_seq_at_accept")
        if self._messages is None or start is None or not doc.get("room_id"):
            return
        if await self._messages.get(doc["room_id"], int(start) + 1) is None:
            raise NotStarted(
                "Talk first: a request can be marked completed once you two have exchanged "
                "a message in your chat since it was accepted.",
                details={"room_id": doc["room_id"]},
            )

    @staticmethod
    def _check_source(rule: Transition, status: str) -> None:
        if status != rule.source:
            raise InvalidTransition(
                f"This request is {status}; only a {rule.source} request can be "
                f"{'completed' if rule.action == 'complete' else rule.action + 'ed'}.",
                details={"status": status, "action": rule.action},
            )

    async def _announce(self, event: str, doc: dict[str, Any]) -> Named:
        people = await self._people(doc)
        if self._notifier is not None:
            try:
                await self._notifier.notify_users(
                    [doc["learner_id"], doc["teacher_id"]], REQUEST_EVENT,
                    {"event": event, "request": request_view(Named(doc, people))},
                )
            except Exception:
                logger.exception("could not notify users of request {}", doc["_id"])
        if event in MAILS:
            await self._send_mails(event, doc, people)
        return Named(doc, people)

    async def _send_mails(self, event: str, doc: dict[str, Any],
                          people: dict[str, dict[str, Any]]) -> None:
        to, subject, body = MAILS[event]
        recipients = {"teacher": [doc["teacher_id"]], "learner": [doc["learner_id"]],
                      "both": [doc["teacher_id"], doc["learner_id"]]}[to]
        names = {
            "title": doc["listing_title"],
            "learner": people.get(doc["learner_id"], {}).get("display_name", "A learner"),
            "teacher": people.get(doc["teacher_id"], {}).get("display_name", "The teacher"),
        }
        for user_id in recipients:
            user = people.get(user_id)
            if user is None or not user.get("email"):
                continue
            mail = notification_mail(
                display_name=user["display_name"], subject=subject.format(**names),
                body=body.format(**names), link=f"{self._public_url}/requests/{doc['_id']}",
            )
            await self._mail.send(to=user["email"], mail=mail, kind=f"request_{event}",
                                  user_ids=[doc["learner_id"], doc["teacher_id"]])

    async def page(self, user_id: str, *, role: str | None, status: str | None, limit: int,
                   cursor: str | None) -> Page[Named]:
        position = decode_cursor(cursor)
        if position is not None and not is_id(position.get("id")):
            raise ValidationFailed.field("cursor", "Invalid cursor.")
        docs = await self._requests.page(
            user_id, role=role, status=status, limit=limit + 1,
            before_id=position["id"] if position else None,
        )
        more = len(docs) > limit
        docs = docs[:limit]
        ids = list({i for d in docs for i in (d["learner_id"], d["teacher_id"])})
        people = await active_users(self._users, ids)
        return Page([Named(d, people) for d in docs],
                    encode_cursor({"id": docs[-1]["_id"]}) if more else None)

    async def export(self, user_id: str) -> list[dict[str, Any]]:
        return [export_view(d) for d in await self._requests.of_user(user_id)]
