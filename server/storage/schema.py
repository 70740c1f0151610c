"""Every store's indexes, created in one place before anything is written,
so no entry point (``serve``, ``seed``, ``admin``) can write data that a
unique index would later refuse to be built over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .ai_cache import AiCacheStore
from .audit import AuditStore
from .blocks import BlockStore
from .digests import DigestStore
from .identities import IdentityStore
from .fields import FieldCrypto
from .listings import ListingStore
from .mail_queue import MailQueueStore
from .messages import MessageStore
from .oidc_flows import OidcFlowStore
from .ranking_snapshots import RankingSnapshotStore
from .read_markers import ReadMarkerStore
from .reviews import ReviewStore
from .rooms import RoomStore
from .sessions import SessionStore
from .skill_index import SkillIndexStore
from .skill_requests import SkillRequestStore
from .user_tokens import UserTokenStore
from .users import UserStore

INDEXED_STORES = (
    UserStore, SessionStore, UserTokenStore, MailQueueStore, AuditStore,
    ListingStore, SkillRequestStore, ReviewStore, SkillIndexStore, RankingSnapshotStore,
    RoomStore, MessageStore, ReadMarkerStore, BlockStore, AiCacheStore,
    IdentityStore, OidcFlowStore, DigestStore,
)
# Stores that encrypt fields take a FieldCrypto; creating indexes needs no key.
FIELD_STORES = (
    UserStore, SessionStore, MailQueueStore, AuditStore, SkillRequestStore, ReviewStore,
    MessageStore, IdentityStore,
)
PLAIN_STORES = (
    UserTokenStore, ListingStore, SkillIndexStore, RankingSnapshotStore, RoomStore,
    ReadMarkerStore, BlockStore, AiCacheStore, OidcFlowStore, DigestStore,
)


class IndexBuildFailed(RuntimeError):
    """Existing documents break a unique index; the node cannot start on them."""


async def create_all_indexes(db: AsyncDatabase) -> None:
    """Idempotent: existing indexes are left as they are."""
    crypto = FieldCrypto.plaintext()
    create: dict[type, Callable[[], Awaitable[None]]] = {
        cls: cls(db, crypto).create_indexes for cls in FIELD_STORES}
    create.update((cls, cls(db).create_indexes) for cls in PLAIN_STORES)
    for store_class in INDEXED_STORES:
        try:
            await create[store_class]()
        except DuplicateKeyError as exc:
            raise IndexBuildFailed(
                f"database {db.name!r} holds duplicates that {store_class.__name__}'s unique "
                f"index forbids ({exc.details.get('errmsg') if exc.details else exc}); "
                "remove the duplicates (or use a fresh SKILLSHARE_MONGO_DB) and start again"
            ) from None
