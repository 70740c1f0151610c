"""Password hashing with argon2id (argon2-cffi). Hashing runs in a worker
thread so a login never stalls the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import ValidationFailed


class Passwords:
    def __init__(
        self,
        *,
        min_length: int,
        max_length: int,
        time_cost: int = 3,
        memory_cost_kib: int = 64 * 1024,
        parallelism: int = 1,
    ) -> None:
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

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Constant-work check; a missing hash still costs one verification."""
        target = password_hash or self._dummy_hash
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
