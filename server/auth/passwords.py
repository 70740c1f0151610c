"""Password hashing with argon2id (argon2-cffi). Hashing and verifying run
in the node's bounded ``HashingPool`` (or, for one-off CLI work, a worker
thread), never on the event loop; a full pool answers 503 ``HashingBusy``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import ValidationFailed
from .hashing_pool import HashingPool

T = TypeVar("T")


class Passwords:
    def __init__(
        self,
        *,
        min_length: int,
        max_length: int,
        time_cost: int = 3,
        memory_cost_kib: int = 64 * 1024,
        parallelism: int = 1,
        pool: HashingPool | None = None,
    ) -> None:
        self._pool = pool
        self.min_length = min_length
        self.max_length = max_length
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        # Verified against when the email is unknown, so unknown and known
        # accounts cost the same time.
        self._dummy_hash = self._hasher.hash("not-a-real-password-for-timing")

    def validate(self, password: str, *, field: str = "password") -> None:
        if len(password) < self.min_length:
            raise ValidationFailed.field(
                field, f"Must be at least {self.min_length} characters."
            )
        if len(password) > self.max_length:
            raise ValidationFailed.field(field, f"Must be at most {self.max_length} characters.")

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._pool is None:
            return await asyncio.to_thread(work, *args)
        return await self._pool.run(work, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Constant-work check; a missing hash still costs one verification."""
        target = password_hash or self._dummy_hash
        try:
            ok = await self._run(self._hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
