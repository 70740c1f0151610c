"""Accounts: registration, login with throttling, email verification,
password reset and change, deletion."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from loguru import logger

from ..clock import Clock
from ..errors import (
    Conflict,
    EmailNotVerified,
    HashingBusy,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from ..logs import mask_email
from ..mail.service import MailService
from ..mail.templates import password_reset_mail, verification_mail
from ..ratelimit import RateLimiter
from ..storage.audit import AuditStore
from ..storage.user_tokens import RESET_PASSWORD, VERIFY_EMAIL, UserTokenStore
from ..storage.users import ACTIVE, UserStore
from ..tasks import cancel_and_wait
from .passwords import Passwords
from .sessions import ClientInfo, SessionService, TokenPair
from .tokens import AccessClaims, hash_secret, new_secret


@dataclass(frozen=True, slots=True)
class AccountLimits:
    register: str
    login_account: str
    login_ip: str
    forgot_password: str
    email_token_ttl: int
    password_reset_ttl: int


def normalise_email(email: str) -> str:
    return email.strip().lower()


class AccountService:
    def __init__(
        self,
        *,
        users: UserStore,
        user_tokens: UserTokenStore,
        audit: AuditStore,
        passwords: Passwords,
        sessions: SessionService,
        mail: MailService,
        limiter: RateLimiter,
        limits: AccountLimits,
        public_url: str,
        clock: Clock,
        verified_actions: frozenset[str] = frozenset(),
    ) -> None:
        self._users = users
        self._tokens = user_tokens
        self._audit = audit
        self._passwords = passwords
        self._sessions = sessions
        self._mail = mail
        self._limiter = limiter
        self._limits = limits
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        self._verified_actions = verified_actions
        self._background: set[asyncio.Task[None]] = set()

    async def _record(self, action: str, *, actor_id: str | None, target: str | None,
                      client: ClientInfo, **details: Any) -> None:
        await self._audit.record(
            action=action, actor_id=actor_id, target=target, ip=client.ip,
            request_id=client.request_id, at=self._clock.now(), details=details,
        )

    async def register(
        self, *, email: str, password: str, display_name: str, client: ClientInfo
    ) -> TokenPair:
        await self._limiter.hit("register", self._limits.register, client.ip or "-")
        self._passwords.validate(password)
        password_hash = await self._passwords.hash(password)
        user = await self._users.create(
            email=normalise_email(email), password_hash=password_hash,
            display_name=display_name, now=self._clock.now(),
        )
        logger.info("user {} registered ({})", user["_id"], mask_email(user["email"]))
        await self._record("account.register", actor_id=user["_id"], target=user["_id"],
                           client=client)
        await self._send_verification(user)
        return await self._sessions.start(user, client)

    async def login(self, *, email: str, password: str, client: ClientInfo) -> TokenPair:
        email = normalise_email(email)
        if len(password) > self._passwords.max_length:
            raise InvalidCredentials()
        # Only failures count, against the IP and against the account, but
        # both units are taken before the (slow) verification: a burst sent
        # all at once gets no more verifications than the limits allow, on
        # one node or many. A success gives the IP's unit back and clears the
        # account's window; a throttled account stays throttled even for the
        # right password.
        ip_unit = await self._limiter.reserve("login:ip", self._limits.login_ip,
                                              client.ip or "-")
        try:
            account_unit = await self._limiter.reserve(
                "login:account", self._limits.login_account, email
            )
        except RateLimited:
            await ip_unit.refund()  # refused before any verification
            raise
        user = await self._users.find_by_email(email)
        active = user is not None and user.get("status") == ACTIVE
        password_hash = user.get("password_hash") if user is not None and active else None
        try:
            verified = await self._passwords.verify(password_hash, password)
        except HashingBusy:  # refused before any verification: no attempt to count
            await ip_unit.refund()
            await account_unit.refund()
            raise
        if not verified:
            await self._login_failed(email, user, client)
            raise InvalidCredentials()
        assert user is not None
        if self._passwords.needs_rehash(user["password_hash"]):
            await self._users.set_password_hash(
                user["_id"], await self._passwords.hash(password), now=self._clock.now()
            )
        await ip_unit.refund()
        await account_unit.clear()
        pair = await self._sessions.start(user, client)
        await self._record("account.login", actor_id=user["_id"], target=user["_id"],
                           client=client, session_id=pair.session_id)
        return pair

    async def _login_failed(self, email: str, user: dict | None, client: ClientInfo) -> None:
        # (the IP's and the account's units were taken before the verification)
        logger.info("failed login for {}", mask_email(email))
        if user is not None:
            await self._record("account.login_failed", actor_id=None, target=user["_id"],
                               client=client)

    async def _mailed_link(self, user_id: str, *, purpose: str, ttl: int, page: str) -> str:
        """A single-use token stored as a hash, as a link to the web app's page."""
        token = new_secret()
        now = self._clock.now()
        await self._tokens.create(
            token_hash=hash_secret(token), purpose=purpose, user_id=user_id, now=now,
            expires_at=now + timedelta(seconds=ttl),
        )
        return f"{self._public_url}/{page}?{urlencode({'token': token})}"

    async def _send_verification(self, user: dict[str, Any]) -> None:
        ttl = self._limits.email_token_ttl
        link = await self._mailed_link(user["_id"], purpose=VERIFY_EMAIL, ttl=ttl,
                                       page="verify-email")
        mail = verification_mail(display_name=user["display_name"], link=link,
                                 ttl_hours=max(1, ttl // 3600))
        await self._mail.send(to=user["email"], mail=mail, kind="verify_email",
                              user_ids=[user["_id"]])

    async def verify_email(self, token: str) -> dict[str, Any]:
        record = await self._tokens.consume(
            hash_secret(token), purpose=VERIFY_EMAIL, now=self._clock.now()
        )
        if record is None or not await self._users.mark_email_verified(
            record["user_id"], now=self._clock.now()
        ):
            raise InvalidToken("This verification link is invalid or has expired.")
        user = await self._users.get(record["user_id"])
        assert user is not None
        return user

    async def resend_verification(self, user_id: str) -> None:
        await self._limiter.hit("verify_resend", self._limits.forgot_password, user_id)
        user = await self._users.get_active(user_id)
        if user is None:
            raise Unauthorized()
        if not user.get("email_verified"):
            await self._send_verification(user)

    async def forgot_password(self, email: str, client: ClientInfo) -> None:
        """Answers the same, in the same time, for known and unknown emails:
        the work for a known one happens after the response."""
        await self._limiter.hit("forgot:ip", self._limits.forgot_password, client.ip or "-")
        task = asyncio.create_task(self._send_reset(normalise_email(email), client))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_reset(self, email: str, client: ClientInfo) -> None:
        try:
            await self._limiter.hit("forgot:account", self._limits.forgot_password, email)
            user = await self._users.find_by_email(email)
            if user is None or user.get("status") != ACTIVE:
                return
            ttl = self._limits.password_reset_ttl
            link = await self._mailed_link(user["_id"], purpose=RESET_PASSWORD, ttl=ttl,
                                           page="reset-password")
            mail = password_reset_mail(display_name=user["display_name"], link=link,
                                       ttl_minutes=max(1, ttl // 60))
            await self._mail.send(to=user["email"], mail=mail, kind="reset_password",
                                  user_ids=[user["_id"]])
            await self._record("account.password_reset_requested", actor_id=None,
                               target=user["_id"], client=client)
        except RateLimited:
            logger.info("password reset for {} throttled", mask_email(email))
        except Exception:
            logger.exception("password reset mail for {} failed", mask_email(email))

    async def reset_password(self, *, token: str, new_password: str, client: ClientInfo) -> None:
        self._passwords.validate(new_password, field="new_password")
        record = await self._tokens.consume(
            hash_secret(token), purpose=RESET_PASSWORD, now=self._clock.now()
        )
        if record is None:
            raise InvalidToken("This reset link is invalid, used or expired.")
        user_id = record["user_id"]
        await self._users.set_password_hash(
            user_id, await self._passwords.hash(new_password), now=self._clock.now()
        )
        await self._tokens.invalidate_all(user_id, purpose=RESET_PASSWORD, now=self._clock.now())
        await self._sessions.revoke_all(user_id, client=client, reason="password_reset")
        await self._record("account.password_reset", actor_id=user_id, target=user_id,
                           client=client)

    async def change_password(
        self, claims: AccessClaims, *, current_password: str, new_password: str,
        client: ClientInfo,
    ) -> None:
        self._passwords.validate(new_password, field="new_password")
        # Failures are limited like logins; the unit is taken before the
        # verification so that concurrent guesses cannot all be verified.
        unit = await self._limiter.reserve("login:account:id", self._limits.login_account,
                                           claims.user_id)
        user = await self._users.get_active(claims.user_id)
        if user is None:
            raise Unauthorized()
        if not await self._passwords.verify(user.get("password_hash"), current_password):
            raise ValidationFailed.field("current_password", "The current password is incorrect.")
        await unit.clear()
        await self._users.set_password_hash(
            user["_id"], await self._passwords.hash(new_password), now=self._clock.now()
        )
        # Whoever else is signed in (maybe with the old, leaked password) is
        # signed out; the session that changed it stays.
        await self._sessions.revoke_all(user["_id"], client=client, reason="password_change",
                                        except_session_id=claims.session_id)
        await self._record("account.password_change", actor_id=user["_id"], target=user["_id"],
                           client=client)

    async def set_password(self, user_id: str, *, new_password: str, client: ClientInfo) -> None:
        """A first password for an account that signs in with a provider;
        409 when it has one (change it with the current one instead)."""
        self._passwords.validate(new_password, field="new_password")
        password_hash = await self._passwords.hash(new_password)
        if not await self._users.set_first_password_hash(user_id, password_hash,
                                                         now=self._clock.now()):
            if await self._users.get_active(user_id) is None:
                raise Unauthorized("This account is no longer active.")
            raise Conflict("This account has a password already; change it instead.")
        await self._record("account.password_set", actor_id=user_id, target=user_id,
                           client=client)

    async def delete(self, user_id: str, client: ClientInfo) -> None:
        if not await self._users.soft_delete(user_id, now=self._clock.now()):
            raise NotFound("No such account.")
        await self._sessions.revoke_all(user_id, client=client, reason="account_deleted")
        await self._record("account.delete", actor_id=user_id, target=user_id, client=client)

    async def require_verified(self, user_id: str, action: str) -> None:
        """``email_not_verified`` for the actions the operator listed in
        SKILLSHARE_REQUIRE_VERIFIED_EMAIL_FOR (none by default)."""
        if action not in self._verified_actions:
            return
        user = await self._users.get_active(user_id)
        if user is None:
            raise Unauthorized("This account is no longer active.")
        if not user.get("email_verified"):
            raise EmailNotVerified()

    async def stop(self) -> None:
        await cancel_and_wait(list(self._background))
