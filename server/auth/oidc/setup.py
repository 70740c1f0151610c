"""``build_sign_in``: the provider clients over one HTTP session, and the
service over the stores."""

from __future__ import annotations

import aiohttp
from prometheus_client import CollectorRegistry, Counter
from pymongo.asynchronous.database import AsyncDatabase

from ...clock import Clock
from ...read_cache import ReadCache
from ...ratelimit import RateLimiter
from ...storage.audit import AuditStore
from ...storage.fields import FieldCrypto
from ...storage.identities import IdentityStore
from ...storage.oidc_flows import OidcFlowStore
from ...storage.users import UserStore
from ..sessions import SessionService
from .clients import build_client
from .providers import ProviderConfig
from .service import SignInService

USER_AGENT = "skillshare-sign-in"


def build_sign_in(
    providers: list[ProviderConfig], *, db: AsyncDatabase, fields: FieldCrypto, users: UserStore,
    sessions: SessionService, audit: AuditStore, public_url: str, flow_ttl: int,
    http_timeout: float, limiter: RateLimiter, start_limit: str, clock: Clock,
    registry: CollectorRegistry | None = None, cache: ReadCache | None = None,
) -> SignInService:
    http = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) if providers else None
    clients = {}
    if http is not None:
        clients = {p.name: build_client(p, http=http, timeout=http_timeout, clock=clock)
                   for p in providers}
    return SignInService(
        providers=clients, flows=OidcFlowStore(db), identities=IdentityStore(db, fields, cache=cache),
        users=users,
        sessions=sessions, audit=audit, public_url=public_url, flow_ttl=flow_ttl, clock=clock,
        limiter=limiter, start_limit=start_limit,
        outcomes=Counter("skillshare_oidc_callbacks_total",
                         "Sign-in provider callbacks by provider and outcome "
                         "(signed_in, linked, refused, unavailable).",
                         ["provider", "outcome"], registry=registry) if registry else None,
        close=http.close if http is not None else None,
    )
