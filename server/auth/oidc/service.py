"""Signing in with a provider, linking and unlinking providers.

The rules (docs/accounts.md, "Sign-in providers"):
- a (provider, subject) seen before signs into the account it is linked to;
- otherwise an existing account with the provider's email is linked only
  when the provider says the email is verified AND the account's email is
  verified; any other case with that email is refused with a page telling
  the person to sign in with their password and link the provider from the
  profile (no pre-account-takeover: the account keeps working only for its
  password's holder, and the provider's user never gets in);
- a new account is created only for an email the provider says is verified.
A failure at any step leaves no user, session or identity behind."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from loguru import logger
from prometheus_client import Counter

from ...clock import Clock
from ...errors import (
    EmailTaken,
    IdentityTaken,
    LastSignInMethod,
    NotFound,
    SignInFailed,
    Unavailable,
)
from ...logs import mask_email
from ...ratelimit import RateLimiter
from ...schemas.human_text import TextError, clean_text
from ...storage.audit import AuditStore
from ...storage.identities import IdentityStore
from ...storage.oidc_flows import OidcFlowStore
from ...storage.users import ACTIVE, UserStore
from ..sessions import ClientInfo, SessionService, TokenPair
from ..tokens import hash_secret
from .clients import ExternalIdentity, ProviderClient

SECRET_CHARS = 48  # state, nonce, browser binding and PKCE verifier (43-128 allowed)
MAX_NAME_CHARS = 80  # as a profile's display_name
CALLBACK_PATH = "/api/v1/auth/oidc/{name}/callback"


@dataclass(frozen=True, slots=True)
class StartedFlow:
    authorization_url: str
    browser_secret: str  # kept by the browser in a short-lived HttpOnly cookie


@dataclass(frozen=True, slots=True)
class Completed:
    """``pair`` for a sign-in; ``linked_provider`` when a profile linked one."""

    pair: TokenPair | None = None
    linked_provider: str | None = None


def _display_name(identity: ExternalIdentity, email: str) -> str:
    for candidate in (identity.name or "", email.split("@", 1)[0]):
        try:
            name = clean_text(candidate.strip()[:MAX_NAME_CHARS], multiline=False).strip()
        except TextError:
            continue
        if name:
            return name
    return "New member"


class SignInService:
    def __init__(
        self, *, providers: dict[str, ProviderClient], flows: OidcFlowStore,
        identities: IdentityStore, users: UserStore, sessions: SessionService,
        audit: AuditStore, public_url: str, flow_ttl: int, clock: Clock,
        limiter: RateLimiter, start_limit: str, outcomes: Counter | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._outcomes = outcomes
        self._close = close
        self._limiter = limiter
        self._start_limit = start_limit
        self._providers = providers
        self._flows = flows
        self._identities = identities
        self._users = users
        self._sessions = sessions
        self._audit = audit
        self._public_url = public_url.rstrip("/")
        self._flow_ttl = timedelta(seconds=flow_ttl)
        self._clock = clock

    async def close(self) -> None:
        """Closes the HTTP session to the providers."""
        if self._close is not None:
            await self._close()

    def providers(self) -> list[dict[str, str]]:
        return [{"name": name, "display_name": client.config.display_name}
                for name, client in self._providers.items()]

    def _client(self, name: str) -> ProviderClient:
        client = self._providers.get(name)
        if client is None:
            raise NotFound("No such sign-in provider.")
        return client

    def redirect_uri(self, name: str) -> str:
        return self._public_url + CALLBACK_PATH.format(name=name)

    async def start(self, name: str, *, client_ip: str | None,
                    link_user_id: str | None = None) -> StartedFlow:
        """A new flow: state, nonce and PKCE verifier kept server-side under
        the state, bound to a fresh browser secret. Limited per IP."""
        client = self._client(name)
        await self._limiter.hit("oidc_start", self._start_limit, client_ip or "-")
        state, nonce = generate_token(SECRET_CHARS), generate_token(SECRET_CHARS)
        verifier, browser = generate_token(SECRET_CHARS), generate_token(SECRET_CHARS)
        url = await client.authorization_url(
            state=state, nonce=nonce, code_challenge=create_s256_code_challenge(verifier),
            redirect_uri=self.redirect_uri(name),
        )
        now = self._clock.now()
        await self._flows.create({
            "_id": state, "browser": hash_secret(browser), "provider": name, "nonce": nonce,
            "code_verifier": verifier, "link_user_id": link_user_id, "created_at": now,
            "expires_at": now + self._flow_ttl,
        })
        return StartedFlow(authorization_url=url, browser_secret=browser)

    async def complete(self, name: str, *, code: str, state: str, browser_secret: str | None,
                       client: ClientInfo) -> Completed:
        """The callback: counted per provider and outcome (signed_in, linked,
        refused, unavailable) in ``skillshare_oidc_callbacks_total``."""
        provider = self._client(name)
        try:
            done = await self._complete(provider, name, code=code, state=state,
                                        browser_secret=browser_secret, client=client)
        except SignInFailed:
            self._count(name, "refused")
            raise
        except Unavailable:
            self._count(name, "unavailable")
            raise
        self._count(name, "linked" if done.linked_provider else "signed_in")
        return done

    def _count(self, name: str, outcome: str) -> None:
        if self._outcomes is not None:
            self._outcomes.labels(name, outcome).inc()

    async def _complete(self, provider: ProviderClient, name: str, *, code: str, state: str,
                        browser_secret: str | None, client: ClientInfo) -> Completed:
        flow = await self._flows.consume(state, now=self._clock.now()) if state else None
        if (flow is None or flow["provider"] != name or not browser_secret
                or not hmac.compare_digest(flow["browser"], hash_secret(browser_secret))):
            logger.info("oidc {}: callback with an unknown, expired or foreign state", name)
            raise SignInFailed(
                "This sign-in was not started in this browser, was already used or has "
                "expired. Please start again.")
        identity = await provider.identity(
            code=code, code_verifier=flow["code_verifier"], nonce=flow["nonce"],
            redirect_uri=self.redirect_uri(name),
        )
        if flow.get("link_user_id"):
            await self._link(flow["link_user_id"], identity, client)
            return Completed(linked_provider=name)
        return Completed(pair=await self._sign_in(identity, client))

    async def _sign_in(self, identity: ExternalIdentity, client: ClientInfo) -> TokenPair:
        now = self._clock.now()
        known = await self._identities.find(identity.provider, identity.subject)
        if known is not None:
            user = await self._users.get_active(known["user_id"])
            if user is None:
                raise SignInFailed("The account linked to this sign-in is no longer active.")
            await self._identities.touch(known["_id"], user_id=known["user_id"], now=now)
            return await self._start_session(user, identity, client, how="linked")
        if not identity.email:
            raise SignInFailed(
                "The provider did not share an email address, which an account needs.")
        if not identity.email_verified:
            raise SignInFailed(
                "The provider has not verified your email address. Verify it there, or "
                "create an account with your email and a password.")
        email = identity.email.strip().lower()
        existing = await self._users.find_by_email(email)
        if existing is not None:
            if existing.get("status") != ACTIVE or not existing.get("email_verified"):
                logger.info("oidc {}: refused to link unverified account {}",
                            identity.provider, mask_email(email))
                raise SignInFailed(
                    "An account with this email address already exists. Sign in with its "
                    "password, then link this provider from your profile.")
            await self._create_identity(existing["_id"], identity, client, how="email")
            return await self._start_session(existing, identity, client, how="email")
        return await self._create_account(email, identity, client)

    async def _create_account(self, email: str, identity: ExternalIdentity,
                              client: ClientInfo) -> TokenPair:
        now = self._clock.now()
        try:
            user = await self._users.create(
                email=email, password_hash=None, display_name=_display_name(identity, email),
                now=now, email_verified=True,
            )
        except EmailTaken:  # registered meanwhile
            raise SignInFailed("An account with this email address already exists. Sign in "
                               "with its password, then link this provider from your profile."
                               ) from None
        try:
            await self._identities.create(user_id=user["_id"], provider=identity.provider,
                                          subject=identity.subject, email=email, now=now)
        except IdentityTaken:  # the same person's sign-in finished twice at once
            await self._users.delete_unused(user["_id"])
            raise SignInFailed("This sign-in is already being completed. Please try again."
                               ) from None
        logger.info("user {} registered with {} ({})", user["_id"], identity.provider,
                    mask_email(email))
        await self._record("account.register", user["_id"], client, provider=identity.provider)
        return await self._start_session(user, identity, client, how="new")

    async def _create_identity(self, user_id: str, identity: ExternalIdentity,
                               client: ClientInfo, *, how: str) -> None:
        try:
            await self._identities.create(user_id=user_id, provider=identity.provider,
                                          subject=identity.subject, email=identity.email,
                                          now=self._clock.now())
        except IdentityTaken:
            raise SignInFailed(
                "Another account of this provider is already linked to this account. "
                "Unlink it from your profile first.") from None
        await self._record("account.oidc_link", user_id, client, provider=identity.provider,
                           via=how)

    async def _start_session(self, user: dict[str, Any], identity: ExternalIdentity,
                             client: ClientInfo, *, how: str) -> TokenPair:
        pair = await self._sessions.start(user, client)
        await self._record("account.oidc_login", user["_id"], client,
                           provider=identity.provider, session_id=pair.session_id, via=how)
        return pair

    async def _link(self, user_id: str, identity: ExternalIdentity, client: ClientInfo) -> None:
        """Linking from a signed-in profile: the person proved both accounts."""
        if await self._users.get_active(user_id) is None:
            raise SignInFailed("Your account is no longer active.")
        known = await self._identities.find(identity.provider, identity.subject)
        if known is not None:
            if known["user_id"] == user_id:
                return
            raise SignInFailed("This provider account is already linked to another account.")
        await self._create_identity(user_id, identity, client, how="profile")

    async def unlink(self, user_id: str, provider: str, client: ClientInfo) -> None:
        """Refused (409 ``last_sign_in_method``) when it is the only way in."""
        user = await self._users.get_active(user_id)
        linked = await self._identities.for_user(user_id)
        identity = next((i for i in linked if i["provider"] == provider), None)
        if user is None or identity is None:
            raise NotFound("This provider is not linked to your account.")
        if not user.get("password_hash") and len(linked) == 1:
            raise LastSignInMethod()
        if not await self._identities.delete(user_id, provider):
            raise NotFound("This provider is not linked to your account.")
        if not user.get("password_hash") and not await self._identities.for_user(user_id):
            # another unlink of this account ran at the same time: keep this one
            await self._identities.restore(identity)
            raise LastSignInMethod()
        await self._record("account.oidc_unlink", user_id, client, provider=provider)

    async def linked(self, user_id: str) -> list[dict[str, Any]]:
        """The user's linked identities (documents of the identity store,
        through the read cache: shared, read-only)."""
        return await self._identities.linked(user_id)

    def provider_name(self, provider: str) -> str:
        """What the person sees for ``provider`` (its id when no longer configured)."""
        client = self._providers.get(provider)
        return client.config.display_name if client is not None else provider

    async def export(self, user_id: str) -> list[dict[str, Any]]:
        return [{"provider": i["provider"], "subject": i["subject"], "email": i.get("email"),
                 "linked_at": i["linked_at"], "last_used_at": i.get("last_used_at")}
                for i in await self._identities.for_user(user_id)]

    async def _record(self, action: str, user_id: str, client: ClientInfo, **details: Any
                      ) -> None:
        await self._audit.record(action=action, actor_id=user_id, target=user_id, ip=client.ip,
                                 request_id=client.request_id, at=self._clock.now(),
                                 details=details)
